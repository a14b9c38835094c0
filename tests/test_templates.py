"""Graph templates reproduce direct traces exactly, for any batch and length, and fall back where they can't."""
import random

import pytest

from workloads import capture, trace

MODELS = ["llama-3.1-8b", "gpt2", "gemma-2-9b", "qwen3-14b", "mistral-7b", "falcon-7b", "bloom-176b", "phi-3-mini"]


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HWSIM_CACHE", str(tmp_path))
    capture._TEMPLATES.clear()
    yield
    capture._TEMPLATES.clear()


def same(a, b):
    assert len(a.ops) == len(b.ops)
    for x, y in zip(a.ops, b.ops):
        assert (x.index, x.name, x.kind, x.group, x.repeat, x.flops, x.bytes, x.reads, x.kernels, x.attrs,
                x.input_shapes, x.output_shapes, x.dtype) == \
               (y.index, y.name, y.kind, y.group, y.repeat, y.flops, y.bytes, y.reads, y.kernels, y.attrs,
                y.input_shapes, y.output_shapes, y.dtype)
    assert a.meta == b.meta
    assert set(a.graph.edges) == set(b.graph.edges)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("phase", ["prefill", "decode", "chunked_prefill"])
def test_template_equals_direct_trace(model, phase):
    rng = random.Random(f"{model}{phase}")
    for _ in range(2):
        b, s, c = rng.randint(1, 48), rng.randint(1, 500), rng.randint(1, 400)
        context = c if phase == "chunked_prefill" else 0
        same(trace(model, phase, b, s, context), trace(model, phase, b, s, context, use_template=False))
    assert capture._TEMPLATES, "no template was built"
    assert any(t is not None for t in capture._TEMPLATES.values())


def test_templates_persist_on_disk(tmp_path):
    trace("llama-3.1-8b", "decode", 4, 100)
    assert list(tmp_path.glob("templates/*.json"))
    capture._TEMPLATES.clear()
    g = trace("llama-3.1-8b", "decode", 9, 3000)            # served from the file
    same(g, trace("llama-3.1-8b", "decode", 9, 3000, use_template=False))


def test_past_the_sliding_window_falls_back_to_tracing():
    same(trace("mistral-7b", "decode", 2, 6000), trace("mistral-7b", "decode", 2, 6000, use_template=False))


def test_moe_is_traced_directly():
    g = trace("mixtral-8x7b", "decode", 1, 64)
    assert not capture._TEMPLATES and len([op for op in g.ops if op.name.startswith("mlp.experts")]) < 24
