"""Sliding-window models in serving (docs/serving.md): window layers' attention clipped to the window (Mistral-7B
v0.1: every layer; Gemma-2: alternate layers), KV blocks capped at the window where every layer has it, and a
serving run's invariants."""
import json

import numpy as np
import pandas as pd
import pytest

from sim.serving import Pool, serve
from sim.serving.step_cost import Batch, StepCost, window_pairs
from workloads import requests as rq
from workloads.errors import HwsimError
from workloads.zoo import load_config

from test_serving import check_invariants

MISTRAL = "mistral-7b"          # sliding_window 4096 on every layer
GEMMA = "gemma-2-9b"            # even layers 4096-token window, odd layers global


@pytest.fixture(scope="module")
def no_window(tmp_path_factory):
    """Mistral-7B's config.json with the window removed."""
    config, _ = load_config(MISTRAL)
    config = dict(config, sliding_window=None)
    path = tmp_path_factory.mktemp("cfg") / "config.json"
    path.write_text(json.dumps(config))
    return str(path)


def test_window_pairs():
    assert window_pairs(100, 0, 4096) == pytest.approx(100 * 50)              # inside the window: causal
    assert window_pairs(100, 500, 4096) == pytest.approx(100 * 550)
    # past the window every query sees `window` keys (on the n (c + n/2) footing: within 0.3% here)
    assert window_pairs(100, 10_000, 4096) == pytest.approx(100 * 4096, rel=3e-3)
    assert window_pairs(8192, 0, 4096) < 0.8 * 8192 * 4096


@pytest.mark.parametrize("model,b,c", [(MISTRAL, 16, 1000), (MISTRAL, 16, 8000), (GEMMA, 8, 3000), (GEMMA, 8, 7000)])
def test_window_decode_step_equals_traced_step(model, b, c):
    """Past the window the traced step reads the window's KV in window layers (its ring-buffer cache)."""
    cost = StepCost(model, "h100", "single", max_tokens=2048, max_seqs=64, max_context=8192)
    assert cost.swa_mode == ("all" if model == MISTRAL else "mixed")
    fast = cost.cost(Batch([], b, b * (c + 1), window_context=b * min(c + 1, 4096)))
    exact = cost.exact("decode", b, c)
    assert fast.time_s == pytest.approx(exact.time_s, rel=2e-3)
    assert fast.energy_j == pytest.approx(exact.energy_j, rel=2e-3)


def test_window_clips_attention_cost(no_window):
    swa = StepCost(MISTRAL, "h100", "single", max_tokens=2048, max_seqs=64, max_context=16384)
    full = StepCost(no_window, "h100", "single", max_tokens=2048, max_seqs=64, max_context=16384)
    inside = Batch([(512, 2000)], 32, 32 * 3001)
    assert swa.cost(inside).time_s == pytest.approx(full.cost(inside).time_s, rel=1e-6)
    # past the window: attention stops growing with the context
    a = swa.cost(Batch([], 32, 32 * 8001)).time_s
    b = swa.cost(Batch([], 32, 32 * 15001)).time_s
    assert a == pytest.approx(b, rel=1e-9) and a < 0.8 * full.cost(Batch([], 32, 32 * 15001)).time_s
    assert swa.cost(Batch([(512, 14000)])).time_s < full.cost(Batch([(512, 14000)])).time_s


def test_kv_use_stops_growing_at_the_window(no_window):
    df = rq.frame([0.0], [3000], [3000])
    swa = serve(df, Pool(model=MISTRAL, system="h100", scheduler="vllm", max_context=8192))
    full = serve(df, Pool(model=no_window, system="h100", scheduler="vllm", max_context=8192))
    blocks = swa.timeline.kv_blocks.to_numpy()
    assert blocks.max() == 4096 // 16 and blocks[-1] == 4096 // 16       # capped at ceil(window / block size)
    first = int(np.argmax(blocks == blocks.max()))
    assert (blocks[first:] == blocks.max()).all() and first < len(blocks) - 1000
    assert full.timeline.kv_blocks.to_numpy()[-1] == -(-5999 // 16)      # no window: the whole context
    assert swa.summary["completed"] == full.summary["completed"] == 1


def test_window_model_outserves_the_same_model_without_it_at_long_contexts(no_window):
    """Prompts of 12-14K tokens (3x the window), saturating load: the window model reads a third of the KV per
    decode and holds a third of the blocks per sequence (this run: 724 vs 517 output tokens/s)."""
    df = rq.synthetic(100, 20.0, "uniform:12000-14000:200-400", seed=4)
    kw = dict(system="h100", scheduler="vllm-chunked", max_context=16384)
    swa = serve(df, Pool(model=MISTRAL, **kw))
    full = serve(df, Pool(model=no_window, **kw))
    assert swa.summary["completed"] == full.summary["completed"] == 100
    assert swa.summary["output_tokens_per_s"] > 1.25 * full.summary["output_tokens_per_s"]
    assert swa.summary["mean_batch_decodes"] > full.summary["mean_batch_decodes"]


@pytest.mark.parametrize("model,sched,kw", [(MISTRAL, "vllm", {"kv_blocks": 900}),
                                            (MISTRAL, "vllm-chunked", {"kv_blocks": 700, "preemption": "swap"}),
                                            (MISTRAL, "orca", {}), (MISTRAL, "static", {}),
                                            (GEMMA, "sarathi", {"kv_blocks": 2000}), (GEMMA, "vllm", {})])
def test_window_serving_invariants_and_runs_equal_steps(model, sched, kw):
    """Every request completes or is rejected, tokens are conserved, KV stays under capacity, runs of decode steps
    (which end where a request reaches the window or stops taking blocks) equal step-by-step, same seed same run."""
    df = rq.synthetic(40, 6.0, "uniform:1500-6500:50-1500", seed=8)
    pool = Pool(model=model, system="h100", scheduler=sched, max_context=8192, **kw)
    a = serve(df, pool, fast_forward=True)
    done = check_invariants(a, df)
    assert done.sum() == (df.prompt_tokens + df.output_tokens <= 8192).sum()
    b = serve(df, pool, fast_forward=False)
    pd.testing.assert_frame_equal(a.requests, b.requests)
    pd.testing.assert_frame_equal(a.timeline, b.timeline)


def test_prefix_caching_with_a_capped_window_cache_is_refused():
    df = rq.frame([0.0], [100], [10])
    with pytest.raises(HwsimError, match="prefix caching") as err:
        serve(df, Pool(model=MISTRAL, system="h100", prefix_caching=True, max_context=8192))
    assert "\n" not in str(err.value)
