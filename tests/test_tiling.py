"""GEMM tiling search: fits the buffer, beats a naive tiling, stops at its time limit."""
import pytest

from mapping.tiling import evaluate, search
from workloads.errors import HwsimError

ARGS = dict(rows=128, cols=128, arrays=8, clock_hz=1e9, bandwidth=1e12)


def test_best_tiling_fits_and_beats_the_smallest_blocks():
    r = search(256, 12288, 4096, buffer_bytes=16e6, **ARGS)
    b = r["best"]
    assert (b.tm * b.tk + b.tk * b.tn + b.tm * b.tn) * 2 <= 16e6
    naive = evaluate(256, 12288, 4096, 16, 128, 128, "mn", 128, 128, 8, 1e9, 1e12, 2)
    assert b.time_s <= naive.time_s and b.traffic_bytes < naive.traffic_bytes
    assert r["complete"] and r["fitting"] > 0


def test_compute_bound_big_gemm_reaches_the_array_peak():
    b = search(8192, 8192, 8192, buffer_bytes=32e6, **ARGS)["best"]
    peak = 8 * 128 * 128 * 2 * 1e9
    assert 2 * 8192 ** 3 / b.time_s == pytest.approx(peak, rel=0.15)


def test_time_limit_stops_the_search():
    r = search(1 << 20, 1 << 16, 1 << 16, buffer_bytes=64e6, time_limit_s=0.0, **ARGS)
    assert not r["complete"] and r["evaluated"] < r["candidates"]


def test_impossible_buffer():
    with pytest.raises(HwsimError):
        search(1024, 1024, 1024, buffer_bytes=1000, **ARGS)
