"""Partial weight offload (HF Accelerate placement) and DFloat11-compressed weights."""
import pytest
from hypothesis import given, settings, strategies as st

from hw_models.df11 import decompress_rate
from hw_models.presets import load_device
from hw_models.systems import load_system
from mapping import map_graph
from mapping.offload import DF11_RATIO
from mapping.residency import plan, weight_units
from sim.engine import simulate
from workloads import trace

A5000 = load_system("a5000-host-offload")
A100 = load_system("a100-host-offload")


@pytest.fixture(scope="module")
def qwen():
    return trace("qwen3-14b", "decode", 8, 100)


def test_a_model_that_fits_offloads_nothing():
    g = trace("llama-3.1-8b", "decode", 4, 512)
    m = map_graph(g, A100, "offload")
    assert m.residency.resident == len(m.residency.units) and m.residency.streamed_bytes == 0
    off, single = simulate(m, A100), simulate(map_graph(g, A100, "single"), A100)
    assert off.link_bytes["pcie"] == 0
    assert off.latency_s == pytest.approx(single.latency_s, rel=1e-9)


def test_streamed_bytes_are_the_non_resident_weights(qwen):
    m = map_graph(qwen, A5000, "offload")
    res = m.residency
    assert 0 < res.resident < len(res.units)                       # 29.5 GB of bf16 on a 25.8 GB card
    layers = sum(b for n, b in res.units[res.resident:] if n.startswith("layer"))
    head = dict(res.units)["head"]
    assert res.streamed_bytes == pytest.approx(layers + head)      # the LM head goes with the last layers
    assert simulate(m, A5000).link_bytes["pcie"] == pytest.approx(res.streamed_bytes)
    assert sum(b for _, b in res.units) == pytest.approx(qwen.meta["weight_storage_bytes"])
    # what stays, plus room for the largest streamed module and the reserve, fits; one more layer would not
    cap = A5000.device("gpu").main_memory.capacity_gb * 1e9
    assert res.held_bytes + res.reserved_bytes <= cap
    next_layer = res.units[res.resident][1]
    assert res.held_bytes + next_layer + res.reserved_bytes > cap          # staging stays the head's room


def test_copies_do_not_overlap_compute_in_accelerate_offload(qwen):
    m = map_graph(qwen, A5000, "offload")
    copies = m.residency.streamed_bytes / 10.0e9                   # the system's pageable rate (paper Fig. 7)
    compute = simulate(map_graph(qwen, A5000, "single"), A5000).latency_s
    step = simulate(m, A5000).latency_s
    assert step == pytest.approx(compute + copies, rel=1e-3)
    overlapped = simulate(map_graph(qwen, A5000, "offload-overlap"), A5000).latency_s
    assert overlapped < step


@settings(max_examples=8, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=2))
def test_throughput_rises_with_the_resident_fraction(fractions):
    g = trace("qwen3-14b", "decode", 8, 100)
    lo, hi = sorted(fractions)
    t_lo = simulate(map_graph(g, A5000, f"offload:{lo}"), A5000).latency_s
    t_hi = simulate(map_graph(g, A5000, f"offload:{hi}"), A5000).latency_s
    assert t_hi <= t_lo * (1 + 1e-9)


def test_resident_fraction_zero_streams_every_layer(qwen):
    res = map_graph(qwen, A5000, "offload:0").residency
    assert res.resident == 1 and res.streamed_bytes == pytest.approx(sum(b for n, b in res.units if n != "embed"))


def test_df11_weights_are_about_11_of_16_bits(qwen):
    assert DF11_RATIO == pytest.approx(11 / 16, rel=0.02)          # Table 1: 10.8-10.9 bits per weight
    plain = map_graph(qwen, A5000, "offload:0").residency
    df = map_graph(qwen, A5000, "df11,offload:0").residency
    assert simulate(map_graph(qwen, A5000, "df11,offload:0"), A5000).link_bytes["pcie"] == \
        pytest.approx(DF11_RATIO * plain.streamed_bytes)
    assert df.held_bytes > plain.held_bytes                        # DF11 holds a bf16 block to decompress into


def test_df11_decompresses_every_weight_once_per_step(qwen):
    plain = simulate(map_graph(qwen, A5000, "single"), A5000).latency_s
    df = simulate(map_graph(qwen, A5000, "df11"), A5000).latency_s
    rate, source = decompress_rate(load_device("rtx-a5000"))
    assert rate == pytest.approx(163.9e9) and "Fig. 7" in source
    assert df - plain == pytest.approx(qwen.meta["weight_storage_bytes"] / rate, rel=1e-6)


def test_decompression_rate_estimate_scales_with_sms_and_clock():
    rate, source = decompress_rate(load_device("quadro-rtx-8000"))
    assert source.startswith("estimate") and 150e9 < rate < 260e9


def test_auto_plan_gives_up_when_nothing_fits():
    g = trace("qwen3-14b", "decode", 512, 8192)                    # ~350 GB of KV cache
    with pytest.raises(Exception, match="not even one layer"):
        plan(g, 25.76e9)


def test_units_follow_model_order(qwen):
    names = [n for n, _ in weight_units(qwen)]
    assert names[0] == "embed" and names[-1] == "head" and names[1:-1] == [f"layer{i}" for i in range(40)]


@pytest.mark.parametrize("spec, words", [("offload:1.5", "fraction from 0 to 1"), ("offload:x", "fraction"),
                                         ("offload,offload-overlap", "cannot follow offload")])
def test_bad_offload_options(spec, words):
    import contextlib
    import io

    from sim.cli import main
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["simulate", "--model", "gpt2", "--system", "a5000-host-offload", "--mapping", spec])
    assert code == 2 and words in err.getvalue() and len(err.getvalue().strip().splitlines()) == 1
