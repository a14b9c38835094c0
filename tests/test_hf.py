"""`--impl hf`: Hugging Face transformers' own implementation traced on the meta device (workloads/hf.py).

Compared with hwsim's own modules (`--impl hwsim`) on one preset of every family, prefill and decode: FLOPs,
weight and KV-cache bytes, with every difference explained by what HF's code really does (asserted exactly where
it can be). Skipped when transformers is not installed (`pip install 'hwsim[hf]'`), except the test of the
one-line error a user without it gets.
"""
import csv
import functools
import json
import sys
import warnings

import pytest

from sim.cli import main
from workloads.errors import HwsimError
from tests.test_templates import same  # op-by-op graph equality, shared with the dense template tests

DENSE_SDPA = ["llama-3.1-8b", "mistral-7b", "qwen2.5-7b", "qwen3-14b", "phi-3-mini", "gemma-2b", "bitnet-b1.58-2b",
              "gpt2", "opt-6.7b", "falcon-7b", "gpt-neox-20b", "phi-2"]
DENSE_EAGER = ["gemma-2-9b", "bloom-176b"]          # transformers has no SDPA path for them: HF runs eager attention
MOE = ["mixtral-8x7b", "qwen1.5-moe-a2.7b"]
MLA = ["deepseek-v2-lite", "deepseek-v3-small"]     # MoE + multi-head latent attention
B, S = 2, 64                                         # prefill of S tokens; decode one token after S cached


def test_missing_transformers_is_one_line(monkeypatch, capsys):
    import workloads.hf
    monkeypatch.setitem(sys.modules, "transformers", None)          # import transformers -> ImportError
    workloads.hf.hf_config.cache_clear()
    workloads.hf.hf_model.cache_clear()
    workloads.capture._spec_cached.cache_clear()
    workloads.capture._TEMPLATES.clear()
    assert main(["predict", "--model", "gpt2", "--impl", "hf", "--hardware", "h100", "--phase", "decode"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'hwsim[hf]'" in err and len(err.strip().splitlines()) == 1
    workloads.capture._spec_cached.cache_clear()


@pytest.mark.parametrize("error, words", [
    (RuntimeError("half-installed"), "installed but does not import (RuntimeError: half-installed)"),
    (ModuleNotFoundError("No module named 'tokenizers'", name="tokenizers"),
     "installed but does not import (ModuleNotFoundError: No module named 'tokenizers')"),
])
def test_a_transformers_that_fails_to_import_is_one_line(monkeypatch, tmp_path, capsys, error, words):
    """Found by hand (walk18): a transformers/__init__.py raising RuntimeError on PYTHONPATH made every --impl hf
    command end in 'internal error', exit 70; a missing dependency of it said transformers 'is not installed'."""
    import builtins

    import workloads.hf
    real = builtins.__import__

    def fake(name, *a, **kw):
        if name == "transformers":
            raise error
        return real(name, *a, **kw)
    monkeypatch.setattr(builtins, "__import__", fake)
    monkeypatch.setenv("HWSIM_CACHE", str(tmp_path))          # no template on disk answers without transformers
    for clear in (workloads.hf.hf_config, workloads.hf.hf_model, workloads.capture._spec_cached):
        clear.cache_clear()
    workloads.capture._TEMPLATES.clear()
    with pytest.raises(HwsimError, match="reinstall it"):
        workloads.hf.transformers_module()
    assert main(["predict", "--model", "gpt2", "--impl", "hf", "--hardware", "h100", "--phase", "prefill",
                 "--seq-len", "17"]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1 and "internal error" not in err
    workloads.capture._spec_cached.cache_clear()


def test_a_config_transformers_rejects_says_why_past_its_first_line(tmp_path, capsys):
    """Found by hand (walk18): num_hidden_layers "x" gave "transformers rejects its config.json
    (StrictDataclassFieldValidationError: Validation error for field 'num_hidden_layers':)", the why cut off."""
    pytest.importorskip("transformers")
    from pathlib import Path
    config = json.loads((Path(__file__).parent.parent / "workloads/zoo/llama-3.1-8b.json").read_text())
    config["num_hidden_layers"] = "x"
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert main(["predict", "--model", str(path), "--impl", "hf", "--hardware", "h100"]) == 2
    err = capsys.readouterr().err
    assert "expected int, got str" in err and len(err.strip().splitlines()) == 1


transformers = pytest.importorskip("transformers")
from workloads import trace  # noqa: E402
from workloads.zoo import load_config  # noqa: E402


@pytest.fixture(scope="module")
def small_v3(tmp_path_factory):
    config, _ = load_config("deepseek-v3")
    small = dict(config, num_hidden_layers=4, first_k_dense_replace=1, n_routed_experts=16, n_group=4, topk_group=2,
                 _hwsim_name="deepseek-v3-small")
    path = tmp_path_factory.mktemp("cfg") / "config.json"
    path.write_text(json.dumps(small))
    return str(path)


@functools.lru_cache(maxsize=None)
def pair(model, phase):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf = trace(model, phase, B, S, impl="hf", use_template=False)
    return hf, trace(model, phase, B, S)


def _model(name, small_v3):
    return small_v3 if name == "deepseek-v3-small" else name


def mm_flops(g):
    return sum(op.flops * op.repeat for op in g.ops if op.kind in ("matmul", "attention"))


def _experts(g):
    return [op for op in g.ops if "experts." in op.name and "shared" not in op.name]


@pytest.mark.parametrize("phase", ["prefill", "decode"])
@pytest.mark.parametrize("name", DENSE_SDPA + DENSE_EAGER + MOE + MLA)
def test_hf_and_hwsim_agree_where_the_code_agrees_and_differ_where_it_differs(name, phase, small_v3):
    hf, own = pair(_model(name, small_v3), phase)
    th, to = hf.totals(), own.totals()
    spec = own.spec
    # the same model: every parameter, and the same KV cache per token and held (MLA: both cache the latent)
    assert th["params"] == to["params"]
    assert th["kv_bytes_per_token"] == to["kv_bytes_per_token"]
    assert th["kv_cache_storage_bytes"] == to["kv_cache_storage_bytes"]
    # weights stored: the same, but HF keeps DeepSeek's router weights in fp32 (2 more bytes each)
    import torch
    from workloads.hf import hf_model
    fp32 = sum(p.numel() for p in hf_model(spec.source_config, spec.name).parameters() if p.dtype == torch.float32)
    assert fp32 == 0 or name in MLA
    assert th["weight_storage_bytes"] - to["weight_storage_bytes"] == 2 * fp32
    # matmul + attention FLOPs: equal, except MLA decode: HF caches the latent and re-expands every cached token
    # through kv_b_proj each step, where hwsim's module absorbs W_UK / W_UV into the query and output (DeepSeek's
    # inference trick)
    if name in MLA and phase == "decode":
        kvb = next(op for op in hf.ops if op.name.endswith("self_attn.kv_b_proj") and op.group is not None)
        assert kvb.attrs["m"] == B * (S + 1)                  # all cached tokens, every step
        assert mm_flops(hf) > 2 * mm_flops(own)
    else:
        assert mm_flops(hf) == mm_flops(own)
    # weight bytes read: equal for dense models, but for the buffers HF reads besides (the rotary frequencies, a
    # few hundred bytes); MoE experts run batched (torch._grouped_mm) in HF, which reads the experts that got rows:
    # E (1 - (1 - k/E)^tokens) expected under uniform top-k routing (a token's k picks are distinct; hwsim's own
    # `uniform` routing, workloads/moe_template.py), where hwsim's even spread reads min(E, rows) of them
    # GPT-2's learned positions: HF gathers each position's row once for the whole batch, hwsim per sequence.
    buffers = 64 * 1024
    positions = sum(op.bytes["weight"] for op in own.ops if op.name == "embed_positions") * (B - 1) // B \
        if spec.model_type == "gpt2" else 0
    if spec.moe is None:
        assert 0 <= th["weight_bytes"] - (to["weight_bytes"] - positions) <= buffers
    else:
        rows = B * (S if phase == "prefill" else 1) * spec.moe.top_k
        e = spec.moe.num_experts
        # prefill: grouped_mm reads the experts that got rows; decode: generate() switches to batched_mm
        # (`_optimize_model_for_decode`), which gathers one copy of an expert's weights per (token, expert) pair,
        # reading each distinct expert from DRAM once (repeats from L2; measured, workloads/module_trace.py)
        k = spec.moe.top_k
        hit = e * (1 - (1 - k / e) ** (rows // k))
        hf_x = sum(op.bytes.get("weight", 0) * op.repeat for op in _experts(hf))
        own_x = sum(op.bytes.get("weight", 0) * op.repeat for op in _experts(own))
        assert hf_x == pytest.approx(own_x * hit / min(e, rows), rel=1e-6)
        hf_rest = sum(op.bytes.get("weight", 0) * op.repeat for op in hf.ops if op not in _experts(hf)
                      and not op.name.endswith("mlp.gate"))
        own_rest = sum(op.bytes.get("weight", 0) * op.repeat for op in own.ops if op not in _experts(own)
                       and not op.name.endswith("router_proj"))
        if name not in MLA:
            assert 0 <= hf_rest - own_rest <= buffers
    # KV bytes moved: HF's DynamicCache grows by torch.cat and attention reads the result; hwsim writes the new
    # tokens in place and reads the cache once
    c = 0 if phase == "prefill" else S
    new = S if phase == "prefill" else 1
    ratio = th["kv_cache_bytes"] / to["kv_cache_bytes"]
    if name in DENSE_SDPA + MOE or name == "bloom-176b":
        # prefill: cat writes n, attention reads n (hwsim: writes n); decode: cat reads c and writes c+1, attention
        # reads c+1 (hwsim: writes 1, reads c+1)
        expected = 2.0 if phase == "prefill" else (3 * c + 2) / (c + 2)
        assert ratio == pytest.approx(expected, rel=1e-9), (name, phase)
    elif name == "gemma-2-9b":      # eager attention: repeat_kv copies K/V for each query head group besides
        assert ratio > (2.0 if phase == "prefill" else (3 * c + 2) / (c + 2))
    else:                           # MLA: the latent is read again by kv_b_proj and the expanded K/V
        assert ratio > 3.0
    assert new and hf.meta["traced_from"] == "hf" and hf.meta["transformers_version"] == transformers.__version__


def test_kernels_launched_differ_as_the_implementations_do(small_v3):
    """HF launches more kernels per dense layer (fp32 norm upcasts, rotary as separate ops) and far fewer for MoE
    (experts batched instead of a loop over experts): two grouped GEMMs in prefill, and in generate()'s decode
    steps two batched GEMMs over gathered copies of the routed experts' weights."""
    for name in ("llama-3.1-8b", "mixtral-8x7b"):
        hf, own = pair(name, "decode")
        if name == "mixtral-8x7b":
            assert hf.totals()["kernels"] < own.totals()["kernels"]
            assert sum(1 for op in hf.ops for k in op.kernels if k.aten == "_grouped_mm") == 0
            assert sum(1 for op in _experts(hf) for k in op.kernels if k.aten == "bmm") == 2
            assert sum(1 for op in pair(name, "prefill")[0].ops for k in op.kernels if k.aten == "_grouped_mm") == 2
        else:
            assert hf.totals()["kernels"] > own.totals()["kernels"]


def test_hf_chunked_prefill_and_templates_equal_direct_traces():
    direct = trace("qwen2.5-7b", "chunked_prefill", 3, 40, 100, impl="hf", use_template=False)
    templated = trace("qwen2.5-7b", "chunked_prefill", 3, 40, 100, impl="hf")
    assert templated.totals() == direct.totals()
    assert any(op.kind == "attention" and op.attrs["mask"] for op in direct.ops)      # HF builds a mask here
    for phase, s in (("prefill", 300), ("decode", 700)):
        assert trace("qwen2.5-7b", phase, 5, s, impl="hf").totals() == \
            trace("qwen2.5-7b", phase, 5, s, impl="hf", use_template=False).totals()


@pytest.mark.parametrize("model", ["qwen2.5-7b", "gpt2"])
def test_hf_chunked_prefill_template_equals_direct_traces_op_by_op(model, tmp_path, monkeypatch):
    """The chunked-prefill template (two sizes varied: new tokens and context) predicts sizes it was not fitted on
    exactly as direct traces do: every op's numbers, kernels, shapes and attributes (host_py counts included), the
    edges and the meta. A faster trace path (workloads/module_trace.py) or a leaner fit (workloads/template.py)
    that changed any of them fails here."""
    from workloads import capture, template
    monkeypatch.setenv("HWSIM_CACHE", str(tmp_path))
    monkeypatch.setattr(capture, "_TEMPLATES", {})
    spec = capture.load_spec(model, "hf")
    tpl = capture._template(spec, "chunked_prefill", "hf")
    assert tpl is not None
    fitted = set(template.SAMPLES["chunked_prefill"]) | {template.CHECK["chunked_prefill"]}
    for b, n, c in ((3, 40, 100), (1, 257, 31), (6, 96, 700)):
        assert (b, n, c) not in fitted
        same(tpl.instantiate(b, n, c), capture._trace_hf(spec, "chunked_prefill", b, n, c))


def test_replaying_hf_layers_equals_running_every_layer():
    import torch
    from workloads.capture import load_spec
    from workloads.hf import hf_model, _prime
    from workloads.module_trace import trace_module
    spec = load_spec("gpt2", "hf")
    model = hf_model(spec.source_config, spec.name)
    graphs = []
    for replay in (True, False):
        cache = transformers.DynamicCache(config=model.config)
        _prime(cache, 0, 16)
        ids = torch.zeros((2, 16), dtype=torch.long, device="meta")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graphs.append(trace_module(model, input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1,
                                       replay=replay))
    assert graphs[0].totals() == graphs[1].totals()
    assert list(graphs[0].layer_groups.values()) == [tuple(range(12))]


def test_hf_cases_file_every_profile(tmp_path):
    from hw_models import load_device
    from hw_models.stacks import STACKS
    from sim.predict import predict
    from workloads.recipe import build_workload
    rows = [("qwen2.5-7b", "prefill", 1, 128), ("qwen2.5-7b", "prefill", 1, 300), ("qwen2.5-7b", "decode", 4, 500),
            ("qwen2.5-7b", "decode", 4, 900), ("mixtral-8x7b", "decode", 2, 100), ("gpt2", "prefill", 2, 100),
            ("gpt2", "prefill", 2, 60)]
    cases = tmp_path / "in.csv"
    cases.write_text("model,hardware,phase,batch,seq_len,dtype,impl\n" +
                     "".join(f"{m},h200,{p},{b},{s},bf16,hf\n" for m, p, b, s in rows))
    device = load_device("h200")
    for profile in STACKS:
        out = tmp_path / f"{profile}.csv"
        assert main(["predict", "--cases", str(cases), "--profile", profile, "--out", str(out)]) == 0
        for (m, p, b, s), r in zip(rows, csv.DictReader(open(out))):
            assert r["status"] == "ok" or r["status"].startswith("does not fit in device memory"), r
            if r["status"] != "ok":
                continue
            one = predict(build_workload(m, p, b, s, impl="hf"), device, profile)
            assert float(r["latency_s"]) == pytest.approx(one.latency_s, rel=1e-5), (profile, r)


def test_tp_on_hf_graphs_and_unknown_model_types(tmp_path):
    from sim import api
    r1 = api.simulate("llama-3.1-8b", "dgx-h100", "tp:2", phase="decode", batch=8, seq_len=512, impl="hf")
    r0 = api.simulate("llama-3.1-8b", "dgx-h100", "single", phase="decode", batch=8, seq_len=512, impl="hf")
    assert r1.link_bytes["nvlink"] > 0 and r1.latency_s < r0.latency_s
    with pytest.raises(HwsimError, match="tp:2.*--impl hf.*MoE"):
        api.simulate("mixtral-8x7b", "dgx-h100", "tp:2", phase="decode", batch=8, seq_len=512, impl="hf")
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps({"model_type": "no-such-arch", "hidden_size": 64}))
    with pytest.raises(HwsimError, match="does not know model_type 'no-such-arch'"):
        trace(str(bad), "decode", 1, 8, impl="hf")


@pytest.mark.parametrize("model", ["mixtral-8x7b", "deepseek-v2-lite"])
def test_expert_parallel_hf_moe_is_refused_in_one_line_naming_ep(model, capsys):
    """Found by hand (walk18): 'simulate --model mixtral-8x7b --impl hf --mapping ep:2 --batch 4' said '--expert-tokens
    applies to --impl hwsim', an option the user never gave (ep re-traces its shard with per-device expert counts)."""
    assert main(["simulate", "--model", model, "--impl", "hf", "--system", "dgx-h100", "--mapping", "ep:2",
                 "--phase", "decode", "--batch", "4"]) == 2
    err = capsys.readouterr().err
    assert "ep:2 with --impl hf is not modelled" in err and "--expert-tokens" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_config_without_model_type_says_so_not_newer_transformers(tmp_path, capsys):
    """Found by hand (walk18): a config.json without model_type under --impl hf said "transformers 5.25.0 does not know
    model_type None; use --impl hwsim or a newer transformers": no transformers knows None."""
    from pathlib import Path
    config = json.loads((Path(__file__).parent.parent / "workloads/zoo/gpt2.json").read_text())
    config.pop("model_type")
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert main(["predict", "--model", str(tmp_path), "--impl", "hf", "--hardware", "h100"]) == 2
    err = capsys.readouterr().err
    assert "has no model_type" in err and "newer transformers" not in err and len(err.strip().splitlines()) == 1
