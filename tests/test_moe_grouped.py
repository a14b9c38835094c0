"""The grouped MoE layer in predict/simulate (hw_models/moe.py group_experts, GPUModel._grouped, GPUTable._grouped):
under a stack whose moe_kernel is grouped, hwsim's traced per-expert ops cost what hw_models/moe.py's grouped
layer costs (one grouped GEMM per projection, tiles pooled over the SMs, elementwise floors once per layer); under
a loop stack they cost what its loop costs; the fast path gives the full path's figures; HF's traced
torch._grouped_mm is priced by the same grouped model."""
import pytest

from hw_models import load_device
from hw_models.gpu import GPUModel
from hw_models.power import PowerModel
from hw_models.moe import MoELayer, grouped_gemm_s, grouped_parts, kernels
from sim import api
from sim.predict import op_arrays
from workloads.recipe import build_workload

H, F = 4096, 14336          # Mixtral-8x7b


def _close(a, b, rel=1e-9):
    return abs(a - b) <= rel * max(abs(a), abs(b))


def _expert_gemm_s(graph, profile, device="h200"):
    """Seconds of one layer's routed-expert GEMMs and the rows per expert, from the full path's op costs."""
    _, _, top, _ = op_arrays(graph, load_device(device), profile)
    t, rows = 0.0, []
    for op, c in zip(graph.ops, top):
        if op.kind == "matmul" and ".experts." in op.name:
            t += c.time_s
            if op.name.endswith("gate_proj"):
                rows.append(op.attrs["m"])
    return t, rows


@pytest.mark.parametrize("batch", [1, 4, 64])
def test_expert_gemms_cost_the_grouped_layer_or_the_loop(batch):
    g = build_workload("mixtral-8x7b", "decode", batch, 500, 0)
    m = GPUModel(load_device("h200"))
    grouped, rows = _expert_gemm_s(g, "hf-generate")         # moe_kernel grouped, eager kernels
    loop, _ = _expert_gemm_s(g, "eager")                      # moe_kernel loop
    clock = PowerModel(load_device("h200")).f_max
    want = grouped_gemm_s(m, rows, 2 * F, H, clock) + grouped_gemm_s(m, rows, H, F, clock)
    assert _close(grouped, want)
    layer = MoELayer(batch, H, F, 2, tuple(rows))
    # a step's expert GEMMs are priced as plain GEMMs at the step's kernel floor; moe.py's loop kernels add the loop's
    # own terms (moe_loop_floor_us in place of that floor, the few-row cost moe_loop_row_us, the few-row GEMMs' weight
    # stream moe_loop_bw_eff: the loop as the stack rows ran it): compared without them
    at_step_floor = GPUModel(load_device("h200"), params={"moe_loop_floor_us": None, "moe_loop_row_us": 0.0,
                                                          "moe_loop_bw_eff": None})
    loop_mm = [k for k in kernels(at_step_floor, layer, "loop", clock) if k.part == "experts" and k.aten == "mm"]
    assert _close(loop, sum(k.gpu_s for k in loop_mm))
    # the H200's grouped GEMM (no split-K, 0.55 of DRAM bandwidth) is slower than the loop's split-K GEMMs at a few
    # rows per expert: the model's own ordering, not an equality
    assert grouped > 1.2 * loop


def test_grouped_floors_once_per_layer():
    """Qwen1.5-MoE at 32 tokens: 60 experts with rows; the grouped layer pays each elementwise role's floors once,
    the loop once per expert."""
    g = build_workload("qwen1.5-moe-a2.7b", "prefill", 1, 32, 0)
    dev = load_device("h200")
    def other(profile):
        _, _, top, _ = op_arrays(g, dev, profile)
        return sum(c.overhead_s for op, c in zip(g.ops, top) if op.kind != "matmul" and
                   (".experts." in op.name or ".gathers." in op.name or ".combines." in op.name))
    active = sum(1 for op in g.ops if op.name.endswith("gate_proj") and ".experts." in op.name)
    assert active > 20
    assert _close(other("eager"), active * other("hf-generate"))


@pytest.mark.parametrize("profile", ["vllm", "sglang", "trtllm"])
@pytest.mark.parametrize("model,phase,batch,seq,ctx", [
    ("mixtral-8x7b", "decode", 1, 500, 0), ("mixtral-8x7b", "decode", 7, 900, 0),
    ("mixtral-8x7b", "prefill", 4, 1000, 0), ("qwen1.5-moe-a2.7b", "decode", 64, 2000, 0),
    ("qwen1.5-moe-a2.7b", "chunked_prefill", 2, 256, 512), ("deepseek-v2-lite", "prefill", 1, 300, 0)])
@pytest.mark.parametrize("hardware", ["h100", "h200"])
def test_grouped_fast_path_equals_the_full_path(profile, model, phase, batch, seq, ctx, hardware):
    from sim.api import _warm
    full = api.predict(model, hardware, phase, batch, seq, ctx, profile=profile, detail=True)
    fast = api.predict(model, hardware, phase, batch, seq, ctx, profile=profile)
    for f in ("latency_s", "energy_j", "avg_power_w", "peak_power_w", "clock_mhz", "flops", "bytes"):
        assert _close(getattr(fast, f), getattr(full, f)), f
    assert (fast.bound, fast.fits, fast.power_capped) == (full.bound, full.fits, full.power_capped)
    _, _, compiled = _warm(model, hardware, phase, profile, {})
    assert compiled is not None and any(v is not None and v[1].grouped for v in compiled.blocks.values())


def test_grouped_stack_differs_from_loop_on_the_fast_path():
    """The same fused kernels with and without the grouped layer: vllm vs the plain fused stack's MoE layer."""
    from hw_models.stacks import STACKS
    assert STACKS["vllm"].moe_kernel == "grouped" and STACKS["fused"].moe_kernel == "loop"
    g = build_workload("mixtral-8x7b", "decode", 8, 1000, 0)
    a, _ = _expert_gemm_s(g, "vllm")
    b, _ = _expert_gemm_s(g, "fused")
    assert a != b


def test_hf_grouped_mm_op_is_priced_as_the_grouped_gemm():
    pytest.importorskip("transformers")
    g = build_workload("mixtral-8x7b", "prefill", 2, 64, 0, impl="hf")    # generate()'s decode runs batched_mm
    dev = load_device("h200")
    m = GPUModel(dev)
    clock = PowerModel(dev).f_max
    ops = [op for op in g.ops if op.attrs.get("grouped")]
    assert len(ops) == 2
    for op in ops:
        a = op.attrs
        c = m.cost(op, clock)
        parts = grouped_parts(m, [(a["m"], a["batch"])], a["n"], a["k"], clock, sum(op.bytes.values()))
        assert _close(c.time_s, max(parts[0], parts[1]) + parts[2])
        plain = m.cost(op.scaled(attrs={k: v for k, v in a.items() if k != "grouped"}), clock)
        assert c.time_s > 1.3 * plain.time_s      # 0.55 of DRAM bandwidth against the plain GEMM's bw_eff


@pytest.mark.parametrize("model,phase,points", [
    ("mixtral-8x7b", "decode", [(1, 1, 500), (3, 1, 77), (64, 1, 4000)]),
    ("qwen1.5-moe-a2.7b", "prefill", [(1, 128, 0), (2, 512, 0)])])
def test_class_template_prices_the_grouped_layer_as_the_trace(model, phase, points):
    """The array path (a class template for many steps: two classes of experts, counts as arrays) and the one-step
    template path give the traced step's figures under a grouped stack."""
    import numpy as np

    from sim.predict import predict
    from sim.sweep import predict_many
    from workloads.capture import load_spec, moe_template
    tpl = moe_template(load_spec(model), phase)
    dev = load_device("h200")
    b, n, c = (np.array([p[i] for p in points]) for i in range(3))
    codes = tpl.block(b, n, c)
    for code in np.unique(codes):
        idx = np.where(codes == code)[0]
        r = predict_many(tpl.instantiate_many(b[idx], n[idx], c[idx]), dev, "vllm")
        for j, i in enumerate(idx):
            bb, nn, cc = points[i]
            ref = predict(build_workload(model, phase, bb, nn if phase != "decode" else cc, 0), dev, "vllm")
            loop = predict(build_workload(model, phase, bb, nn if phase != "decode" else cc, 0), dev, "fused")
            one = predict(tpl.instantiate(bb, nn, cc), dev, "vllm")
            for got in (one.latency_s, r["latency_s"][j]):
                assert _close(got, ref.latency_s)
            for got in (one.energy_j, r["energy_j"][j]):
                assert _close(got, ref.energy_j)
            assert ref.latency_s != loop.latency_s


@pytest.mark.parametrize("phase,b,s", [("decode", 3, 77), ("decode", 64, 4000), ("prefill", 1, 128)])
def test_serving_step_prices_the_grouped_layer_as_predict(phase, b, s):
    from sim.serving.step_cost import Batch, StepCost
    cost = StepCost("mixtral-8x7b", "h100", "single", profile="vllm", routing="even", max_tokens=4096,
                    max_seqs=256, max_context=8192)
    batch = Batch([], b, b * (s + 1)) if phase == "decode" else Batch([(s, 0)] * b)
    ref = api.predict("mixtral-8x7b", "h100", phase, b, s, profile="vllm")
    assert cost.cost(batch).time_s == pytest.approx(ref.latency_s, rel=1e-5)


def test_expert_parallel_serving_tiles_each_devices_experts():
    """ep:2: each device's grouped GEMM over its own experts, as the execution layer's mapped step prices it."""
    from sim.serving.step_cost import Batch, StepCost
    cost = StepCost("mixtral-8x7b", "dgx-h100", "ep:2", profile="vllm", routing="even", max_tokens=8192,
                    max_seqs=256, max_context=8192)
    fast = cost.cost(Batch([], 16, 16 * 1001))
    ref = api.simulate("mixtral-8x7b", "dgx-h100", "ep:2", "decode", 16, 1000, profile="vllm")
    assert fast.time_s == pytest.approx(ref.latency_s, rel=1e-4)
    assert fast.energy_j == pytest.approx(ref.energy_j, rel=1e-4)


@pytest.mark.parametrize("hardware,phase,batch,seq", [("h100", "prefill", 16, 4000),
                                                      ("h100+power_cap=350W", "decode", 256, 2000)])
def test_grouped_layer_under_the_power_cap(hardware, phase, batch, seq):
    """Capped steps: the grouped layer's parts go through the closed-form solve as the full path's op arrays do."""
    full = api.predict("mixtral-8x7b", hardware, phase, batch, seq, profile="vllm", detail=True)
    fast = api.predict("mixtral-8x7b", hardware, phase, batch, seq, profile="vllm")
    assert full.power_capped and fast.power_capped
    for f in ("latency_s", "energy_j", "avg_power_w", "peak_power_w", "clock_mhz"):
        assert _close(getattr(fast, f), getattr(full, f)), f


@pytest.mark.parametrize("quant, ratio", [("fp8", 0.5), ("w4a16", 0.25)])
def test_grouped_gemm_streams_quantized_weights_at_their_width(quant, ratio):
    """The per-SM stream of a grouped GEMM's weight slab counted 2 bytes an element whatever the precision, so
    Mixtral's FP8 experts under the grouped stacks (vllm, trtllm, sglang) streamed as if 16-bit: 35.95 ms a decode
    step against fused's 22.13 (found by a new-user pass over the stacks). A tile's weight stream now takes the
    op's weight bits; fast and full paths agree."""
    gpu = GPUModel(load_device("h100"))
    base = grouped_parts(gpu, [(2, 8)], 28672, 4096, 1980)
    w_bytes = 2 * ratio
    q = grouped_parts(gpu, [(2, 8)], 28672, 4096, 1980, w_bytes=w_bytes, a_bytes=1.0 if quant == "fp8" else 2.0)
    assert q[1] < base[1] * (ratio + 0.05)             # memory part: the weight slab dominates at 2 rows
    kw = dict(phase="decode", batch=8, seq_len=1024, quant=quant)
    grouped = api.predict("mixtral-8x7b", "h100", profile="vllm", **kw)
    loop = api.predict("mixtral-8x7b", "h100", profile="fused", **kw)
    assert grouped.latency_s < 1.05 * loop.latency_s
    full = api.predict("mixtral-8x7b", "h100", profile="vllm", detail=True, **kw)
    assert full.latency_s == pytest.approx(grouped.latency_s, rel=1e-9)
