"""The roofline chart shows every op (sub-GFLOP/s ones too), its labels never overlap, and the report's
inputs name the phases drawn."""
import io
import json
from contextlib import redirect_stdout

import matplotlib.pyplot as plt
import pytest

from hw_models import load_device
from sim.cli import main
from sim.report import plot, roofline
from workloads import trace


@pytest.fixture(scope="module")
def chart():
    graphs = {phase: trace("llama-3.1-8b", phase, 1, 512) for phase in ("prefill", "decode")}
    reports = roofline.build(graphs, [load_device("h100"), load_device("h200")])
    fig = plot.figure(reports, "test")
    yield fig, reports
    plt.close(fig)


def test_every_op_is_inside_the_axes(chart):
    fig, reports = chart
    for ax, r in zip(fig.axes, reports):
        pts = [op for p in r.predictions.values() for op in p.ops if op["intensity"] and op["attained_flops"] > 0]
        assert min(op["attained_flops"] for op in pts) < 1e9          # the ops a 1 GFLOP/s floor would hide
        lo, hi = ax.get_ylim()
        assert all(lo <= op["attained_flops"] <= hi for op in pts)
        lo, hi = ax.get_xlim()
        assert all(lo <= op["intensity"] <= hi for op in pts)


def test_labels_do_not_overlap(chart):
    fig, reports = chart
    renderer = fig.canvas.get_renderer()
    for ax, r in zip(fig.axes, reports):
        boxes = [t.get_window_extent(renderer) for t in ax.texts]
        assert len(boxes) >= 4
        for i, a in enumerate(boxes):
            assert not any(a.overlaps(b) for b in boxes[i + 1:]), [t.get_text() for t in ax.texts]
        names = {t.get_text() for t in ax.texts}
        for pred in r.predictions.values():            # the largest op of each phase is always named
            assert max(pred.ops, key=lambda op: op["share"])["name"] in names


def test_report_inputs_name_the_phases_drawn(tmp_path):
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["roofline", "--model", "gpt2", "--hardware", "h100", "--phases", "prefill,decode", "--out-dir",
                     str(tmp_path), "--json"]) == 0
    doc = json.loads(out.getvalue())
    assert doc["inputs"]["phases"] == ["prefill", "decode"] and "phase" not in doc["inputs"]
    page = (tmp_path / "roofline-gpt2.html").read_text()
    assert "&quot;phases&quot;: [&quot;prefill&quot;, &quot;decode&quot;]" in page and "&quot;phase&quot;" not in page
