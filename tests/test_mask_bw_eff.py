"""masked_fill kernels at their own bandwidth fraction (`mask_bw_eff`): torch runs them non-vectorized over two
dtypes (values and a bool mask); measured at 0.405 of the H100's bandwidth in HF's MoE experts (calibration:
qwen1.5-moe-a2.7b; held out deepseek-v2-lite 0.406, mixtral-8x7b 0.381: benchmarks/gpu/hf_prefill_breakdown.py
--masked-fill)."""
import numpy as np
import pytest

from hw_models import load_device
from hw_models.gpu import DEFAULTS, eager_kernel_eff


def _p(**kw):
    return {**DEFAULTS, "vec_bw_eff": 0.88, "nonvec_bw_eff": 0.62, "cat_bw_eff": 0.25, **kw}


def test_scalar_and_array_forms_agree():
    p = _p(mask_bw_eff=0.4)
    access = np.array([0, 1, 2, 2, 0])
    cat = np.array([False, True, False, True, False])
    masked = np.array([False, False, True, False, True])
    arr = eager_kernel_eff(p, access, cat, masked)
    one = [eager_kernel_eff(p, int(a), bool(c), bool(m)) for a, c, m in zip(access, cat, masked)]
    assert arr.tolist() == pytest.approx(one)
    assert one[2] == 0.4 and one[4] == 0.4 and one[0] == 0.88 and one[1] == 0.25


def test_unset_falls_back_to_the_class():
    p = _p()
    assert eager_kernel_eff(p, 2, False, True) == 0.62 and eager_kernel_eff(p, 0, False, True) == 0.88


def test_h100_preset_has_the_measured_value():
    assert load_device("h100").calibration.params["mask_bw_eff"] == pytest.approx(0.405)
