"""Serving stacks against measurements: kernels measured here, and published generate / first-token figures.

Two tables (docs/stack-accuracy.md explains each row and source):
1. Kernels measured here on the lent GPUs (benchmarks/gpu/measure_stack.py, data/*-stack): FP8 and bf16 GEMMs,
   decode attention (SDPA flash and a paged split-K kernel, bf16/FP8 KV), prefill attention, MoE layers; hwsim's
   cost of the same op (per-kernel MAPE), split into the calibration shapes and the held-out shapes.
2. Published static-batch generate throughput and first-token latency of TensorRT-LLM (NVIDIA/TensorRT-LLM
   docs/source/performance.md @138f96d, v0.6.1 tables: H100 FP8 weights+KV, A100 FP16; TP 1-4): hwsim's `trtllm`
   stack and the older `fused` stack beside a plain datasheet roofline on the same rows. Static batching:
   time = prefill(batch x input) + sum over output tokens of decode(batch, context); throughput = batch x output
   / time (per GPU where the table says so); first-token latency = prefill(1 x input) + the stack's request cost.
   Rows that informed a `trtllm-0.6` number (hw_models/stacks.py): the H100 FP8 Llama-2-7B first token at 128
   tokens (request_overhead_us) and the four H100 FP8 Llama-2-70B throughput rows (kv8_convert_b_clk_sm, the
   group "trtllm-0.6 h100 fp8 TP>1 GQA tput"); every other row is held out.
3. MoE (held out, nothing fitted on them): the same tables of TensorRT-LLM v0.9.0 (docs/source/performance.md
   @250d9c2, gptSessionBenchmark static batches) for Mixtral-8x7B, TP2 on H200 / H100 ("FP8") and A100 FP16, with
   batch sizes for every row. v0.9.0's MoE layer has no FP8 path (tensorrt_llm/layers/moe.py: expert weights in the
   16-bit dtype unless weight-only int8/int4; the MoE plugin builds fp16/bf16/fp32 and int8/int4 runners only), so
   the "FP8" rows run FP8 attention projections and KV cache with 16-bit experts (precision `fp8-e16`); experts
   split by tensor parallelism (v0.9's default moe_tp_mode). Printed as their own group "MoE", with the `trtllm`
   stack (grouped expert GEMMs, XQA-style decode) beside the others and the plain roofline; then the same tables'
   Mistral-7B rows (Mixtral's attention without the experts) as their dense control, group "v0.9-dense".
usage: python3 benchmarks/stack_accuracy.py [--kernels-only | --published-only | --breakdown]
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hw_models import load_device  # noqa: E402
from hw_models.stacks import request_host_s, stack  # noqa: E402
from hw_models.systems import load_system  # noqa: E402
from mapping import map_graph  # noqa: E402
from sim.engine import simulate  # noqa: E402
from sim.predict import predict  # noqa: E402
from sim.roofline_baseline import roofline_time  # noqa: E402
from workloads.recipe import build_workload  # noqa: E402

TRT = "TensorRT-LLM performance.md @138f96d (v0.6.1)"
# (gpu, precision, model, tp, batch, input, output, out tok/s, per_gpu) -- "Peak Throughput" tables.
# H100's column is "out tok/s/GPU"; A100's says "out tok/s" but is read per GPU too: as a total, Llama-2-70B TP4 at
# batch 1280 (670 tok/s) would take 1.9 s per decode step, 12x its compute bound on four A100s.
THROUGHPUT = [
    ("h100", "fp8", "llama-2-7b", 1, 768, 128, 128, 19694, True),
    ("h100", "fp8", "llama-2-7b", 1, 112, 128, 2048, 6818, True),
    ("h100", "fp8", "llama-2-7b", 1, 80, 2048, 128, 2244, True),
    ("h100", "fp8", "llama-2-7b", 1, 48, 2048, 2048, 2740, True),
    ("h100", "fp8", "llama-2-70b", 2, 1024, 128, 128, 2657, True),
    ("h100", "fp8", "llama-2-70b", 4, 480, 128, 2048, 1486, True),
    ("h100", "fp8", "llama-2-70b", 2, 96, 2048, 128, 306, True),
    ("h100", "fp8", "llama-2-70b", 2, 64, 2048, 2048, 547, True),
    ("a100", "fp16", "llama-2-7b", 1, 384, 128, 128, 5586, True),
    ("a100", "fp16", "llama-2-7b", 1, 60, 128, 2048, 1928, True),
    ("a100", "fp16", "llama-2-7b", 1, 52, 2048, 128, 591, True),
    ("a100", "fp16", "llama-2-7b", 2, 64, 2048, 2048, 782, True),
    ("a100", "fp16", "llama-2-70b", 4, 1280, 128, 128, 670, True),
    ("a100", "fp16", "llama-2-70b", 4, 240, 128, 2048, 525, True),
    ("a100", "fp16", "llama-2-70b", 4, 120, 2048, 128, 79, True),
]
# "Low Latency" tables (v0.5 data): batch 1 first-token latency (s)
FIRST_TOKEN = [
    ("h100", "fp8", "llama-2-7b", 1, 128, 0.007), ("h100", "fp8", "llama-2-7b", 1, 2048, 0.036),
    ("h100", "fp8", "llama-2-70b", 4, 128, 0.026), ("h100", "fp8", "llama-2-70b", 4, 2048, 0.109),
    ("a100", "fp16", "llama-2-7b", 1, 128, 0.016), ("a100", "fp16", "llama-2-7b", 1, 2048, 0.133),
    ("a100", "fp16", "llama-2-70b", 4, 128, 0.047), ("a100", "fp16", "llama-2-70b", 4, 2048, 0.377),
]
TRT09 = "TensorRT-LLM docs/source/performance.md @250d9c2 (v0.9.0)"
# (gpu, precision, model, tp, batch, input, output, out tok/s/GPU, per_gpu): v0.9.0 "Peak Throughput" tables, every
# header "Throughput (out tok/s/GPU)". "fp8-e16": the tables' FP8 as v0.9.0 could run a MoE model (module docstring).
MOE_THROUGHPUT = [
    ("h200", "fp8-e16", "mixtral-8x7b", 2, 1024, 128, 128, 5444, True),
    ("h200", "fp8-e16", "mixtral-8x7b", 2, 256, 128, 2048, 4973, True),
    ("h200", "fp8-e16", "mixtral-8x7b", 2, 64, 2048, 128, 605, True),
    ("h200", "fp8-e16", "mixtral-8x7b", 2, 64, 2048, 2048, 1821, True),
    ("h100", "fp8-e16", "mixtral-8x7b", 2, 512, 128, 128, 5255, True),
    ("h100", "fp8-e16", "mixtral-8x7b", 2, 128, 128, 2048, 3408, True),
    ("h100", "fp8-e16", "mixtral-8x7b", 2, 64, 2048, 128, 588, True),
    ("h100", "fp8-e16", "mixtral-8x7b", 2, 32, 2048, 2048, 1317, True),
    ("a100", "fp16", "mixtral-8x7b", 2, 512, 128, 128, 2842, True),
    ("a100", "fp16", "mixtral-8x7b", 2, 128, 128, 2048, 1724, True),
    ("a100", "fp16", "mixtral-8x7b", 2, 64, 2048, 128, 319, True),
    ("a100", "fp16", "mixtral-8x7b", 2, 32, 2048, 2048, 801, True),
]
# v0.9.0 "Low Latency" tables: batch 1 first-token latency (s)
MOE_FIRST_TOKEN = [
    ("h200", "fp8-e16", "mixtral-8x7b", 2, 128, 0.0121), ("h200", "fp8-e16", "mixtral-8x7b", 2, 2048, 0.0877),
    ("h100", "fp8-e16", "mixtral-8x7b", 2, 128, 0.0134), ("h100", "fp8-e16", "mixtral-8x7b", 2, 2048, 0.0895),
    ("a100", "fp16", "mixtral-8x7b", 2, 128, 0.0238), ("a100", "fp16", "mixtral-8x7b", 2, 2048, 0.1609),
]
SYSTEMS = {"h100": "dgx-h100", "a100": "dgx-a100", "h200": "dgx-h200"}
DEVICES = {"h100": "h100", "a100": "a100-80gb", "h200": "h200"}


# Routing of the MoE decode steps: None = hwsim's default (tokens spread over the experts); "identical" = every
# sequence's token to the same top-k experts (a sensitivity for the MoE rows, --moe-decode-routing; never in MAPE)
DECODE_ROUTING = None


def _experts(model, phase, batch):
    if DECODE_ROUTING != "identical" or phase != "decode":
        return None
    from workloads.capture import load_spec
    moe = load_spec(model).moe
    if moe is None:
        return None
    return [batch] * moe.top_k + [0] * (moe.num_experts - moe.top_k)


def _workload(model, phase, batch, seq, precision):
    if precision == "fp8":
        return build_workload(model, phase, batch, seq, dtype="bf16", quant="fp8", kv_dtype="fp8",
                              expert_tokens=_experts(model, phase, batch))
    if precision == "fp8-e16":
        return _fp8_16bit_experts(model, phase, batch, seq)
    return build_workload(model, phase, batch, seq, dtype=precision, expert_tokens=_experts(model, phase, batch))


def _fp8_16bit_experts(model, phase, batch, seq):
    """FP8 projections and KV cache with the routed experts' ops in 16 bits: TensorRT-LLM v0.9.0's MoE layer keeps
    its expert weights in the model dtype (no FP8 path), the attention projections take the FP8 quantization."""
    from hw_models.moe import expert_of
    ex = _experts(model, phase, batch)
    fp8 = build_workload(model, phase, batch, seq, dtype="bf16", quant="fp8", kv_dtype="fp8", expert_tokens=ex)
    b16 = build_workload(model, phase, batch, seq, dtype="bf16", kv_dtype="fp8", expert_tokens=ex)
    assert [o.name for o in fp8.ops] == [o.name for o in b16.ops]
    ops = [o16 if expert_of(o8.name) is not None else o8 for o8, o16 in zip(fp8.ops, b16.ops)]
    g = fp8.with_ops(ops)
    g.recipe = fp8.recipe
    return g


def step_time(gpu, precision, model, tp, phase, batch, seq, profile):
    g = _workload(model, phase, batch, seq, precision)
    if tp == 1:
        t = predict(g, load_device(DEVICES[gpu]), profile=profile).latency_s
    else:
        system = load_system(SYSTEMS[gpu])
        t = simulate(map_graph(g, system, f"tp:{tp}"), system, profile).latency_s
    return t          # the stack's per-step host time is in predict/simulate (hw_models.stacks.step_host_wait_s)


def roofline_step(gpu, precision, model, tp, phase, batch, seq):
    g = _workload(model, phase, batch, seq, precision)
    return roofline_time(g, load_device(DEVICES[gpu])) / tp


def generate_time(step, batch, inp, out, points=6):
    """prefill + sum of decode steps over contexts inp .. inp+out-1 (decode time is near linear in context:
    trapezoid over `points` contexts)."""
    pre = step("prefill", batch, inp)
    ctxs = [inp + round(i * (out - 1) / (points - 1)) for i in range(points)]
    times = [step("decode", batch, c) for c in ctxs]
    dec = sum((times[i] + times[i + 1]) / 2 * (ctxs[i + 1] - ctxs[i]) for i in range(points - 1)) + times[-1]
    return pre + dec


def published(profiles, moe=True):
    print("Published TensorRT-LLM static-batch generate throughput (output tokens/s) and first-token latency")
    print(f"source: {TRT}")
    hdr = f"{'gpu':5s} {'prec':4s} {'model':12s} {'tp':>2s} {'batch':>5s} {'in':>5s} {'out':>5s} {'published':>9s}"
    print(hdr + "".join(f" {p:>16s}" for p in profiles + ["roofline"]))
    errs = {}
    for gpu, prec, model, tp, b, inp, out, tput, per_gpu in THROUGHPUT:
        row = f"{gpu:5s} {prec:4s} {model:12s} {tp:2d} {b:5d} {inp:5d} {out:5d} {tput:9,d}"
        for p in profiles + ["roofline"]:
            if p == "roofline":
                step = lambda ph, bb, s: roofline_step(gpu, prec, model, tp, ph, bb, s)  # noqa: E731
            else:
                step = lambda ph, bb, s, p=p: step_time(gpu, prec, model, tp, ph, bb, s, p)  # noqa: E731
            pred = b * out / generate_time(step, b, inp, out) / (tp if per_gpu else 1)
            e = (pred - tput) / tput
            row += f" {pred:9,.0f} {100 * e:+5.0f}%"
            key = (p, gpu, prec, "TP1" if tp == 1 else "TP>1", "GQA" if "70b" in model else "MHA", "tput")
            errs.setdefault(key, []).append(abs(e))
        print(row)
    print()
    print(f"{'gpu':5s} {'prec':4s} {'model':12s} {'tp':>2s} {'input':>5s} {'published ms':>12s}"
          + "".join(f" {p:>16s}" for p in profiles + ["roofline"]))
    for gpu, prec, model, tp, inp, ftl in FIRST_TOKEN:
        row = f"{gpu:5s} {prec:4s} {model:12s} {tp:2d} {inp:5d} {ftl * 1e3:12.1f}"
        for p in profiles + ["roofline"]:
            if p == "roofline":
                pred = roofline_step(gpu, prec, model, tp, "prefill", 1, inp)
            else:
                pred = step_time(gpu, prec, model, tp, "prefill", 1, inp, p) + request_host_s(p, tp)
            e = (pred - ftl) / ftl
            row += f" {pred * 1e3:9.1f} {100 * e:+5.0f}%"
            key = (p, gpu, prec, "TP1" if tp == 1 else "TP>1", "GQA" if "70b" in model else "MHA", "ftl")
            errs.setdefault(key, []).append(abs(e))
        print(row)
    if moe:
        published_moe(profiles + [p for p in MOE_PROFILES if p not in profiles], errs)
        published_control(profiles + [p for p in MOE_PROFILES if p not in profiles], errs)
    _summary(errs)
    return errs


def _summary(errs):
    print("\nMAPE by stack, GPU and precision, TP, attention (MoE rows: their own group, held out), metric:")
    for key in sorted(errs):
        v = errs[key]
        print(f"  {' '.join(key):45s} n={len(v):2d}  MAPE {100 * statistics.mean(v):5.1f}%  max {100 * max(v):5.1f}%")


# the stack whose MoE layer runs grouped expert GEMMs as TensorRT-LLM's MoE plugin does; printed beside the others
MOE_PROFILES = ["trtllm"]


def _step(p, gpu, prec, model, tp):
    if p == "roofline":
        return lambda ph, bb, s: roofline_step(gpu, prec, model, tp, ph, bb, s)
    return lambda ph, bb, s: step_time(gpu, prec, model, tp, ph, bb, s, p)


def published_moe(profiles, errs=None, throughput=None, first_token=None, group="MoE", title=None):
    """Mixtral rows of the v0.9.0 tables (held out): printed, their |relative errors| added to `errs` under
    (profile, group, gpu, precision, "TP1"/"TP>1", metric); returns (errs, rows) with rows
    [(kind, row, {profile: prediction})]. `published_control` runs the same table's dense rows through it."""
    errs = {} if errs is None else errs
    throughput = MOE_THROUGHPUT if throughput is None else throughput
    first_token = MOE_FIRST_TOKEN if first_token is None else first_token
    cols = profiles + ["roofline"]
    out = []
    print(f"\n{title or 'MoE (held out): Mixtral-8x7B'} static-batch generate throughput and first-token latency; "
          f"source: {TRT09}")
    print(f"{'gpu':5s} {'prec':7s} {'model':12s} {'tp':>2s} {'batch':>5s} {'in':>5s} {'out':>5s} {'published':>9s}"
          + "".join(f" {p:>16s}" for p in cols))
    for r in throughput:
        gpu, prec, model, tp, b, inp, o, tput, per_gpu = r
        line, preds = f"{gpu:5s} {prec:7s} {model:12s} {tp:2d} {b:5d} {inp:5d} {o:5d} {tput:9,d}", {}
        for p in cols:
            pred = b * o / generate_time(_step(p, gpu, prec, model, tp), b, inp, o) / (tp if per_gpu else 1)
            e = (pred - tput) / tput
            preds[p] = pred
            line += f" {pred:9,.0f} {100 * e:+5.0f}%"
            errs.setdefault((p, group, gpu, prec, "TP1" if tp == 1 else "TP>1", "tput"), []).append(abs(e))
        out.append(("tput", r, preds))
        print(line)
    print(f"{'gpu':5s} {'prec':7s} {'model':12s} {'tp':>2s} {'input':>5s} {'published ms':>12s}"
          + "".join(f" {p:>16s}" for p in cols))
    for r in first_token:
        gpu, prec, model, tp, inp, ftl = r
        line, preds = f"{gpu:5s} {prec:7s} {model:12s} {tp:2d} {inp:5d} {ftl * 1e3:12.1f}", {}
        for p in cols:
            pred = _step(p, gpu, prec, model, tp)("prefill", 1, inp) + (request_host_s(p, tp) if p != "roofline" else 0)
            e = (pred - ftl) / ftl
            preds[p] = pred
            line += f" {pred * 1e3:9.1f} {100 * e:+5.0f}%"
            errs.setdefault((p, group, gpu, prec, "TP1" if tp == 1 else "TP>1", "ftl"), []).append(abs(e))
        out.append(("ftl", r, preds))
        print(line)
    return errs, out


# The dense control of the MoE rows: Mistral-7B rows of the same v0.9.0 tables (TP1). Mixtral-8x7B is Mistral-7B's
# attention (32 layers, 4096 wide, 32 query / 8 KV heads) with its MLP replaced by the 8-expert layer, so the MoE rows'
# error beyond this control's is the expert layer's (docs/stack-accuracy.md, "MoE rows"). Not fitted on either.
CONTROL_THROUGHPUT = [
    ("h200", "fp8", "mistral-7b", 1, 896, 128, 128, 20460, True),
    ("h200", "fp8", "mistral-7b", 1, 120, 128, 2048, 8950, True),
    ("h200", "fp8", "mistral-7b", 1, 64, 2048, 128, 2423, True),
    ("h200", "fp8", "mistral-7b", 1, 56, 2048, 2048, 3867, True),
    ("h100", "fp8", "mistral-7b", 1, 896, 128, 128, 20404, True),
    ("h100", "fp8", "mistral-7b", 1, 120, 128, 2048, 8623, True),
    ("h100", "fp8", "mistral-7b", 1, 84, 2048, 128, 2405, True),
    ("h100", "fp8", "mistral-7b", 1, 56, 2048, 2048, 3731, True),
    ("a100", "fp16", "mistral-7b", 1, 896, 128, 128, 6251, True),
    ("a100", "fp16", "mistral-7b", 1, 120, 128, 2048, 3776, True),
    ("a100", "fp16", "mistral-7b", 1, 64, 2048, 128, 698, True),
    ("a100", "fp16", "mistral-7b", 1, 56, 2048, 2048, 1576, True),
]
CONTROL_FIRST_TOKEN = [
    ("h200", "fp8", "mistral-7b", 1, 128, 0.0059), ("h200", "fp8", "mistral-7b", 1, 2048, 0.0317),
    ("h100", "fp8", "mistral-7b", 1, 128, 0.0065), ("h100", "fp8", "mistral-7b", 1, 2048, 0.0324),
    ("a100", "fp16", "mistral-7b", 1, 128, 0.0163), ("a100", "fp16", "mistral-7b", 1, 2048, 0.1396),
]


def published_control(profiles, errs=None):
    """The MoE rows' dense control (CONTROL_*), under the group "v0.9-dense"."""
    return published_moe(profiles, errs, CONTROL_THROUGHPUT, CONTROL_FIRST_TOKEN, group="v0.9-dense",
                         title="Dense control of the MoE rows: Mistral-7B (same tables),")


def step_parts(gpu, precision, model, tp, phase, batch, seq, profile):
    """(step seconds, {op kind or 'collective': seconds}) of one step under a stack, summed over the step's nodes."""
    from sim.engine import _Programs, _timed
    g = _workload(model, phase, batch, seq, precision)
    system = load_system(SYSTEMS[gpu])
    tg = map_graph(g, system, f"tp:{tp}")
    progs = _Programs(tg, system, profile)
    parts = {}
    for n, t, _, _ in _timed(tg, system, profile, progs):
        if n.kind == "op":
            for op, tt, _ in progs.op_costs(n.program, n.ops):
                parts[op.kind] = parts.get(op.kind, 0.0) + tt * n.repeat
        else:
            parts[n.kind] = parts.get(n.kind, 0.0) + t * n.repeat
    return simulate(tg, system, profile).latency_s, parts


def breakdown(profile="trtllm-0.6", rows=None):
    """Where each TP>1 row's generate time goes: prefill, and decode at the middle context times the output tokens."""
    print(f"TP>1 rows under {profile}: share of hwsim's generate time (decode priced at the middle context)")
    for gpu, prec, model, tp, b, inp, out, tput, per_gpu in (THROUGHPUT if rows is None else rows):
        if tp == 1:
            continue
        tp_, pp = step_parts(gpu, prec, model, tp, "prefill", b, inp, profile)
        td, dp = step_parts(gpu, prec, model, tp, "decode", b, inp + out // 2, profile)
        total = tp_ + out * td

        def f(x):
            return f"{100 * x / total:3.0f}%"
        print(f"{gpu} {model} TP{tp} {b}x{inp}->{out}: hwsim {total:6.1f} s, published implies "
              f"{b * out / (tput * (tp if per_gpu else 1)):6.1f} s; prefill {f(tp_)} (GEMM {f(pp.get('matmul', 0))}, "
              f"all-reduce {f(pp.get('collective', 0))}), decode attention {f(out * dp.get('attention', 0))}, "
              f"GEMM {f(out * dp.get('matmul', 0))}, all-reduce {f(out * dp.get('collective', 0))}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernels-only", action="store_true")
    ap.add_argument("--published-only", action="store_true")
    ap.add_argument("--profiles", default="trtllm-0.6,fused")
    ap.add_argument("--breakdown", action="store_true", help="where each TP>1 row's time goes (first profile)")
    ap.add_argument("--moe", choices=("with", "without", "only"), default="with",
                    help="the held-out Mixtral rows (TensorRT-LLM v0.9.0): with the others (default), without, or "
                         "only them (with --breakdown: break the MoE rows down)")
    ap.add_argument("--moe-decode-routing", choices=("spread", "identical"), default="spread",
                    help="sensitivity: route every MoE decode token of a batch to the same experts (identical)")
    args = ap.parse_args()
    global DECODE_ROUTING
    DECODE_ROUTING = "identical" if args.moe_decode_routing == "identical" else None
    profiles = args.profiles.split(",")
    if args.breakdown:
        breakdown(profiles[0], MOE_THROUGHPUT if args.moe == "only" else None)
        return 0
    if args.moe == "only":
        errs, _ = published_moe(profiles + [p for p in MOE_PROFILES if p not in profiles])
        published_control(profiles + [p for p in MOE_PROFILES if p not in profiles], errs)
        _summary(errs)
        return 0
    if not args.published_only:
        from benchmarks.gpu.fit_stack import kernel_report
        kernel_report()
    if not args.kernels_only:
        published(profiles, moe=args.moe == "with")
    return 0


if __name__ == "__main__":
    sys.exit(main())
