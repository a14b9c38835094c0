"""Torch's non-vectorized eager kernels are charged more energy per byte (hw_models/gpu.py kernel_energy_rel:
e_nonvec_rel, e_cat_rel, measured on the H200 by benchmarks/gpu/measure_kernel_power.py): on the graph path
(OpCost.bytes) and on the table paths (GPUTable.op_bytes: one case, sweeps over stacked devices) alike."""
import numpy as np
import pytest

from hw_models import load_device
from hw_models.gpu import GPUModel, kernel_energy_rel
from sim import api
from workloads import trace


def test_class_factors():
    p = {"e_nonvec_rel": 1.5, "e_cat_rel": 3.0}
    assert kernel_energy_rel(p, 0, False) == 1.0 and kernel_energy_rel(p, 0, True) == 1.0
    assert kernel_energy_rel(p, 2, False) == 1.5 and kernel_energy_rel(p, 1, False) == 1.5
    assert kernel_energy_rel(p, 1, True) == 3.0
    assert kernel_energy_rel({"e_nonvec_rel": 1.5, "e_cat_rel": 0}, 2, True) == 1.5     # cat falls back to nonvec
    assert kernel_energy_rel({"e_nonvec_rel": 0, "e_cat_rel": 0}, 2, True) == 1.0
    arr = kernel_energy_rel(p, np.array([0, 1, 2, 2]), np.array([True, True, False, True]))
    assert arr.tolist() == [1.0, 3.0, 1.5, 3.0]
    stacked = kernel_energy_rel({"e_nonvec_rel": np.array([[1.5], [0.0]]), "e_cat_rel": np.array([[3.0], [0.0]])},
                                np.array([0, 2, 1]), np.array([False, False, True]))
    assert stacked.tolist() == [[1.0, 1.5, 3.0], [1.0, 1.0, 1.0]]


def test_op_bytes_add_each_kernels_extra():
    """An op's bytes for the power model: its own, plus (rel - 1) x each non-vectorized kernel's bytes; time untouched."""
    g = trace("phi-3-mini", "prefill", 1, 2048)
    dev = load_device("h100")
    on, off = GPUModel(dev), GPUModel(dev, params={"e_nonvec_rel": 0, "e_cat_rel": 0})
    assert on.p["e_cat_rel"] > on.p["e_nonvec_rel"] > 1
    seen = set()
    for op in g.ops:
        ks = op.kernels or ()
        if op.kind in ("matmul", "attention") or not ks:
            continue
        extra = sum((kernel_energy_rel(on.p, int(k.strided), k.aten == "cat") - 1) * sum(k.bytes.values()) for k in ks)
        assert on.cost(op, 1980).bytes == pytest.approx(off.cost(op, 1980).bytes + extra, rel=1e-12)
        assert on.cost(op, 1980).time_s == off.cost(op, 1980).time_s
        seen |= {(int(k.strided) > 0, k.aten == "cat" and int(k.strided) > 0) for k in ks}
    assert {(True, True), (True, False), (False, False)} <= seen       # RoPE's cat, broadcasts, vectorized


@pytest.mark.parametrize("phase,batch,seq,ctx", [("prefill", 2, 1024, 0), ("decode", 8, 2048, 0),
                                                 ("chunked_prefill", 1, 256, 1024)])
def test_fast_path_equals_graph_path(phase, batch, seq, ctx):
    fast = api.predict("phi-3-mini", "h100", phase, batch, seq, ctx)
    full = api.predict("phi-3-mini", "h100", phase, batch, seq, ctx, detail=True)
    assert fast.energy_j == pytest.approx(full.energy_j, rel=1e-9)
    assert fast.latency_s == pytest.approx(full.latency_s, rel=1e-9)
