"""HF prefill forwards on the H100, measured op class by op class against hwsim's prices of the same trace.

Data: benchmarks/gpu/data/h100-2026-12-06-lease2-hf-generate/prefill-profile/ (benchmarks/gpu/hf_prefill_profile.py:
one profiled forward per model and shape, self CUDA time per aten op; the unprofiled forward by CUDA events).
hwsim: `api.predict(model, "h100", "prefill", b, n, impl="hf", profile=P)` with P = eager-launch (the forward as
the host issues it, what hf_generate_accuracy.py compares) and, per op class, the `eager` per-op rows. Classes:
GEMM (aten mm/addmm/bmm/_grouped_mm/_scaled_mm), attention (the SDPA backends' forward ops), the rest.

All 12 architectures are printed; the calibration/held-out split of benchmarks/host/hf_generate_accuracy.py is
marked (nothing here is fitted: the H100 preset's power window was chosen on hwsim's own-module steps,
benchmarks/gpu/h100_acceptance.py). hwsim traces the transformers installed where it runs; the data was measured
with 5.17.0 (put an unpacked 5.17.0 wheel first on PYTHONPATH, as for hf_generate_accuracy.py).

`--masked-fill`: instead, the measured bandwidth fraction of the masked_fill kernels (HF's MoE experts zero their
padding with them) per MoE architecture, hwsim's traced bytes over the profiled time: the H100 preset's
`mask_bw_eff` is the calibration architecture's (qwen1.5-moe-a2.7b) bytes-weighted figure.

`--masked-attention`: instead, the attained rate of the attention kernels that transformers hands an explicit mask
(its sliding window once the keys reach it) relative to hwsim's unmasked price of the same work, per forward: the
measured attention time less hwsim's price of the unmasked attention ops, against the masked ops' compute. The
H100 preset's `attn_mask_rel` is the calibration architectures' figure (phi-3-mini, the only one whose forwards pass
a mask: its window of 2047 is reached at 2,048 positions), time-weighted over its two shapes.

`--decode`: the decode steps of a `hf_prefill_profile.py --decode` set instead (phase "decode"; `prompt` there is the
cached length), against hwsim's decode step at that length.

Classes: GEMM, attention, cat (aten::cat: the KV appends and RoPE's rotate_half), the rest.

usage: python3 benchmarks/gpu/hf_prefill_breakdown.py [--data DIR] [--min-ms 150] [--decode]
       [--masked-fill | --masked-attention]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from sim import api  # noqa: E402

DATA = ROOT / "benchmarks" / "gpu" / "data" / "h100-2026-12-06-lease2-hf-generate" / "prefill-profile"
CALIBRATION = {"llama-3.1-8b", "qwen2.5-7b", "phi-3-mini", "qwen1.5-moe-a2.7b", "qwen3-14b", "llama-2-7b"}
GEMM_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::_grouped_mm", "aten::_scaled_mm", "aten::baddbmm"}
ATTN_OPS = {"aten::_cudnn_attention_forward", "aten::_flash_attention_forward", "aten::_efficient_attention_forward",
            "aten::_scaled_dot_product_flash_attention", "aten::_scaled_dot_product_efficient_attention",
            "aten::_scaled_dot_product_cudnn_attention"}
FULL_LAYERS = {"mixtral-8x7b": 32}


CLASSES = ("gemm", "attention", "cat", "other")


def measured_classes(ops: pd.DataFrame) -> dict:
    cls = ops.op.map(lambda o: "gemm" if o in GEMM_OPS else "attention" if o in ATTN_OPS else
                     "cat" if o == "aten::cat" else "other")
    return (ops.self_cuda_us.groupby(cls).sum() / 1e6).to_dict()


def predicted(model, layers, batch, prompt, phase="prefill"):
    kw = dict(impl="hf")
    if layers and model in FULL_LAYERS and int(layers) < FULL_LAYERS[model]:
        kw["drop_layer_ids"] = tuple(range(int(layers), FULL_LAYERS[model]))
    fwd = api.predict(model, "h100", phase, batch, prompt, profile="eager-launch", **kw)
    det = api.predict(model, "h100", phase, batch, prompt, profile="eager", detail=True, **kw)
    df = det.ops_frame()
    cls = [("gemm" if k == "matmul" else "attention" if k == "attention" else
            "cat" if n.rsplit(".", 1)[-1] == "cat" else "other") for k, n in zip(df.kind, df.name)]
    return fwd, (df.total_time_s.groupby(cls).sum()).to_dict()


def masked_fill_eff(data: Path) -> int:
    from hw_models import load_device
    ops = pd.read_csv(data / "ops.csv")
    fwd = pd.read_csv(data / "forward.csv")
    bw = load_device("h100").main_memory.bandwidth_gbps * 1e9
    totals = {}
    for r in fwd[fwd.status == "ok"].itertuples():
        kw = dict(impl="hf")
        if r.layers == r.layers and r.config in FULL_LAYERS and int(r.layers) < FULL_LAYERS[r.config]:
            kw["drop_layer_ids"] = tuple(range(int(r.layers), FULL_LAYERS[r.config]))
        g = api.workload(r.config, "prefill", int(r.batch), int(r.prompt), **kw)
        nbytes = sum(sum(k.bytes.values()) * op.repeat for op in g.ops for k in op.kernels
                     if k.aten.startswith("masked_fill"))
        if not nbytes:
            continue
        sel = ops[(ops.config == r.config) & (ops.batch == r.batch) & (ops.prompt == r.prompt) &
                  ops.op.str.startswith("aten::masked_fill")]
        t = sel.self_cuda_us.sum() * 1e-6
        split = "calibration" if r.config in CALIBRATION else "held out"
        print(f"  {r.config:18s} {int(r.batch)}x{int(r.prompt):<5d} {split:11s} masked_fill {nbytes / 1e9:6.2f} GB in "
              f"{t * 1e3:6.1f} ms: {nbytes / t / bw:.3f} of the bandwidth")
        a = totals.setdefault(r.config, [0.0, 0.0])
        a[0] += nbytes
        a[1] += t
    for name, (b, t) in totals.items():
        print(f"  {name}: {b / t / bw:.3f} bytes-weighted")
    return 0


def masked_attention_rel(data: Path) -> int:
    from hw_models import load_device
    from hw_models.gpu import GPUModel
    ops = pd.read_csv(data / "ops.csv")
    fwd = pd.read_csv(data / "forward.csv")
    m = GPUModel(load_device("h100"), "eager", params={"attn_mask_rel": 1.0})      # the unmasked kernel's rate
    fit = [0.0, 0.0]
    for r in fwd[fwd.status == "ok"].itertuples():
        kw = dict(impl="hf")
        if r.layers == r.layers and r.config in FULL_LAYERS and int(r.layers) < FULL_LAYERS[r.config]:
            kw["drop_layer_ids"] = tuple(range(int(r.layers), FULL_LAYERS[r.config]))
        g = api.workload(r.config, "prefill", int(r.batch), int(r.prompt), **kw)
        attn = [op for op in g.ops if op.kind == "attention"]
        if not any(op.attrs.get("mask") for op in attn):
            continue
        clock = api.predict(r.config, "h100", "prefill", int(r.batch), int(r.prompt), profile="eager", **kw).clock_mhz
        compute = over = plain = 0.0
        for op in attn:
            c = m.cost(op, clock)
            if op.attrs.get("mask"):
                compute += c.compute_s * op.repeat
                over += c.overhead_s * op.repeat
            else:
                plain += c.time_s * op.repeat
        sel = ops[(ops.config == r.config) & (ops.batch == r.batch) & (ops.prompt == r.prompt) & ops.op.isin(ATTN_OPS)]
        masked = sel.self_cuda_us.sum() * 1e-6 - plain
        split = "calibration" if r.config in CALIBRATION else "held out"
        print(f"  {r.config:18s} {int(r.batch)}x{int(r.prompt):<5d} {split:11s} masked attention {masked * 1e3:6.1f} ms "
              f"(unmasked ops {plain * 1e3:5.1f} ms priced aside), hwsim unmasked {(compute + over) * 1e3:6.1f} ms: "
              f"rate {compute / (masked - over):.3f} of the unmasked kernel's")
        if r.config in CALIBRATION:
            fit[0] += compute
            fit[1] += masked - over
    if fit[1]:
        print(f"  calibration, time-weighted: {fit[0] / fit[1]:.3f}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--min-ms", type=float, default=0.0, help="only forwards at least this long (measured)")
    ap.add_argument("--masked-fill", action="store_true", help="the masked_fill kernels' bandwidth fraction")
    ap.add_argument("--masked-attention", action="store_true",
                    help="masked attention kernels' rate relative to the unmasked kernel")
    ap.add_argument("--decode", action="store_true", help="the set's decode steps (hf_prefill_profile.py --decode)")
    args = ap.parse_args()
    data = Path(args.data)
    phase = "decode" if args.decode else "prefill"
    if args.masked_fill:
        return masked_fill_eff(data)
    if args.masked_attention:
        return masked_attention_rel(data)
    fwd = pd.read_csv(data / "forward.csv")
    ops = pd.read_csv(data / "ops.csv")
    if "phase" not in fwd:                       # sets written before the phase column are prefill
        fwd["phase"], ops["phase"] = "prefill", "prefill"
    fwd, ops = fwd[fwd.phase == phase], ops[ops.phase == phase]
    rows = []
    for r in fwd[fwd.status == "ok"].itertuples():
        if r.forward_s * 1e3 < args.min_ms:
            continue
        m = measured_classes(ops[(ops.config == r.config) & (ops.batch == r.batch) & (ops.prompt == r.prompt)])
        p, pc = predicted(r.config, r.layers if r.layers == r.layers else None, int(r.batch), int(r.prompt), phase)
        row = {"model": r.config, "batch": int(r.batch), "prompt": int(r.prompt),
               "split": "calibration" if r.config in CALIBRATION else "held out",
               "meas_ms": r.forward_s * 1e3, "hwsim_ms": p.latency_s * 1e3, "err": p.latency_s / r.forward_s - 1,
               "clock": p.clock_mhz}
        for k in CLASSES:
            row[f"{k}_meas_ms"] = m.get(k, 0.0) * 1e3
            row[f"{k}_err"] = pc.get(k, 0.0) / m[k] - 1 if m.get(k) else float("nan")
        rows.append(row)
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    fmt = df.copy()
    for c in [c for c in df.columns if c.endswith("err")]:
        fmt[c] = (100 * df[c]).map(lambda v: f"{v:+.1f}%")
    for c in [c for c in df.columns if c.endswith("ms")] + ["clock"]:
        fmt[c] = df[c].map(lambda v: f"{v:.1f}" if c != "clock" else f"{v:.0f}")
    print(fmt.to_string(index=False))
    for split in ("calibration", "held out"):
        s = df[df.split == split]
        if len(s):
            print(f"  {split:11s} n={len(s):2d}  forward MAPE {100 * s.err.abs().mean():.1f}%  "
                  f"({(s.err.abs() <= 0.10).sum()}/{len(s)} within 10%);  GEMM time {100 * s.gemm_err.abs().mean():.1f}%, "
                  f"attention {100 * s.attention_err.abs().mean():.1f}%, cat {100 * s.cat_err.abs().mean():.1f}%, "
                  f"other ops {100 * s.other_err.abs().mean():.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
