"""A fresh process's first pass over new KV lengths (docs/tracing-and-host.md, first-seen lengths): on H100/H200
torch's cuDNN SDPA builds a cuDNN graph per new attention shape on the host (hw_models/host.py `cudnn_new_shape`,
workloads/sdpa_backend.py `cudnn_path`). The cost applies to a cuDNN-path call at a new length, once per shape per
step, and not to a warm step, a non-cuDNN call, a window-capped shape or a GPU whose torch does not prefer cuDNN."""
import json

import pytest

torch = pytest.importorskip("torch")

from hw_models.host import CUDNN_NEW_SHAPE_US, HostModel, cudnn_key, load_host  # noqa: E402
from sim.hostqueue import two_queues  # noqa: E402
from workloads import sdpa_backend  # noqa: E402


def t(*shape, dtype=torch.bfloat16):
    return torch.empty(*shape, dtype=dtype, device="meta")


@pytest.mark.parametrize("case, expected", [
    (dict(q=(1, 32, 1, 128), k=(1, 8, 600, 128), gqa=True), True),          # llama-style GQA decode
    (dict(q=(8, 16, 1, 192), k=(8, 16, 600, 192), dv=128), True),            # deepseek-v2 MLA: d_qk 192, d_v 128
    (dict(q=(1, 16, 1, 256), k=(1, 8, 600, 256), gqa=True), True),           # gemma-2: head dim 256
    (dict(q=(1, 32, 1, 128), k=(1, 32, 4096, 128), mask=True), True),        # a broadcastable mask: cuDNN takes it
    (dict(q=(1, 71, 1, 64), k=(1, 1, 600, 64)), False),                      # falcon: unequal heads, no enable_gqa
    (dict(q=(1, 32, 1, 128), k=(1, 32, 600, 128), dtype=torch.float32), False),
    (dict(q=(1, 16, 1, 320), k=(1, 16, 600, 320)), False),                  # head dim > 256
    (dict(q=(1, 16, 1, 60), k=(1, 16, 600, 60)), False),                    # not a multiple of 8
    (dict(q=(1, 16, 1, 128), k=(1, 16, 1, 128)), False),                    # key length 1
])
def test_cudnn_path_follows_torchs_checks(case, expected):
    dtype = case.get("dtype", torch.bfloat16)
    q, k = t(*case["q"], dtype=dtype), t(*case["k"], dtype=dtype)
    v = t(*case["k"][:-1], case.get("dv", case["k"][-1]), dtype=dtype)
    mask = t(1, 1, case["q"][2], case["k"][2], dtype=torch.bool) if case.get("mask") else None
    assert sdpa_backend.cudnn_path(q, k, v, mask, False, case.get("gqa", False)) is expected


def test_the_build_is_charged_once_per_shape_on_its_first_issue():
    class Op:
        def __init__(self, **attrs):
            self.attrs = attrs
    shape = dict(b=1, hq=32, hkv=8, sq=1, sk=545, d=128, dv=128, causal=False, mask=False)
    ops = [Op(), Op(cudnn=True, **shape), Op(cudnn=True, **dict(shape, b=2)), Op(**shape)]
    order = [0, 1, 3, 0, 1, 3, 2, 0, 2]             # three "layers" of op 1, two of op 2; op 3 is not cuDNN
    hm = HostModel(load_host("h100-lent-host-hf"), per_call=True)
    once = hm.new_shapes(ops, order, "h100-sxm-80gb", kv_len=545)
    assert once == {1: pytest.approx(CUDNN_NEW_SHAPE_US * 1e-6), 2: pytest.approx(CUDNN_NEW_SHAPE_US * 1e-6)}
    assert hm.new_shapes(ops, order, "a100-80gb", kv_len=545) == {}       # torch prefers flash there
    assert hm.new_shapes(ops, order, "h100-sxm-80gb", kv_len=4129) == {}   # window-capped keys: a repeated shape
    assert cudnn_key(ops[1].attrs) != cudnn_key(ops[2].attrs)
    host, dev = [1e-5] * 4, [0.0] * 4
    warm = two_queues(order, host, dev, [False] * 4, 0.0)
    cold = two_queues(order, host, dev, [False] * 4, 0.0, once=once)
    assert cold.host_busy_s - warm.host_busy_s == pytest.approx(2 * CUDNN_NEW_SHAPE_US * 1e-6)
    assert cold.latency_s - warm.latency_s == pytest.approx(2 * CUDNN_NEW_SHAPE_US * 1e-6)


pytest.importorskip("transformers")
from sim import api  # noqa: E402
from workloads.errors import HwsimError  # noqa: E402


def _tiny(tmp_path, base, name=None, **over):
    c = json.load(open(f"workloads/zoo/{base}.json"))
    c.update(over, bos_token_id=1, eos_token_id=2)
    path = tmp_path / f"tiny-{name or base}.json"
    path.write_text(json.dumps(c))
    return str(path)


def test_a_first_pass_adds_one_build_to_a_cudnn_decode_step_and_nothing_elsewhere(tmp_path):
    llama = _tiny(tmp_path, "llama-3.1-8b", hidden_size=256, intermediate_size=512, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=1000)
    # head size 36 (not a multiple of 8): torch's flash/efficient/math path, never cuDNN, whatever transformers' version
    falcon = _tiny(tmp_path, "llama-3.1-8b", "d36", hidden_size=144, intermediate_size=288, num_hidden_layers=3,
                   num_attention_heads=4, num_key_value_heads=2, vocab_size=1000)
    build = CUDNN_NEW_SHAPE_US * 1e-6
    kw = dict(profile="hf-generate", impl="hf")
    g = api.workload(llama, "decode", 1, 300, impl="hf")
    attn = [op for op in g.ops if op.kind == "attention"]
    assert all(op.attrs.get("cudnn") for op in attn) and sum(op.runs for op in attn) == 3   # one op, three layers
    warm = api.predict(llama, "h100", "decode", 1, 300, **kw)
    cold = api.predict(llama, "h100", "decode", 1, 300, first_pass=True, **kw)
    assert cold.host_busy_s - warm.host_busy_s == pytest.approx(build)      # three layers, one shape: one build
    assert cold.latency_s > warm.latency_s + 0.9 * build                  # the tiny step is host-bound
    assert api.predict(llama, "h100", "decode", 1, 300, first_pass=False, **kw).latency_s == warm.latency_s
    host = "h100-lent-host-hf"                                             # no cuDNN preference on an A100
    a100 = [api.predict(llama, "a100-80gb", "decode", 1, 300, host=host, first_pass=f, **kw).latency_s
            for f in (False, True)]
    assert a100[0] == a100[1]
    assert not any(op.attrs.get("cudnn") for op in api.workload(falcon, "decode", 1, 300, impl="hf").ops)
    f_warm = api.predict(falcon, "h100", "decode", 1, 300, **kw)
    f_cold = api.predict(falcon, "h100", "decode", 1, 300, first_pass=True, **kw)
    assert f_cold.latency_s == f_warm.latency_s and f_cold.host_busy_s == f_warm.host_busy_s
    with pytest.raises(HwsimError, match="host-issued"):
        api.predict(llama, "h100", "decode", 1, 300, first_pass=True, profile="vllm")


def test_the_accuracy_script_replays_each_process_cache(monkeypatch):
    """hf_generate_accuracy.py --steps all: a case is a first pass iff its median step has a cuDNN shape that no
    earlier case of its process, nor its own warm-up, ran; a new measure_hf_generate.py call empties the cache."""
    import importlib.util

    import pandas as pd
    spec = importlib.util.spec_from_file_location("hf_acc", "benchmarks/host/hf_generate_accuracy.py")
    acc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(acc)
    shape = {"a.json": "gqa", "b.json": "gqa", "c.json": "mha", "w.json": "window"}   # b shares a's shape

    def shapes(r, ctx):
        if shape[r.config] == "window":                  # a window-capped cache: one length for every step
            return frozenset({("window", r.batch)})
        return frozenset({(shape[r.config], r.batch, ctx)})
    monkeypatch.setattr(acc, "cudnn_shapes", shapes)
    df = pd.DataFrame({"config": ["a.json", "b.json", "b.json", "w.json", "c.json", "b.json"],
                       "batch": [1, 1, 8, 1, 1, 1], "prompt": [512] * 6, "new_tokens": [64] * 6})
    assert acc.first_passes(df, "one-process") == [True, False, True, False, True, False]
    monkeypatch.setitem(acc.PROCESSES, "two-processes", ("c.json",))
    assert acc.first_passes(df, "two-processes") == [True, False, True, False, True, True]


def test_the_build_cost_is_the_later_steps_over_the_first_three_per_shape():
    """benchmarks/host/fit_cudnn_build.py: a first pass's build cost per new shape is the median of its later decode
    steps less the median of its first three (lengths the warm-up ran), over the shapes each step builds; the preset
    default is lease5's calibration median of it (34.3 ms), not the profiled 43.6 ms."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("fit_cudnn_build", "benchmarks/host/fit_cudnn_build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.build_ms([0.020, 0.021, 0.019], [0.054, 0.055, 0.053, 0.056], 1) == pytest.approx(34.5)
    assert mod.build_ms([0.020] * 3, [0.090] * 5, 2) == pytest.approx(35.0)
    assert CUDNN_NEW_SHAPE_US == 34_300.0
