"""Process nodes (the facts the area/cost model and node overrides share).

Sources (every constant below names one):
  KM   Khan & Mann, "AI Chips: What They Are and Why They Matter", CSET, April 2020, Tables 7-8 (logic
       transistor density in million transistors per mm2, and foundry sale price per 300 mm wafer by node),
       as tabulated in LLMCompass's supply-chain model (github PrincetonUniversity/ttm-cas,
       supply_chain_model.py: transistor_density_arr, wafer_costs_arr)
  LC   LLMCompass (Zhang, Ning, Prabhakar, Wentzlaff, ISCA 2024; github PrincetonUniversity/LLMCompass
       @2e015fd, cost_model/cost_model.py): 6 nm logic density, SRAM bit-cell areas, defect densities
"""
from __future__ import annotations

import math

from workloads.errors import HwsimError

# node nm -> million transistors per mm2 (KM; 6 nm from LC)
LOGIC_DENSITY = {250: 0.074, 180: 0.39, 130: 0.92, 90: 1.6, 65: 3.3, 40: 7.7, 28: 15.3, 20: 22.1, 14: 28.9,
                 10: 52.5, 7: 96.3, 6: 114.2, 5: 138.2}


def _interp(table: dict, node: float, log: bool = True) -> float:
    """Log-log interpolation between tabulated nodes; beyond the table, the last segment's slope."""
    nodes = sorted(table)
    if node in table:
        return table[node]
    lo = max([n for n in nodes if n < node], default=None)
    hi = min([n for n in nodes if n > node], default=None)
    if lo is None:
        lo, hi = nodes[0], nodes[1]
    elif hi is None:
        lo, hi = nodes[-2], nodes[-1]
    f = lambda x: math.log(x) if log else x   # noqa: E731
    t = (f(node) - f(lo)) / (f(hi) - f(lo))
    return math.exp(f(table[lo]) + t * (f(table[hi]) - f(table[lo]))) if log else \
        table[lo] + t * (table[hi] - table[lo])


def logic_density(node_nm: float) -> float:
    if not 3 <= node_nm <= 250:
        raise HwsimError(f"process node {node_nm:g} nm is outside the 3-250 nm the area model covers")
    return _interp(LOGIC_DENSITY, node_nm)


def energy_scale(node_from: float, node_to: float) -> float:
    """Energy per operation at node_to over node_from: switched capacitance ~ 1/sqrt(logic density) at a flat
    supply voltage (FinFET nodes sit at 0.7-0.8 V). An estimate; the densities are KM's."""
    return math.sqrt(logic_density(node_from) / logic_density(node_to))


# preset -> process node in nm (a "4N"/"N4" part is 5 nm class: TSMC N4 is an N5 derivative)
PRESET_NODES = {
    "a100-40gb": (7, "NVIDIA A100 Tensor Core GPU Architecture whitepaper (2020): GA100, TSMC 7 nm N7, 826 mm2"),
    "a100-80gb": (7, "NVIDIA A100 whitepaper (2020): GA100, TSMC 7 nm N7"),
    "h100-sxm-80gb": (5, "NVIDIA H100 Tensor Core GPU Architecture whitepaper v1.03 (2022): GH100, TSMC 4N "
                         "(5 nm class), 814 mm2"),
    "h200-141gb": (5, "NVIDIA H200 uses the GH100 die (TSMC 4N, 5 nm class)"),
    "h20-96gb": (5, "NVIDIA H20 is a cut-down GH100 (TSMC 4N, 5 nm class)"),
    "b200": (5, "NVIDIA Blackwell architecture technical brief (2024): TSMC 4NP (5 nm class)"),
    "l4": (5, "NVIDIA Ada Lovelace architecture whitepaper (2022): AD104, TSMC 4N (5 nm class)"),
    "rtx-4090": (5, "NVIDIA Ada Lovelace architecture whitepaper (2022): AD102, TSMC 4N (5 nm class)"),
    "rtx-a6000": (8, "NVIDIA Ampere GA102 whitepaper (2020): Samsung 8 nm"),
    "rtx-a5000": (8, "NVIDIA Ampere GA102 whitepaper (2020): Samsung 8 nm"),
    "v100s-32gb": (12, "NVIDIA Tesla V100 whitepaper (2017): GV100, TSMC 12 nm FFN"),
    "quadro-rtx-8000": (12, "NVIDIA Turing whitepaper (2018): TU102, TSMC 12 nm FFN"),
    "mi210": (6, "AMD CDNA 2 white paper (2021): Aldebaran, TSMC 6 nm"),
    "mi250x": (6, "AMD CDNA 2 white paper (2021): Aldebaran, TSMC 6 nm"),
    "tpu-v4": (7, "Jouppi et al., TPU v4 (ISCA 2023), Table 2: 7 nm"),
    "neupims-npu": (7, "estimate: NeuPIMs gives no node for its NPU; TPU v4-class (7 nm) taken"),
}


def preset_node_nm(preset_id: str):
    hit = PRESET_NODES.get(preset_id)
    return float(hit[0]) if hit else None
