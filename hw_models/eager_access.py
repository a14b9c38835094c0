"""How fast and at what energy an eager (non-GEMM, non-attention) kernel moves its bytes, by how it reaches its
operands: the classes workloads/tracer.py `_access` records (Kernel.strided). Its own module so that hw_models/gpu.py
(traced ops) and hw_models/moe.py (the MoE layer's kernels) price the same class the same way without importing
each other."""
from __future__ import annotations

import numpy as np


def _set_or(value, fallback):
    """`value` where it is > 0 (a preset sets it), else `fallback`; numbers or arrays (stacked models)."""
    if np.ndim(value) == 0 and np.ndim(fallback) == 0:
        return value if value > 0 else fallback
    return np.where(np.greater(value, 0), value, fallback)


def eager_kernel_eff(p, access, cat, masked=False, atomic=False):
    """The bandwidth fraction of one eager kernel (not a GEMM or attention) by how it reaches its operands
    (Kernel.strided, workloads/tracer.py `_access`): 0 vectorized at `vec_bw_eff`, 1 gapped operands at
    `strided_bw_eff`, 2 gap-free but not vectorized at `nonvec_bw_eff`; a cat of class 1 or 2 (torch's
    non-vectorized CatArrayBatchedCopy) at `cat_bw_eff`; a masked_fill (`masked`) at `mask_bw_eff`. Each of
    vec/nonvec/cat/mask falls back to eager_bw_eff (or its class) where the preset leaves it 0, as every device was
    priced before the split. `access`, `cat`, `masked`: numbers or arrays of kernels (gpu_table.py); the parameters
    numbers or [points, 1] arrays. `atomic`: an index_add_ (an atomic add per element), at `index_add_eff` where the
    device has a measured atomic rate (GPUModel sets it from `index_add_gbps` over its DRAM bandwidth)."""
    eff = _class_eff(p, access, cat, masked)
    if np.ndim(atomic) == 0:
        return _set_or(p.get("index_add_eff", 0), eff) if atomic else eff
    return np.where(np.asarray(atomic, dtype=bool), _set_or(p.get("index_add_eff", 0), eff), eff)


def _class_eff(p, access, cat, masked):
    if np.ndim(access) == 0:
        if access == 1:
            eff = p["strided_bw_eff"]
        else:
            eff = _set_or(p["nonvec_bw_eff"] if access == 2 else p["vec_bw_eff"], p["eager_bw_eff"])
        eff = _set_or(p["cat_bw_eff"], eff) if cat and access else eff
        return _set_or(p.get("mask_bw_eff", 0), eff) if masked else eff
    access, cat = np.asarray(access), np.asarray(cat, dtype=bool)
    eff = np.where(access == 1, p["strided_bw_eff"],
                   np.where(access == 2, _set_or(p["nonvec_bw_eff"], p["eager_bw_eff"]),
                            _set_or(p["vec_bw_eff"], p["eager_bw_eff"])))
    eff = np.where(np.logical_and(cat, access > 0), _set_or(p["cat_bw_eff"], eff), eff)
    return np.where(np.asarray(masked, dtype=bool), _set_or(p.get("mask_bw_eff", 0), eff), eff)


def kernel_energy_rel(p, access, cat):
    """An eager kernel's energy per byte over a vectorized kernel's (the power model's e_byte_pj), by how it reaches
    its operands (Kernel.strided, as eager_kernel_eff): torch's non-vectorized kernels issue a load, a store and
    index arithmetic per element where its vectorized ones move 16 bytes an instruction, so their SMs draw more per
    byte moved; a cat of non-contiguous parts (CatArrayBatchedCopy: offsets computed per element) most. Measured
    under sustained NVML power (benchmarks/gpu/measure_kernel_power.py, fit_kernel_power.py): `e_cat_rel` for a cat
    of class 1 or 2, `e_nonvec_rel` for the other kernels of class 1 or 2, 1 for class 0 and where the preset
    leaves them 0. `access`, `cat`: numbers or arrays of kernels; the parameters numbers or [points, 1] arrays."""
    nonvec = _set_or(p.get("e_nonvec_rel", 0), 1.0)
    cat_rel = _set_or(p.get("e_cat_rel", 0), nonvec)
    if np.ndim(access) == 0 and np.ndim(nonvec) == 0 and np.ndim(cat_rel) == 0:
        return (cat_rel if cat else nonvec) if access else 1.0
    access, cat = np.asarray(access), np.asarray(cat, dtype=bool)
    return np.where(access > 0, np.where(cat, cat_rel, nonvec), 1.0)
