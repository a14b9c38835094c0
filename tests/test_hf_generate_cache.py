"""workloads/hf.py generate_steps: what generate()'s decode steps really run (the KV length found in the cache, the
tokens fed), as the model's own prepare_inputs_for_generation decides. Phi-3 drops its cache once the ids pass
original_max_position_embeddings (to switch rotary factors): in transformers 5.17 every later step then starts a
fresh cache and feeds one token (measured on the H100 as cheap cache-less steps at a 4,096-token prompt:
data/h100-2026-12-07-lease17-hf-generate-p4096, 166 W settled against 327-377 W at 2,048); 5.25 recomputes the
whole sequence once and keeps the cache after."""
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")

from workloads.hf import generate_cached_lengths, generate_steps  # noqa: E402

ZOO = Path(__file__).resolve().parents[1] / "workloads" / "zoo"


def steps(name, prompt, new=64):
    return generate_steps((ZOO / f"{name}.json").read_text(), name, prompt, new)


def test_a_model_that_keeps_its_cache_attends_to_the_prompt_and_the_tokens_so_far():
    assert steps("llama-3.1-8b", 4096) == tuple((4096 + k, 1) for k in range(63))
    assert steps("phi-3-mini", 2048) == tuple((2048 + k, 1) for k in range(63))     # below its 4,096 switch point
    text = (ZOO / "llama-3.1-8b.json").read_text()
    assert generate_cached_lengths(text, "llama-3.1-8b", 128, 4) == (128, 129, 130)


def test_phi3_drops_its_cache_past_original_max_position_embeddings():
    got = steps("phi-3-mini", 4094, 8)
    assert got[:2] == ((4094, 1), (4095, 1))        # the ids reach 4,097 at the third step
    assert got[2][0] == 0
    if transformers.__version__ == "5.17.0":        # a fresh cache and one token, every step from there
        assert got[2:] == ((0, 1),) * 5
        assert steps("phi-3-mini", 4096) == ((0, 1),) * 63
    elif transformers.__version__ == "5.25.0":      # the whole sequence once, then the cache is kept
        assert got[2:] == ((0, 4097), (4097, 1), (4098, 1), (4099, 1), (4100, 1))
