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
from dataclasses import dataclass, replace

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


# --- area model -------------------------------------------------------------------------------------------
# Transistor counts (LC cost_model.py, after Ariane and OpenPiton's SPARC T1): a 64-bit FPU; narrower FPUs
# scale with the square of the significand bits (fp32 23, fp16 10 of fp64's 52); an int32 ALU/multiplier.
FPU64_TRANSISTORS = 685_300
INT32_TRANSISTORS = 177_690
SIGNIFICAND_BITS = {"fp64": 52, "fp32": 23, "tf32": 10, "fp16": 10, "bf16": 10, "fp8": 3, "int8": 7, "int4": 3}
# control per sublane per thread of its vector width, and the per-core crossbar port (LC, fitted there to the
# GA100 SM and the MI210 CU die shots)
CONTROL_TRANSISTORS_PER_THREAD = 996_200
CROSSBAR_TRANSISTORS_PER_CORE = 44_300_000
# SRAM: bit-cell area per node in mm2 per bit as LC uses it (with its array periphery folded into the
# efficiency below); other nodes scale with logic density from the 7 nm value
SRAM_BIT_MM2 = {7: 1.70e-07, 6: 1.40e-07, 5: 1.25e-07}
# array efficiency (bit cells / macro area) of SRAM macros of 4 KB ... 1 MB (LC, from CACTI); larger
# memories are built of 512 KB macros
SRAM_EFFICIENCY = (0.076, 0.142, 0.247, 0.393, 0.559, 0.704, 0.526, 0.602, 0.561)
SRAM_MACRO_MAX = 2 ** 19
# off-chip interfaces (LC): PHY mm2 per unit (does not shrink with the node) and controller transistors per
# unit; a unit is one 1024-bit stack (HBM), one 32-bit channel (DDR), one lane (PCIe) or one link (NVLink)
PHY_MM2 = {"HBM2e": 10.45, "DDR5": 1.45, "PCIe5": 0.64, "PCIe4": 0.48, "NVLink3": 1.888, "NVLink4": 0.965,
           "InfinityFabric": 5.69}
CTRL_TRANSISTORS = {"HBM2e": 552_743_000, "DDR5": 90_446_400, "PCIe5": 5_372_100, "PCIe4": 3_962_500,
                    "NVLink3": 74_632_000, "NVLink4": 86_628_000, "InfinityFabric": 348_148_000}
# interfaces LC does not list, taken as the nearest one it does (an estimate): same 1024-bit stack interface
# for HBM2/HBM3/HBM3e, DDR4/LPDDR5 as DDR5 per 32 bits, PCIe3 as PCIe4, Google ICI as NVLink3 per 25 GB/s
INTERFACE_ALIAS = {"HBM2": "HBM2e", "HBM3": "HBM2e", "HBM3e": "HBM2e", "DDR4": "DDR5", "LPDDR5": "DDR5",
                   "LPDDR4": "DDR5", "PCIe3": "PCIe4", "ICI": "NVLink3"}


def _register_file_mm2(depth: int, width: int, ports: int, node_nm: float) -> float:
    """EMPIRE register-file area model (90 nm polynomial in entries D, bits W, ports P, in um2), scaled to the node
    by logic density (the model LC uses)."""
    D, W, P = depth, width, ports
    um2 = (3.29e4 - 1.09e3 * D - 8.83e2 * W - 5.55e3 * P + 5.35e1 * D * W + 1.50e-2 * D * D + 1.08e-2 * W * W
           + 5.86e-1 * P * P + 1.42e2 * D * P + 3.68e2 * W * P)
    return um2 / 1e6 * logic_density(90) / logic_density(node_nm)


def sram_mm2(nbytes: float, node_nm: float) -> float:
    if nbytes <= 0:
        return 0.0
    macros, unit = (math.ceil(nbytes / SRAM_MACRO_MAX), SRAM_MACRO_MAX) if nbytes > SRAM_MACRO_MAX else (1, nbytes)
    unit = max(unit, 2 ** 12)
    eff = SRAM_EFFICIENCY[math.ceil(math.log2(unit)) - 12]
    bit = SRAM_BIT_MM2.get(node_nm) or SRAM_BIT_MM2[7] * logic_density(7) / logic_density(node_nm)
    return macros * unit * 8 * bit / eff


def fpu_transistors(dtype: str) -> float:
    return FPU64_TRANSISTORS * (SIGNIFICAND_BITS[dtype] / 52) ** 2


@dataclass(frozen=True)
class Floorplan:
    """What the area model needs to know of a die beyond a DeviceSpec (physical, not enabled, resources)."""
    node_nm: float
    cores: int                                 # physical cores: SMs, TensorCores, NPU cores
    macs_per_core: float                       # matrix/systolic multiply-accumulate units
    mac_dtype: str = "fp16"                    # the multiplier width they are built for
    mac_um2: float = 0.0                       # a measured MAC/PE area (um2 at node_nm) instead of the FPU count
    sublanes: int = 4                          # GPU processing blocks per SM (0: no SIMT control, e.g. a TPU core)
    threads: int = 32                          # threads per sublane (control grows with them)
    fp32_lanes: int = 0                        # per core
    int32_lanes: int = 0
    fp64_lanes: int = 0
    regfile_kb: float = 0.0                    # per core
    regfile_ports: int = 4
    sram_kb: float = 0.0                       # per core (L1 / shared memory / local buffer)
    global_sram_mb: float = 0.0                # L2 / CMEM / VMEM (MiB)
    memory: str = "HBM2e"
    memory_units: int = 0                      # physical stacks (HBM) or 32-bit channels (DDR)
    links: tuple = ()                          # ((interface, units), ...)
    crossbar: bool = True
    other_fraction: float = 0.0                # blocks outside the model as a share of the die (e.g. TPU SparseCores)
    source: str = ""


def die_area(fp: Floorplan) -> dict:
    """Die area by block, mm2 (the blocks of LC's Fig. 6): cores, on-chip interconnect, global buffer, memory PHY
    and controller, off-chip interconnect PHY and controller, other."""
    dens = logic_density(fp.node_nm) * 1e6           # transistors per mm2
    mac = fp.mac_um2 * 1e-6 if fp.mac_um2 else fpu_transistors(fp.mac_dtype) / dens
    control = fp.sublanes * fp.threads * CONTROL_TRANSISTORS_PER_THREAD / dens
    alus = (fp.fp32_lanes * fpu_transistors("fp32") + fp.fp64_lanes * FPU64_TRANSISTORS
            + fp.int32_lanes * INT32_TRANSISTORS) / dens
    rf = 0.0
    if fp.regfile_kb:
        per = max(fp.sublanes, 1)
        rf = per * _register_file_mm2(int(fp.regfile_kb * 1024 * 8 / 32 / per), 32, fp.regfile_ports, fp.node_nm)
    core = mac * fp.macs_per_core + control + alus + rf + sram_mm2(fp.sram_kb * 1024, fp.node_nm)
    parts = {"cores": core * fp.cores,
             "on_chip_interconnect": fp.cores * CROSSBAR_TRANSISTORS_PER_CORE / dens if fp.crossbar else 0.0,
             "global_buffer": sram_mm2(fp.global_sram_mb * 2 ** 20, fp.node_nm)}
    mem = INTERFACE_ALIAS.get(fp.memory, fp.memory)
    parts["memory_phy"] = PHY_MM2[mem] * fp.memory_units
    parts["memory_control"] = CTRL_TRANSISTORS[mem] * fp.memory_units / dens
    parts["offchip_phy"] = sum(PHY_MM2[INTERFACE_ALIAS.get(t, t)] * n for t, n in fp.links)
    parts["offchip_control"] = sum(CTRL_TRANSISTORS[INTERFACE_ALIAS.get(t, t)] * n for t, n in fp.links) / dens
    modelled = sum(parts.values())
    parts["other"] = modelled * fp.other_fraction / (1 - fp.other_fraction) if fp.other_fraction else 0.0
    parts["total"] = sum(parts.values())
    return parts


# The anchors: physical floorplans of real dies (full die, including disabled SMs/stacks), each sourced.
_WP_A100 = ("NVIDIA A100 Tensor Core GPU Architecture whitepaper (2020): full GA100 = 8 GPCs x 8 TPCs x 2 SMs = "
            "128 SMs; per SM 4 processing blocks with 16 INT32, 16 FP32, 8 FP64 lanes, one tensor core of 256 FP16 "
            "FMA/clk and a 64 KB register file each; 192 KB L1/shared per SM; 6 HBM2 stacks (5 enabled); 12 NVLink3 "
            "links; PCIe Gen4 x16; L2 48 MB physical (40 MB enabled, as in LC's GA100.json)")
_WP_H100 = ("NVIDIA H100 Tensor Core GPU Architecture whitepaper v1.03 (2022): full GH100 = 8 GPCs, 72 TPCs, 144 SMs; "
            "per SM 128 FP32, 64 INT32, 64 FP64 lanes, 4 tensor cores of 512 dense FP16 FMA/clk, 256 KB register "
            "file, 256 KB L1/shared; 60 MB L2; 6 HBM3 stacks (5 enabled on SXM5); 18 NVLink4 links; PCIe Gen5 x16")
_TPU_V4 = ("Jouppi et al., TPU v4 (ISCA 2023): 2 TensorCores of 4 MXUs (128x128) each, 128 MiB CMEM, 4 HBM2 stacks "
           "(32 GiB, 1.2 TB/s), 6 ICI links, SparseCores 5% of die area (abstract); TensorCore VMEM 16 MiB, "
           "vector unit 8 x 128 lanes of 32 bits and PCIe Gen3 x16 are recalled from the TPU v4i paper (Jouppi et "
           "al., ISCA 2021), not re-checked here")
FLOORPLANS = {
    "a100-80gb": Floorplan(7, 128, 1024, fp32_lanes=64, int32_lanes=64, fp64_lanes=32, regfile_kb=256, sram_kb=192,
                           global_sram_mb=48, memory="HBM2e", memory_units=6, links=(("NVLink3", 12),),
                           source=_WP_A100),
    "h100-sxm-80gb": Floorplan(5, 144, 2048, fp32_lanes=128, int32_lanes=64, fp64_lanes=64, regfile_kb=256,
                               sram_kb=256, global_sram_mb=60, memory="HBM3", memory_units=6,
                               links=(("NVLink4", 18), ("PCIe5", 16)), source=_WP_H100),
    "tpu-v4": Floorplan(7, 2, 4 * 128 * 128, sublanes=0, fp32_lanes=8 * 128, regfile_kb=128, sram_kb=16 * 1024,
                        global_sram_mb=128, memory="HBM2", memory_units=4,
                        links=(("ICI", 12), ("PCIe3", 16)), other_fraction=0.05, source=_TPU_V4),
}
FLOORPLANS["a100-40gb"] = FLOORPLANS["a100-80gb"]
FLOORPLANS["h200-141gb"] = replace(FLOORPLANS["h100-sxm-80gb"], memory="HBM3e",
                                   source="the GH100 die (as the H100) with HBM3e stacks")
FLOORPLANS["h20-96gb"] = FLOORPLANS["h100-sxm-80gb"]

# Published die areas the model is checked against (docs/area-model.md; tests/test_area.py)
PUBLISHED_DIE_MM2 = {
    "a100-80gb": (826, "NVIDIA A100 whitepaper (2020): GA100 826 mm2, 54.2 B transistors, TSMC N7"),
    "h100-sxm-80gb": (814, "NVIDIA H100 whitepaper v1.03 (2022): GH100 814 mm2, 80 B transistors, TSMC 4N"),
    "tpu-v4": (600, "Jouppi et al., TPU v4 (ISCA 2023), Table 2: die < 600 mm2, 7 nm (an upper bound; recalled)"),
}


def floorplan(device):
    """The floorplan of a device: its preset's anchor with the overrides applied (cores with the matrix units,
    MACs per core with the array size, L2/SRAM with the on-chip level, memory stacks with bandwidth or capacity,
    links with their bandwidth, the node); a generic one for an NPU with no anchor; None if not covered."""
    from .overrides import base_preset, process_node_nm
    from .presets import load_device
    base_id = base_preset(device)
    node = process_node_nm(device)
    fp = FLOORPLANS.get(base_id)
    if fp is None:
        return _generic_npu(device, node)
    base = load_device(base_id)
    if node:
        fp = replace(fp, node_nm=node)
    mm = [n for n, e in device.engines.items() if e.kind in ("matrix", "systolic")]
    if mm:
        e, e0 = device.engines[mm[0]], base.engines[mm[0]]
        cores = max(1, round(fp.cores * e.units / e0.units))
        per = max(e.ops_per_unit_per_clock.values()) / max(e0.ops_per_unit_per_clock.values())
        fp = replace(fp, cores=cores, macs_per_core=fp.macs_per_core * per)
    onchip = [n for n in device.memory if n in ("l2", "sram", "onchip", "cmem", "vmem")]
    if onchip and device.memory[onchip[0]].capacity_gb and base.memory.get(onchip[0]) is not None:
        fp = replace(fp, global_sram_mb=fp.global_sram_mb * device.memory[onchip[0]].capacity_gb
                     / base.memory[onchip[0]].capacity_gb)
    buf, buf0 = _param(device, "buffer_mb"), _param(base, "buffer_mb")
    if buf and buf != buf0 and not onchip:
        # an NPU's on-chip buffer override (`sram=`) is the global SRAM the cost model now assumes
        fp = replace(fp, global_sram_mb=buf * 1e6 / 2 ** 20)
    m, m0 = device.main_memory, base.main_memory
    ratio = max(m.bandwidth_gbps / m0.bandwidth_gbps, (m.capacity_gb or 0) / (m0.capacity_gb or 1))
    if ratio > 1.0:
        fp = replace(fp, memory_units=math.ceil(fp.memory_units * ratio - 1e-9))
    links = []
    for tech, n in fp.links:
        name = "nvlink" if tech.startswith("NVLink") else ("pcie" if tech.startswith("PCIe") else None)
        if name and name in device.links and name in base.links:
            n = max(1, math.ceil(n * device.links[name].bandwidth_gbps / base.links[name].bandwidth_gbps - 1e-9))
        links.append((tech, n))
    return replace(fp, links=tuple(links))


def _param(device, key):
    return (device.calibration.params.get(key) if device.calibration else None)


def _generic_npu(device, node):
    """An NPU with systolic arrays and no anchor: arrays x R x C MACs, its on-chip buffer as the global SRAM,
    HBM stacks (or DDR channels) for its bandwidth at the H100's per-stack rate (or DDR5-4800's 19.2 GB/s per 32
    bits); None for other classes or an unknown node."""
    arrays = [e for e in device.engines.values() if e.array_rows or e.extra.get("pe_um2")]
    if device.device_class not in ("npu", "soc") or not arrays or not node:
        return None
    pe_um2 = arrays[0].extra.get("pe_um2", 0.0)      # a published PE area (e.g. BitMoD's) instead of FPU counts
    macs = sum(e.units * (e.extra["pes"] if e.extra.get("pe_um2") else e.array_rows * (e.array_cols or e.array_rows))
               for e in arrays)
    dtype = next((d for d in ("fp16", "bf16", "int8") if d in arrays[0].ops_per_unit_per_clock), "fp16")
    buf = _param(device, "buffer_mb") or 16.0
    vector = next((e for e in device.engines.values() if e.kind == "vector"), None)
    lanes = vector.units * next(iter(vector.ops_per_unit_per_clock.values())) / 2 if vector else 0
    bw = device.main_memory.bandwidth_gbps
    if bw > 200:
        mem, units = "HBM2e", math.ceil(bw / 670 - 1e-9)
    else:
        mem, units = "DDR5", math.ceil(bw / 19.2 - 1e-9)
    return Floorplan(node, 1, macs, mac_dtype="fp16" if dtype in ("fp16", "bf16") else "int8", mac_um2=pe_um2, sublanes=0,
                     fp32_lanes=int(lanes), global_sram_mb=buf * 1e6 / 2 ** 20, memory=mem, memory_units=units,
                     links=(("PCIe4", 16),), crossbar=False,
                     source="generic NPU floorplan from the device spec (hw_models/area.py _generic_npu)")


# --- cost model -------------------------------------------------------------------------------------------
# foundry price per 300 mm wafer, USD (KM Table 8, as in the ttm-cas supply-chain model)
WAFER_USD = {250: 900, 180: 1020, 130: 1580, 90: 1650, 65: 1937, 40: 2274, 28: 2891, 20: 3677, 14: 3984,
             10: 5992, 7: 9346, 5: 16988}
# defect density per mm2 (ttm-cas supply-chain model, from TSMC's public 10 nm / 5 nm slides) and the
# negative-binomial clustering parameter it uses
DEFECTS_PER_MM2 = {250: 5e-4, 180: 5e-4, 130: 5e-4, 90: 5e-4, 65: 5e-4, 40: 5e-4, 28: 5e-4, 20: 8e-4, 14: 1e-3,
                   10: 1.2e-3, 7: 1.5e-3, 5: 2e-3}
YIELD_CLUSTER = 3.0
WAFER_DIAMETER_MM = 300.0
# memory price per GB (LC cost_model.py: DRAMeXchange spot prices, Oct 2023 / updated DDR5)
MEMORY_USD_PER_GB = {"HBM": 7.0, "DDR": 2.4}
PACKAGE_USD = 21.0      # Moonwalk (Khazraee et al., ASPLOS 2017) flip-chip BGA package 20 + assembly 1, via ttm-cas
# hourly price of a device with no cloud price: its chip cost over a 3-year life x a server multiplier, plus
# its TDP at a datacenter electricity price (assumptions, stated: SemiAnalysis-style TCO splits put the
# accelerator at about half the server's capital cost; 0.10 USD/kWh with PUE 1.3)
LIFETIME_H = 3 * 8766.0
SERVER_MULTIPLIER = 2.0
USD_PER_KWH = 0.10
PUE = 1.3


def dies_per_wafer(area_mm2: float) -> float:
    r = WAFER_DIAMETER_MM / 2
    return max(0.0, math.pi * r * r / area_mm2 - math.pi * WAFER_DIAMETER_MM / math.sqrt(2 * area_mm2))


def die_yield(area_mm2: float, node_nm: float) -> float:
    d0 = _interp(DEFECTS_PER_MM2, node_nm)
    return (1 + area_mm2 * d0 / YIELD_CLUSTER) ** -YIELD_CLUSTER


def die_cost(area_mm2: float, node_nm: float) -> float:
    """USD per good die: wafer price over good dies per wafer."""
    dpw = dies_per_wafer(area_mm2)
    if dpw < 1:
        raise HwsimError(f"a {area_mm2:.0f} mm2 die does not fit a {WAFER_DIAMETER_MM:.0f} mm wafer")
    return _interp(WAFER_USD, node_nm) / (dpw * die_yield(area_mm2, node_nm))


def chip_cost(device) -> dict:
    """Die area (mm2, by block), die cost, memory cost and chip cost (USD) of a device; {} if not covered."""
    fp = floorplan(device)
    if fp is None:
        return {}
    area = die_area(fp)
    die = die_cost(area["total"], fp.node_nm)
    kind = "HBM" if fp.memory.startswith("HBM") else "DDR"
    memory = (device.main_memory.capacity_gb or 0) * MEMORY_USD_PER_GB[kind]
    return {"area_mm2": area["total"], "blocks_mm2": area, "die_usd": die, "memory_usd": memory,
            "package_usd": PACKAGE_USD, "chip_usd": die + memory + PACKAGE_USD, "yield": die_yield(area["total"], fp.node_nm),
            "node_nm": fp.node_nm}


def hourly_usd(device, cost: dict = None):
    """(USD per device-hour, basis). Basis: "cloud" (the preset's cloud price), "cloud-scaled" (a derived
    device: its base's cloud price x chip cost / base chip cost), "purchase" (a preset's list price over a 3-year
    life x the server multiplier, plus energy at the TDP), "manufacturing" (the same from the chip cost of the
    area/cost model: a custom accelerator at cost), or (nan, "") when none applies."""
    from .overrides import base_preset, is_extrapolated
    from .presets import load_device
    cost = chip_cost(device) if cost is None else cost
    if device.price_usd_per_hour and not is_extrapolated(device):
        return device.price_usd_per_hour, "cloud"
    base = load_device(base_preset(device)) if base_preset(device) != device.id else device
    energy = device.power.tdp_w * PUE * USD_PER_KWH / 1000
    if base.price_usd_per_hour:
        base_cost = chip_cost(base)
        if cost and base_cost:
            return base.price_usd_per_hour * cost["chip_usd"] / base_cost["chip_usd"], "cloud-scaled"
        return base.price_usd_per_hour, "cloud-scaled"
    if base.price_usd and not is_extrapolated(device):
        return base.price_usd * SERVER_MULTIPLIER / LIFETIME_H + energy, "purchase"
    if base.price_usd:
        base_cost = chip_cost(base)
        scale = cost["chip_usd"] / base_cost["chip_usd"] if cost and base_cost else 1.0
        return base.price_usd * scale * SERVER_MULTIPLIER / LIFETIME_H + energy, "purchase"
    if not cost:
        return math.nan, ""
    return cost["chip_usd"] * SERVER_MULTIPLIER / LIFETIME_H + energy, "manufacturing"


def device_economics(device) -> dict:
    cost = chip_cost(device)
    hourly, basis = hourly_usd(device, cost)
    out = {"usd_per_hour": hourly, "price_basis": basis}
    if cost:
        out.update(area_mm2=cost["area_mm2"], chip_usd=cost["chip_usd"])
    return out
