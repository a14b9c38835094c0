"""index_add_ at the device's measured atomic rate (`index_add_gbps`): torch's indexFuncLargeIndex adds each element
with an atomic, 0.70-0.73 TB/s of its bytes on the H100 whatever the DRAM could give (benchmarks/gpu/data/
h100-2026-12-07-lease25-moe-grid-wide). The rate is absolute: a what-if with more DRAM bandwidth does not move it."""
import numpy as np
import pytest

from hw_models import load_device
from hw_models.gpu import DEFAULTS, GPUModel, eager_kernel_eff
from hw_models.moe import MoELayer, kernels


def test_scalar_and_array_forms_agree_and_unset_falls_back():
    p = {**DEFAULTS, "vec_bw_eff": 0.88, "nonvec_bw_eff": 0.62, "index_add_eff": 0.2}
    access = np.array([0, 2, 0])
    atomic = np.array([True, False, False])
    arr = eager_kernel_eff(p, access, np.zeros(3, bool), np.zeros(3, bool), atomic)
    one = [eager_kernel_eff(p, int(a), False, False, bool(t)) for a, t in zip(access, atomic)]
    assert arr.tolist() == pytest.approx(one)
    assert one == pytest.approx([0.2, 0.62, 0.88])
    assert eager_kernel_eff({**p, "index_add_eff": 0.0}, 0, False, False, True) == 0.88


def test_rate_is_absolute_and_the_moe_layer_pays_it():
    h100 = GPUModel(load_device("h100"))
    assert h100.p["index_add_gbps"] == pytest.approx(720.0)
    assert h100.p["index_add_eff"] * h100.bw == pytest.approx(720e9)
    h200 = GPUModel(load_device("h200"))                      # transferred: the same atomics, faster DRAM
    assert h200.p["index_add_eff"] * h200.bw == pytest.approx(720e9)
    assert h200.p["index_add_eff"] < h100.p["index_add_eff"]
    a100 = GPUModel(load_device("a100"))                      # not measured: its class's rate
    assert a100.p["index_add_eff"] == 0.0
    # 2,048 rows x 16 experts of (2048, 1408): the measured index_add_ took 556 us; priced at the rate, not at DRAM's
    layer = MoELayer(16384, 2048, 1408, 2, (2048,) * 16)
    add = [k.gpu_s for k in kernels(h100, layer, "grouped", 1980) if k.aten == "index_add"]
    assert add[0] == pytest.approx(556e-6, rel=0.05)
    plain = GPUModel(load_device("h100"), params={"index_add_gbps": 0})
    assert [k.gpu_s for k in kernels(plain, layer, "grouped", 1980) if k.aten == "index_add"][0] < 0.3 * add[0]
