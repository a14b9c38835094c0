"""Software stacks: merged projections and the custom all-reduce."""
from __future__ import annotations

import pytest

from hw_models.collectives import collective_time, link_collective_time
from hw_models.stacks import stack
from hw_models.systems import load_system
from mapping import map_graph
from sim.engine import simulate
from sim.predict import predict
from workloads import trace
from workloads.errors import HwsimError
from workloads.fusion import merge_sibling_matmuls


def test_merge_keeps_flops_and_weights_and_reads_the_input_once():
    g = trace("llama-3.1-8b", "decode", 4, 256)
    m, remap = merge_sibling_matmuls(g)
    names = [op.name for op in m.ops]
    assert "attn.q_proj+k_proj+v_proj" in names and "mlp.gate_proj+up_proj" in names
    assert len(m.ops) == len(g.ops) - 3
    assert m.totals()["flops"] == g.totals()["flops"]
    assert m.totals()["weight_bytes"] == g.totals()["weight_bytes"]
    qkv = next(op for op in m.ops if op.name.endswith("v_proj"))
    q = next(op for op in g.ops if op.name == "attn.q_proj")
    assert qkv.attrs["n"] == sum(op.attrs["n"] for op in g.ops if op.name in ("attn.q_proj", "attn.k_proj", "attn.v_proj"))
    # the shared input (batch x hidden bf16) is read once instead of three times
    saved = g.totals()["activation_bytes"] - m.totals()["activation_bytes"]
    hidden_input = q.reads["activation"]          # q/k/v and gate/up all read a (batch, hidden) input
    assert saved == (2 + 1) * hidden_input * q.repeat      # two reads saved on q/k/v, one on gate/up
    # every edge points at an op that exists
    assert set(a for e in m.graph.edges for a in e) <= {op.index for op in m.ops}
    assert merge_sibling_matmuls(m)[0].ops == m.ops          # idempotent


def test_merge_leaves_models_without_siblings_alone():
    g = trace("gpt2", "decode", 1, 64)          # one fused c_attn projection already
    assert len(merge_sibling_matmuls(g)[0].ops) == len(g.ops)


def test_fused_stack_is_faster_at_batch_one_decode():
    from hw_models.presets import load_device
    g = trace("llama-3.1-8b", "decode", 1, 512)
    dev = load_device("h100-sxm-80gb")
    assert predict(g, dev, "fused").latency_s < predict(g, dev, "eager").latency_s


def test_custom_all_reduce_only_below_its_limit_and_never_slower():
    link = load_system("dgx-h100").links["nvlink"]
    n = 8
    for nbytes in (2e3, 16e3, 1e6, 8e6, 64e6):
        nccl = collective_time("all_reduce_ring", nbytes, n, link.bandwidth_gbps * 1e9 * link.efficiency,
                               link.latency_us * 1e-6)
        assert link_collective_time("all_reduce_ring", nbytes, n, link) == pytest.approx(nccl)
        custom = link_collective_time("all_reduce_ring", nbytes, n, link, custom_all_reduce=True)
        assert custom <= nccl
        if nbytes > link.custom_all_reduce.max_bytes:
            assert custom == pytest.approx(nccl)
    small = 16e3
    assert link_collective_time("all_reduce_ring", small, n, link, True) < 0.6 * link_collective_time("all_reduce_ring", small, n, link)
    assert link_collective_time("all_gather", small, n, link, True) == link_collective_time("all_gather", small, n, link)


def test_link_efficiency_slows_large_collectives():
    link = load_system("dgx-h100").links["nvlink"]
    full = collective_time("all_reduce_ring", 64e6, 8, link.bandwidth_gbps * 1e9, link.latency_us * 1e-6)
    assert link_collective_time("all_reduce_ring", 64e6, 8, link) > full


def test_tp8_fused_step_uses_merged_graph_and_keeps_collectives():
    s = load_system("dgx-h100")
    mapped = map_graph(trace("llama-2-70b", "decode", 1, 512), s, "tp:8")
    r, eager = simulate(mapped, s, "fused", trace=True), simulate(mapped, s, "eager", trace=True)
    assert len(r.prediction.ops) < len(eager.prediction.ops)          # q/k/v and gate/up merged by the stack
    assert len([e for e in r.events if e["args"]["kind"] == "collective"]) == \
        len([e for e in eager.events if e["args"]["kind"] == "collective"])
    assert r.link_bytes["nvlink"] == pytest.approx(simulate(mapped, s, "eager").link_bytes["nvlink"])


def test_unknown_stack_is_a_clear_error():
    with pytest.raises(HwsimError, match="unknown software profile"):
        stack("turbo")


def test_array_sweep_merges_like_single_predict():
    from hw_models.presets import load_device
    from sim.sweep import predict_many
    from workloads import capture
    dev = load_device("h100-sxm-80gb")
    points = [(8, 512), (16, 1024)]          # (batch, cached tokens), one decode token each; one regime
    single = [predict(trace("llama-3.1-8b", "decode", b, c), dev, "fused").latency_s for b, c in points]
    tpl = capture._template(capture.load_spec("llama-3.1-8b"), "decode")
    graph = tpl.instantiate_many(*zip(*((b, 1, c) for b, c in points)))
    many = predict_many(graph, dev, "fused")["latency_s"]
    assert list(many) == pytest.approx(single, rel=1e-6)


def test_host_launched_steps_match_the_measured_eager_runs():
    """The eager-launch stack against the lent H100's plain eager runs (launch.csv): 14 steps, one model fitted."""
    import csv
    import statistics
    import sys
    from pathlib import Path
    from hw_models.presets import load_device
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "benchmarks" / "gpu"))
    from measure_launch import shard_config
    dev = load_device("h100-sxm-80gb")
    shard = shard_config("llama-2-70b", 8)
    errs = []
    for r in csv.DictReader(open(root / "benchmarks/gpu/data/h100-sxm-2026-11-24-launch/launch.csv")):
        g = trace(shard if r["model"].endswith("/tp8") else r["model"], r["phase"], int(r["batch"]), int(r["seq_len"]))
        p = predict(g, dev, "eager-launch").latency_s
        errs.append(abs(p - float(r["eager_s"])) / float(r["eager_s"]))
        assert p > predict(g, dev, "eager").latency_s          # launching from the host is never faster
    assert statistics.mean(errs) < 0.15 and max(errs) < 0.25


def test_paged_decode_reads_fp8_kv_at_its_measured_rate():
    """The H200's split-K paged decode kernel reads FP8 KV at 0.34 of DRAM bandwidth against 0.91 for bf16 KV
    (benchmarks/gpu/fit_stack.py, measured 2026-12-06): FP8 KV halves the bytes but not the attention time. That
    kernel is the `triton-splitk` stack's; vLLM's own FP8-KV kernel (not measured here) reads half the bytes at its
    bf16 rate."""
    from hw_models import load_device
    from hw_models.gpu import GPUModel
    from workloads.recipe import build_workload as build
    dev = load_device("h200")

    def attn(kv, profile):
        g = build("llama-3.1-8b", "decode", 64, 4096, kv_dtype=kv)
        op = next(o for o in g.ops if o.kind == "attention")
        return op, GPUModel(dev, profile=profile).cost(op, 1980).time_s
    op8, t8 = attn("fp8", "triton-splitk")
    op16, t16 = attn("bf16", "triton-splitk")
    assert op8.attrs["kv_bits"] == 8 and "kv_bits" not in op16.attrs
    assert op8.reads["kv_cache"] == 0.5 * op16.reads["kv_cache"]
    assert t8 > 1.1 * t16
    v8, v16 = attn("fp8", "vllm")[1], attn("bf16", "vllm")[1]
    assert v16 == pytest.approx(t16, rel=1e-12) and v8 < 0.75 * v16


def test_step_host_time_is_added_once_by_predict_and_simulate(monkeypatch):
    """A stack's step_overhead_us is host time every iteration waits for: predict and simulate add it (once) to the
    step, with the device's static power while it waits."""
    from dataclasses import replace

    from hw_models import load_device
    from hw_models.stacks import STACKS
    g = trace("llama-3.1-8b", "decode", 8, 1024)
    dev = load_device("h100")
    system = load_system("dgx-h100")
    base_p = predict(g, dev, profile="vllm")
    base_s = simulate(map_graph(g, system, "tp:2"), system, "vllm")
    monkeypatch.setitem(STACKS, "vllm", replace(STACKS["vllm"], step_overhead_us=1000.0))
    p = predict(g, dev, profile="vllm")
    s = simulate(map_graph(g, system, "tp:2"), system, "vllm")
    assert p.latency_s == pytest.approx(base_p.latency_s + 1e-3, rel=1e-9)
    assert p.energy_j > base_p.energy_j
    assert s.latency_s == pytest.approx(base_s.latency_s + 1e-3, rel=1e-9)


# GPU serving stacks (vllm, sglang, trtllm, ...) and host-issued PyTorch launches were taken on NPUs, PIM, FPGAs and
# CPUs, where they priced the step exactly as eager does: a meaningless run under the profile's name
@pytest.mark.parametrize("cmd,hw,profile", [
    (["predict", "--hardware"], "tpu-v5e", "vllm"), (["predict", "--hardware"], "alveo-u280", "sglang"),
    (["predict", "--hardware"], "xeon-8480", "eager-launch"), (["predict", "--hardware"], "samsung-hbm-pim", "trtllm"),
    (["roofline", "--out-dir", "OUT", "--hardware"], "h100,tpu-v4", "hf-generate"),
    (["simulate", "--system"], "neupims-npu", "trtllm-0.6"), (["simulate", "--system"], "snapdragon-8gen3", "vllm")])
def test_gpu_only_profiles_are_refused_on_other_devices(cmd, hw, profile, capsys, tmp_path):
    from sim.cli import main
    cmd = [str(tmp_path / "o") if c == "OUT" else c for c in cmd]
    rc = main(cmd + [hw, "--model", "qwen1.5-1.8b", "--profile", profile])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert f"profile '{profile}' applies to gpu devices" in err and "eager or fused" in err
    assert not (tmp_path / "o").exists()


def test_gpu_only_profiles_are_refused_by_the_api_and_eager_still_runs_anywhere():
    from sim import api
    for fn in (lambda p: api.predict("qwen1.5-1.8b", "tpu-v5e", profile=p),
               lambda p: api.simulate("qwen1.5-1.8b", "neupims-npu", profile=p)):
        with pytest.raises(ValueError, match="profile 'sglang' applies to gpu devices; (tpu-v5e|neupims-npu) is a "
                                             "device of class npu, for which the profiles are eager or fused"):
            fn("sglang")
        assert fn("eager").latency_s > 0 and fn("fused").latency_s > 0
    assert api.predict("qwen1.5-1.8b", "h100", profile="vllm").latency_s > 0
