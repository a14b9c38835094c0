"""The heterogeneous task scheduler (the NeuPIMs schedules are tested in test_neupims.py)."""
import pytest

from mapping.taskgraph import Task
from sim.schedule import run_tasks


def test_independent_tasks_on_two_resources_overlap():
    r = run_tasks([Task("a", "npu", 3.0), Task("b", "pim", 2.0), Task("c", "npu", 1.0, ["b"])])
    assert r["makespan"] == pytest.approx(4.0)          # c waits for the npu (busy with a until 3), not for b
    assert r["busy"] == {"npu": 4.0, "pim": 2.0}
    assert r["spans"]["c"] == (3.0, 4.0)


def test_dependencies_serialize():
    r = run_tasks([Task("a", "x", 1.0), Task("b", "y", 1.0, ["a"]), Task("c", "x", 1.0, ["b"])])
    assert r["makespan"] == pytest.approx(3.0)


def test_a_task_holding_two_resources_excludes_both():
    r = run_tasks([Task("npu-stream", ("bus", "npu"), 2.0), Task("pim", ("bus", "pim"), 3.0),
                   Task("npu-compute", "npu", 1.0)])
    assert r["makespan"] == pytest.approx(5.0)          # the two bus users serialize; compute slips in beside
    assert r["busy"]["bus"] == pytest.approx(5.0) and r["busy"]["npu"] == pytest.approx(3.0)
