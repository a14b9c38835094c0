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
