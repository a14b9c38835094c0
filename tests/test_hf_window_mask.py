"""HF's sliding-window models pass SDPA an explicit mask once the keys reach the window (transformers'
`_ignore_causal_mask_sdpa`: kv_length < local_attention_size); a template fitted below the window must not be
reused there (workloads/capture.py `window_limit`). Measured: mistral-7b 1x4096 on the H100 ran cuDNN attention with
the mask at 2.6x llama-3.1-8b's (benchmarks/gpu/data/h100-2026-12-06-lease2-hf-generate/prefill-profile)."""
import json

import pytest

pytest.importorskip("transformers")

from sim import api  # noqa: E402
from workloads.capture import window_limit  # noqa: E402


def test_the_limit_is_hfs_rule_and_hwsims_own():
    assert window_limit(4096, "hf") == 4096 and window_limit(4096, "hwsim") == 4097


def _tiny(tmp_path, window):
    c = json.load(open("workloads/zoo/mistral-7b.json"))
    c.update(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=1000, sliding_window=window, max_position_embeddings=4096)
    path = tmp_path / "tiny-mistral.json"
    path.write_text(json.dumps(c))
    return str(path)


def test_hf_steps_at_the_window_carry_the_mask(tmp_path):
    model = _tiny(tmp_path, 128)
    for s in (16, 32, 64):                       # enough steps below the window for the template to be used
        api.workload(model, "prefill", 1, s, impl="hf")
    below = [op.attrs for op in api.workload(model, "prefill", 1, 127, impl="hf").ops if op.kind == "attention"]
    at = [op.attrs for op in api.workload(model, "prefill", 1, 128, impl="hf").ops if op.kind == "attention"]
    assert below and not below[0]["mask"] and below[0]["causal"]
    assert at and at[0]["mask"] and not at[0]["causal"]
    fast = api.predict(model, "h100", "prefill", 1, 128, impl="hf")
    full = api.predict(model, "h100", "prefill", 1, 128, impl="hf", detail=True)
    assert fast.latency_s == pytest.approx(full.latency_s, rel=1e-9)


def test_a_masked_attention_kernel_runs_at_attn_mask_rel_full_path_and_fast_path(tmp_path):
    """A mask makes SDPA's kernel slower per block (attn_mask_rel: the H100's fitted on phi-3-mini's HF forwards,
    whose window is reached at 2,048 positions); the one-case fast path (GPUTable) and the full path agree."""
    import numpy as np

    from hw_models import load_device
    from hw_models.gpu import GPUModel, mask_factor
    assert load_device("h100").calibration.params["attn_mask_rel"] == pytest.approx(0.71)
    assert load_device("h100").calibration.params["attn_mask_rel_d256"] == pytest.approx(0.715)
    p = {"attn_mask_rel": 0.5, "attn_mask_rel_d256": 0.7}
    assert mask_factor(True, 128, p) == 0.5 and mask_factor(False, 128, p) == 1.0 and mask_factor(True, 96, {}) == 1.0
    assert mask_factor(True, 64, p) == 0.5 and mask_factor(True, 256, p) == pytest.approx(0.35)
    assert mask_factor(True, 192, p) == pytest.approx(0.5 * 0.85) and mask_factor(False, 256, p) == 1.0
    assert mask_factor(np.array([True, False, True]), np.array([128, 256, 256]), p).tolist() == \
        pytest.approx([0.5, 1.0, 0.35])
    model = _tiny(tmp_path, 256)
    for s in (16, 32, 64):
        api.workload(model, "prefill", 1, s, impl="hf")
    g = api.workload(model, "prefill", 1, 256, impl="hf")
    attn = next(op for op in g.ops if op.kind == "attention")
    assert attn.attrs["mask"]
    h100 = load_device("h100")
    masked = GPUModel(h100).cost(attn, 1980.0).compute_s
    plain = GPUModel(h100, params={"attn_mask_rel": 1.0}).cost(attn, 1980.0).compute_s
    assert masked == pytest.approx(plain / 0.71)
    fast = api.predict(model, "h100", "prefill", 1, 256, impl="hf")
    full = api.predict(model, "h100", "prefill", 1, 256, impl="hf", detail=True)
    assert fast.latency_s == pytest.approx(full.latency_s, rel=1e-9)
    unmasked = api.predict(model, "h100", "prefill", 1, 255, impl="hf")
    assert fast.latency_s > unmasked.latency_s


def test_the_gpu_table_prices_a_masked_attention_op_as_the_full_path(tmp_path):
    """The fast path's table (hw_models/gpu_table.py) takes attn_mask_rel from the ops' mask flag: a compiled HF
    step whose attention ops are flagged masked is priced op for op as GPUModel prices them."""
    from dataclasses import replace

    import numpy as np

    from hw_models.gpu_table import GPUTable
    from tests.hf_blocks import compiled_hf_block, relaid
    cs, step, q = compiled_hf_block(_tiny(tmp_path, 4096), 1, 200)
    masked_step = relaid(step, ops=[replace(op, attrs=dict(op.attrs, mask=True)) if op.kind == "attention" else op
                                    for op in step.ops])
    assert step.n_attn and not any(op.attrs.get("mask") for op in step.ops)
    masked = GPUTable(cs.model, masked_step, 1980.0)
    plain = GPUTable(cs.model, step, 1980.0)
    c0, m0, o0, _ = plain.costs(q, False)
    c1, m1, o1, _ = masked.costs(q, False)
    at = slice(step.n_other + step.n_mm, None)
    assert np.allclose(c1[:, at], c0[:, at] / 0.71) and np.allclose(c1[:, :at.start], c0[:, :at.start])
    assert np.allclose(m1, m0) and np.allclose(o1, o0)
