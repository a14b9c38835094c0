"""Where does a GPU-bound HF prefill forward spend its time? (issue 18: prefill forward 10-16% under-predicted)

hwsim prices the aten ops it traces from HF's own code; on the lent H100 the large GPU-bound prefill forwards
(8x2048 and up) still come out 10-16% too fast and the gap is not explained by any one op class. This script
runs the same forward as `measure_hf_generate.py` (`model(ids, attention_mask, use_cache=True, logits_to_keep=1)`,
bf16, sdpa) under the torch profiler and writes, per model and shape, the GPU time of every aten op (self CUDA
time, i.e. the kernels it launched itself) and of every kernel, so the miss can be charged to named ops locally
(`hwsim` per-op prices of the same trace are compared offline).

usage: python3 benchmarks/gpu/hf_prefill_profile.py --out DIR --configs A.json[:LAYERS],B.json --shapes 8x2048,1x4096
Writes DIR/ops.csv (config, batch, prompt, op, calls, self_cuda_us), DIR/kernels.csv (config, batch, prompt,
kernel, calls, cuda_us), DIR/forward.csv (CUDA-event time of the forward without the profiler, median of 5).
`--smoke` checks the script on the CPU with a 1-layer model: its output is not data.
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measure_hf_generate as M  # noqa: E402


def forward_once(model, ids, mask):
    model(ids, attention_mask=mask, use_cache=True, logits_to_keep=1)


def timed(model, ids, mask, reps=5):
    import torch
    out = []
    for _ in range(reps):
        if M.DEVICE != "cuda":
            t = time.perf_counter()
            forward_once(model, ids, mask)
            out.append(time.perf_counter() - t)
            continue
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        forward_once(model, ids, mask)
        b.record()
        b.synchronize()
        out.append(a.elapsed_time(b) / 1e3)
    return statistics.median(out)


def profile_rows(model, ids, mask):
    """(op rows, kernel rows): each (name, calls, microseconds) from one profiled forward."""
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if M.DEVICE == "cuda" else [])
    with profile(activities=acts) as prof:
        forward_once(model, ids, mask)
        M.sync()
    ops, kernels = {}, {}
    for ev in prof.events():
        dev = getattr(ev, "device_type", None)
        is_kernel = dev is not None and "CUDA" in str(dev)
        if is_kernel:
            k = kernels.setdefault(ev.name, [0, 0.0])
            k[0] += 1
            k[1] += ev.time_range.elapsed_us()
        elif ev.name.startswith("aten::"):
            o = ops.setdefault(ev.name, [0, 0.0])
            o[0] += 1
            self_dev = getattr(ev, "self_device_time_total", None)
            if self_dev is None:
                self_dev = getattr(ev, "self_cuda_time_total", 0.0)
            o[1] += self_dev
    return ([(n, c, us) for n, (c, us) in ops.items()], [(n, c, us) for n, (c, us) in kernels.items()])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--configs", required=True)
    ap.add_argument("--shapes", default="8x2048")
    ap.add_argument("--budget", type=float, default=1e9, help="seconds; no new model starts after this")
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    import torch
    if args.smoke or not torch.cuda.is_available():
        M.DEVICE = "cpu"
    os.makedirs(args.out, exist_ok=True)
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    t0 = time.time()
    files = {n: open(os.path.join(args.out, n + ".csv"), "w", newline="") for n in ("ops", "kernels", "forward")}
    writers = {n: csv.writer(f) for n, f in files.items()}
    writers["ops"].writerow(["config", "batch", "prompt", "op", "calls", "self_cuda_us"])
    writers["kernels"].writerow(["config", "batch", "prompt", "kernel", "calls", "cuda_us"])
    writers["forward"].writerow(["config", "layers", "batch", "prompt", "forward_s", "status"])
    for spec in args.configs.split(","):
        if time.time() - t0 > args.budget:
            print("budget spent; stopping before", spec, flush=True)
            break
        path, _, layers = spec.partition(":")
        layers = 1 if args.smoke else (int(layers) if layers else None)
        name = os.path.basename(path).removesuffix(".json")
        try:
            model, _ = M.build(path, layers)
        except Exception as e:  # noqa: BLE001 - one failing architecture must not end the run
            writers["forward"].writerow([name, layers or "", "", "", "", f"error: {type(e).__name__}: {e}"[:200]])
            continue
        for batch, prompt in shapes:
            if args.smoke:
                batch, prompt = 1, min(prompt, 16)
            try:
                ids = torch.randint(3, 1000, (batch, prompt), device=M.DEVICE)
                mask = torch.ones_like(ids)
                with torch.no_grad():
                    for _ in range(2):
                        forward_once(model, ids, mask)
                    M.sync()
                    fwd = timed(model, ids, mask)
                    ops, kernels = profile_rows(model, ids, mask)
                writers["forward"].writerow([name, layers or "", batch, prompt, f"{fwd:.6f}", "ok"])
                for n, c, us in sorted(ops, key=lambda r: -r[2]):
                    writers["ops"].writerow([name, batch, prompt, n, c, f"{us:.1f}"])
                for n, c, us in sorted(kernels, key=lambda r: -r[2]):
                    writers["kernels"].writerow([name, batch, prompt, n[:300], c, f"{us:.1f}"])
                print(f"{name} {batch}x{prompt}: forward {1e3 * fwd:.2f} ms, "
                      f"kernel sum {sum(r[2] for r in kernels) / 1e3:.2f} ms", flush=True)
            except Exception as e:  # noqa: BLE001 - e.g. out of memory at one shape
                writers["forward"].writerow([name, layers or "", batch, prompt, "", f"error: {type(e).__name__}"])
            for f in files.values():
                f.flush()
        del model
        if M.DEVICE == "cuda":
            torch.cuda.empty_cache()
    for f in files.values():
        f.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
