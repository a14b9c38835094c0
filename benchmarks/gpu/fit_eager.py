"""Eager (unfused) elementwise/norm kernel bandwidths by how a kernel reaches its operands (workloads/tracer.py
`_access`, hw_models/gpu.py `eager_kernel_eff`), each fitted on its own kernels:

  vec_bw_eff     vectorized kernels (contiguous, one layout, one dtype)   <- elementwise.csv add, mul, silu, copy
                                                                             (>= 16M elements: the single-kernel graph's
                                                                             ~9 us launch is small against them)
  nonvec_bw_eff  gap-free kernels torch does not vectorize (broadcast,    <- elementwise.csv rmsnorm_unfused (>= 4M
                 mixed layouts, bf16 -> fp32 cast)                           elements; its vectorized kernels at vec_bw_eff)
  cat_bw_eff     cats of non-contiguous parts (RoPE's rotate_half, the    <- kernels.csv of a profiled step set (the
                 KV append's [k | v])                                        CatArrayBatchedCopy kernels' device time
                                                                             against hwsim's traced cat bytes)
fit.py calls `fit_eager`; `python3 benchmarks/gpu/fit_eager.py --device h200 --data DIR [--kernels DIR2]` prints the
fit and the per-kernel-class check against kernels.csv.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hw_models import load_device  # noqa: E402
from hw_models.gpu import GPUModel  # noqa: E402
from workloads import trace  # noqa: E402
from workloads.graph import Kernel, Op  # noqa: E402

VEC_OPS = ("add", "mul", "silu", "copy")
VEC_MIN, NORM_MIN, L2_MIN = 16 << 20, 4 << 20, 1 << 20


def read(data, name):
    return list(csv.DictReader(open(Path(data) / name)))


def _one_kernel(numel, nbytes, aten):
    return Op(0, aten, "elementwise", None, 1, (), (), "bf16", numel, {"activation": nbytes},
              kernels=(Kernel(aten, numel, {"activation": nbytes}, 0),))


def vec_rows(data):
    return [r for r in read(data, "elementwise.csv") if r["op"] in VEC_OPS and int(r["numel"]) >= VEC_MIN]


def norm_rows(data):
    return [r for r in read(data, "elementwise.csv") if r["op"] == "rmsnorm_unfused" and int(r["numel"]) >= NORM_MIN]


_NORMS = {}


def norm_op(numel):
    """measure.py's unfused RMSNorm over rows of 4096 (llama-3.1-8b's input_norm at that many tokens)."""
    if numel not in _NORMS:
        b = max(1, numel // 4096 // 1024)
        _NORMS[numel] = next(o for o in trace("llama-3.1-8b", "prefill", b, numel // 4096 // b).ops
                             if o.name == "input_norm")
    return _NORMS[numel]


def vec_error(device, data, params):
    model = GPUModel(device, params=params)
    return statistics.mean(abs(model.cost(_one_kernel(int(r["numel"]), int(r["bytes"]), r["op"]), 1980).time_s /
                               float(r["seconds"]) - 1) for r in vec_rows(data))


def norm_error(device, data, params):
    model = GPUModel(device, params=params)
    return statistics.mean(abs(model.cost(norm_op(int(r["numel"])), 1980).time_s / float(r["seconds"]) - 1)
                           for r in norm_rows(data))


def l2_rows(data):
    return [r for r in read(data, "elementwise.csv") if r["op"] == "rmsnorm_unfused" and int(r["numel"]) >= L2_MIN]


def l2_error(device, data, params):
    model = GPUModel(device, params=params)
    return statistics.mean(abs(model.cost(norm_op(int(r["numel"])), 1980).time_s / float(r["seconds"]) - 1)
                           for r in l2_rows(data))


def fit_l2(device, data, params):
    """eager_l2_bytes (the device's L2 capacity, datasheet) and eager_l2_rel (hw_models/gpu.py eager_l2_share) on
    the unfused RMSNorm rows >= 1M elements (below, the 8 kernels' floors dominate), nonvec/vec as fitted: the rows
    whose operands fit in L2 (1M and 4M elements on the H100) set it, the larger ones (from DRAM) stay as they are."""
    params = {**params, "eager_l2_bytes": device.memory["l2"].capacity_gb * 1e9}
    grid = [x / 100 for x in range(0, 61)]
    params["eager_l2_rel"] = min(grid, key=lambda v: l2_error(device, data, {**params, "eager_l2_rel": v}))
    return params


def _cat_kernels(row_kernel):
    return "CatArrayBatchedCopy<" in row_kernel and "_vectorized" not in row_kernel


def cat_samples(kernels_dir):
    """(traced cat bytes, measured seconds) per profiled prefill case: the cats torch runs non-vectorized."""
    rows = read(kernels_dir, "kernels.csv")
    out = []
    for case in dict.fromkeys(r["case"] for r in rows):
        model, phase, shape = case.split("/")
        if phase != "prefill":
            continue
        b, s = map(int, shape.split("x"))
        seconds = sum(float(r["device_us"]) for r in rows if r["case"] == case and _cat_kernels(r["kernel"])) * 1e-6
        nbytes = sum(sum(k.bytes.values()) * op.repeat for op in trace(model, phase, b, s).ops
                     if op.kind not in ("matmul", "attention") for k in op.kernels if k.aten == "cat" and k.strided)
        if seconds and nbytes:
            out.append((case, nbytes, seconds))
    return out


def hf_cat_samples(profile_dir, models=None):
    """The same from a profiled set of HF prefill forwards (hf_prefill_profile.py: kernels.csv with config, batch,
    prompt, kernel, calls, cuda_us; forward.csv with the layers each kept), traced with `--impl hf`. A case whose
    profiled cat calls differ from the traced cat kernels is left out (returned as skipped)."""
    import json

    import transformers

    from sim import api
    from workloads import load_spec
    env = Path(profile_dir).parent / "env.json"
    measured = json.loads(env.read_text()).get("transformers") if env.is_file() else None
    if measured and measured != transformers.__version__:
        raise SystemExit(f"{profile_dir} was measured with transformers {measured}; {transformers.__version__} is "
                         f"installed, whose code traces other kernels: put {measured} first on PYTHONPATH")
    def prefill(r):
        return r.get("phase") in (None, "", "prefill")          # sets written before the phase column: prefill
    rows = [r for r in read(profile_dir, "kernels.csv") if prefill(r)]
    layers = {(r["config"], r["batch"], r["prompt"]): r["layers"] for r in read(profile_dir, "forward.csv")
              if prefill(r)}
    out, skipped = [], []
    for key in dict.fromkeys((r["config"], r["batch"], r["prompt"]) for r in rows):
        cats = [r for r in rows if (r["config"], r["batch"], r["prompt"]) == key and _cat_kernels(r["kernel"])]
        if not cats:
            continue
        model, b, s = key[0], int(key[1]), int(key[2])
        if models and model not in models:
            continue
        kept, total = layers.get(key), load_spec(model, "hf").layers
        drop = {"drop_layer_ids": tuple(range(int(kept), total))} if kept and int(kept) < total else {}
        graph = api.workload(model, "prefill", b, s, impl="hf", **drop)
        traced = [(sum(k.bytes.values()), op.repeat) for op in graph.ops for k in op.kernels
                  if k.aten == "cat" and k.strided]
        calls = sum(int(r["calls"]) for r in cats)
        if calls != sum(n for _, n in traced):
            skipped.append((f"{model}/{b}x{s}", calls, sum(n for _, n in traced)))
            continue
        seconds = sum(float(r["cuda_us"]) for r in cats) * 1e-6
        out.append((f"{model}/prefill/{b}x{s}", sum(nb * n for nb, n in traced), seconds))
    return out, skipped


def cat_fraction(device, samples) -> float:
    """The bytes-weighted attained fraction of the datasheet bandwidth over (case, bytes, seconds) samples (the
    kernels are long: floors and the small-transfer term are negligible)."""
    bw = device.main_memory.bandwidth_gbps * 1e9
    return round(sum(n for _, n, _ in samples) / sum(t for _, _, t in samples) / bw, 2)


def fit_cat(device, kernels_dir, params):
    """cat_bw_eff on a measure_stack.py set's kernels.csv (cat_fraction of cat_samples)."""
    samples = cat_samples(kernels_dir)
    return cat_fraction(device, samples), samples


def fit_eager(device, data, params, kernels_dir=None, l2=False):
    """vec_bw_eff, then nonvec_bw_eff (on top of it, L2 term off), then with `l2` eager_l2_rel (`fit_l2`), then
    cat_bw_eff where a kernels.csv is given; `params`: the other parameters so far (floors, small_bw_bytes).
    Returns the updated params."""
    grid = [x / 100 for x in range(20, 101)]
    params = {**params, "eager_l2_rel": 0}
    params["vec_bw_eff"] = min(grid, key=lambda v: vec_error(device, data, {**params, "vec_bw_eff": v}))
    params["nonvec_bw_eff"] = min(grid, key=lambda v: norm_error(device, data, {**params, "nonvec_bw_eff": v}))
    if l2:
        params = fit_l2(device, data, params)
    if kernels_dir:
        params["cat_bw_eff"], _ = fit_cat(device, kernels_dir, params)
    return params


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", required=True)
    ap.add_argument("--data", required=True, help="a measure.py set (elementwise.csv)")
    ap.add_argument("--kernels", help="a set with kernels.csv (measure_stack.py) for cat_bw_eff")
    ap.add_argument("--hf-kernels", help="cat_bw_eff alone from an HF prefill profile (hf_prefill_profile.py: "
                    "kernels.csv, forward.csv), traced with --impl hf; needs transformers")
    ap.add_argument("--models", help="comma-separated: fit on these architectures only (e.g. the calibration half "
                    "of benchmarks/host/hf_generate_accuracy.py)")
    args = ap.parse_args()
    if args.hf_kernels:
        device = load_device(args.device)
        preset = dict(device.calibration.params) if device.calibration else {}
        samples, skipped = hf_cat_samples(args.hf_kernels, args.models.split(",") if args.models else None)
        bw = device.main_memory.bandwidth_gbps * 1e9
        for case, n, t in samples:
            print(f"  cat {case:34s} {n / 1e9:6.2f} GB in {t * 1e3:6.2f} ms: {n / t / bw:.3f} of the datasheet")
        for case, calls, traced in skipped:
            print(f"  left out {case}: {calls} profiled cat kernels, {traced} traced")
        fitted = cat_fraction(device, samples)
        print(f"cat_bw_eff fitted {fitted} on {len(samples)} forwards (preset {preset.get('cat_bw_eff')})")
        return
    device = load_device(args.device)
    preset = dict(device.calibration.params) if device.calibration else {}
    before = {k: preset.get(k) for k in ("eager_bw_eff", "strided_bw_eff", "vec_bw_eff", "nonvec_bw_eff", "cat_bw_eff")}
    old = {**preset, "vec_bw_eff": 0, "nonvec_bw_eff": 0, "cat_bw_eff": 0}
    fitted = fit_eager(device, args.data, old, args.kernels)
    print("preset:", before)
    print("fitted:", {k: fitted.get(k) for k in ("vec_bw_eff", "nonvec_bw_eff", "cat_bw_eff")})
    for label, p in (("one eager_bw_eff (before)", old), ("by access class (fitted)", fitted)):
        print(f"  {label:26s} vectorized add/mul/silu/copy MAPE {100 * vec_error(device, args.data, p):5.1f}%   "
              f"unfused RMSNorm MAPE {100 * norm_error(device, args.data, p):5.1f}%")
    if args.kernels:
        _, samples = fit_cat(device, args.kernels, fitted)
        bw = device.main_memory.bandwidth_gbps * 1e9
        for case, n, t in samples:
            print(f"  cat {case:28s} {n / 1e9:6.2f} GB in {t * 1e3:6.2f} ms: {n / t / bw:.2f} of the datasheet")


if __name__ == "__main__":
    main()
