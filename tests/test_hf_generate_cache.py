"""workloads/hf.py generate_cached_lengths: the KV length generate()'s decode steps really attend to, as the model's
own prepare_inputs_for_generation decides. Phi-3 (transformers 5.x) drops its cache once the ids pass
original_max_position_embeddings (to switch rotary factors) and then restarts it every step: measured on the H100
as cheap cache-less steps at a 4,096-token prompt (data/h100-2026-12-07-lease17-hf-generate-p4096: 166 W settled
against 327-377 W at 2,048)."""
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")

from workloads.hf import generate_cached_lengths  # noqa: E402

ZOO = Path(__file__).resolve().parents[1] / "workloads" / "zoo"


def lengths(name, prompt, new=64):
    return generate_cached_lengths((ZOO / f"{name}.json").read_text(), name, prompt, new)


def test_a_model_that_keeps_its_cache_attends_to_the_prompt_and_the_tokens_so_far():
    got = lengths("llama-3.1-8b", 4096)
    assert got == tuple(range(4096, 4096 + 63))
    assert lengths("phi-3-mini", 2048) == tuple(range(2048, 2048 + 63))     # below its 4,096 switch point


def test_phi3_drops_its_cache_past_original_max_position_embeddings_and_never_gets_it_back():
    assert lengths("phi-3-mini", 4096) == (0,) * 63
    assert lengths("phi-3-mini", 4094, 8) == (4094, 4095, 0, 0, 0, 0, 0)    # the ids reach 4,097 at the third step
