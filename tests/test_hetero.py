"""The heterogeneous task scheduler and the NeuPIMs schedule variants."""
import pytest

from mapping.neupims import MODES, decode_step
from sim.hetero import Task, run_tasks
from workloads import trace


def test_independent_tasks_on_two_resources_overlap():
    r = run_tasks([Task("a", "npu", 3.0), Task("b", "pim", 2.0), Task("c", "npu", 1.0, ["b"])])
    assert r["makespan"] == pytest.approx(4.0)          # c waits for the npu (busy with a until 3), not for b
    assert r["busy"] == {"npu": 4.0, "pim": 2.0}
    assert r["spans"]["c"] == (3.0, 4.0)


def test_dependencies_serialize():
    r = run_tasks([Task("a", "x", 1.0), Task("b", "y", 1.0, ["a"]), Task("c", "x", 1.0, ["b"])])
    assert r["makespan"] == pytest.approx(3.0)


def test_neupims_variants_order():
    full, half = trace("gpt3-7b", "decode", 64, 128), trace("gpt3-7b", "decode", 32, 128)
    t = {m: decode_step(full, half, mode=m)["latency_s"] for m in MODES}
    assert t["npu+pim"] < t["npu-only"]          # in-bank attention beats streaming the KV cache to the NPU
    assert t["dual-rb"] <= t["npu+pim"]          # a second row buffer never hurts
