"""Power-model estimates for GPUs that were not measured here, from their datasheet numbers.

The power model's defaults (hw_models/power.py POWER_DEFAULTS) are the H100 fit: 150 W of static power is
more than an L4 (72 W) or a Jetson AGX Orin (60 W) may draw at all, so an uncalibrated small GPU would sit
over its cap at idle with its clock pinned at the minimum. These estimates scale the two GPUs measured here
(H100 SXM and H200, benchmarks/gpu/fit.py) to any GPU preset by its own datasheet numbers:

- static_w: the preset's idle power (published or nvidia-smi readings, each with its source in the preset).
- e_flop_pj: tensor-core energy per dense bf16/fp16 FLOP. On both measured GPUs, the datasheet peak rate at
  e_flop would draw K_FLOP (about 1.1) times the TDP (H100 0.7528 pJ x 989.4 TFLOP/s = 745 W, H200 0.859 pJ
  -> 850 W, both against 700 W): tensor work at full rate is what the cap is sized against. Other GPUs get
  e_flop = K_FLOP x TDP / peak, i.e. the same balance between their cap and their peak.
- e_byte_pj: energy per byte of DRAM traffic including the on-chip path, measured here for HBM3/HBM3e
  (H100 136.5, H200 140.8 pJ/B). GDDR and LPDDR parts add their DRAM's extra energy per bit over HBM (O'Connor
  et al., "Fine-Grained DRAM", MICRO 2017, Table 1: HBM2 3.9 pJ/bit, GDDR5 14.0 pJ/bit; LPDDR4/5 about 4-5
  pJ/bit with its PHY, counted as HBM here). Capped so that streaming at the achievable bandwidth stays below
  90% of the TDP (vendors size the cap so that a memory-bound kernel runs at full clock; the H100 fit draws
  555 W, 79% of its cap, doing so).
These are estimates, written into the presets as `calibration: {method: estimate}` by `--write`, so that the
numbers used are visible in each preset file; a measurement replaces them (benchmarks/gpu/fit.py).
usage: python3 -m hw_models.gpu_defaults [--write]
"""
from __future__ import annotations

import re
import sys

# measured here (benchmarks/gpu/data/*-2026-11-24, fitted by benchmarks/gpu/fit.py with gamma 0): the basis of the
# estimates written into the uncalibrated presets. The H200 preset now carries a later fit with gamma 1
# (benchmarks/gpu/fit_power.py, 2026-12-06 data); the estimates keep this clock-independent basis.
MEASURED = {"h100-sxm-80gb": {"e_flop_pj": 0.7528, "e_byte_pj": 136.49, "tdp_w": 700.0, "peak_tflops": 989.4},
            "h200-141gb": {"e_flop_pj": 0.859, "e_byte_pj": 140.77, "tdp_w": 700.0, "peak_tflops": 989.4}}
K_FLOP = sum(m["e_flop_pj"] * m["peak_tflops"] / m["tdp_w"] for m in MEASURED.values()) / len(MEASURED)
HBM_E_BYTE = sum(m["e_byte_pj"] for m in MEASURED.values()) / len(MEASURED)
# DRAM energy per bit over HBM's (O'Connor et al., MICRO 2017, Table 1), x 8 bits
DRAM_EXTRA_PJ_PER_BYTE = {"hbm": 0.0, "lpddr5": 0.0, "lpddr5x": 0.0, "gddr6": (14.0 - 3.9) * 8,
                          "gddr6x": (14.0 - 3.9) * 8}
# parts sold with their compute rate cut below what their silicon does (so TDP / peak says nothing about the
# energy of one FLOP): take the FLOP energy of the same silicon. H20: a GH100 die (NVIDIA H20 product brief:
# Hopper, 96 GB HBM3, 148 dense FP16 TFLOPS) -> the H100 fit; RTX 4090: GeForce AD102 runs FP16 with FP32
# accumulation at half rate (Ada whitepaper v2.1, Appendix A) -> the L4's Ada (AD104, same TSMC 4N) estimate.
SAME_SILICON = {"h20-96gb": "h100-sxm-80gb", "rtx-4090": "l4"}
STREAM_SHARE = 0.9
BW_EFF = 0.87           # achievable fraction of datasheet bandwidth (hw_models/gpu.py DEFAULTS)


def power_estimate(device) -> dict:
    """static_w, e_flop_pj, e_byte_pj, gamma for a GPU preset from its TDP, idle power, peak and memory type."""
    tdp, idle = device.power.tdp_w, device.power.idle_w
    tensor = device.engine_for("matrix")
    peak = max(tensor.peak(dt) for dt in ("bf16", "fp16")) if tensor else device.peak("fp32")
    e_flop = K_FLOP * tdp / peak * 1e12
    if device.id in SAME_SILICON:
        ref = SAME_SILICON[device.id]
        if ref in MEASURED:
            e_flop = MEASURED[ref]["e_flop_pj"]
        else:
            from .presets import load_device
            e_flop = power_estimate(load_device(ref))["e_flop_pj"]
    kind = next(iter(device.memory))
    e_byte = HBM_E_BYTE + DRAM_EXTRA_PJ_PER_BYTE.get(kind, 0.0)
    bw = device.main_memory.bandwidth_gbps * 1e9 * BW_EFF
    e_byte = min(e_byte, (STREAM_SHARE * tdp - idle) / bw * 1e12)
    return {"static_w": round(float(idle), 1), "e_flop_pj": round(e_flop, 4), "e_byte_pj": round(e_byte, 2),
            "gamma": 0.0}


def write(device) -> None:
    from .presets import alias_table
    path = alias_table()[device.id]
    text = path.read_text()
    if device.calibration is not None and device.calibration.method == "fitted":
        return       # measured: leave it
    block = ["calibration:",
             "  source: \"estimate by hw_models/gpu_defaults.py from this preset's TDP, idle power, peak and memory "
             "type, scaled from the H100/H200 fits (no measurement of this GPU)\"",
             "  date: \"2026-12-06\"",
             "  script: hw_models/gpu_defaults.py",
             "  data: \"datasheet numbers in this file\"",
             "  method: estimate",
             "  params:"]
    block += [f"    {k}: {v}" for k, v in power_estimate(device).items()]
    text = re.sub(r"\ncalibration:.*", "", text, flags=re.S).rstrip() + "\n" + "\n".join(block) + "\n"
    path.write_text(text)
    print(f"wrote {path.name}: {power_estimate(device)}")


def main(argv=None) -> int:
    import argparse

    from .presets import load_device, preset_ids
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="write the estimates into the uncalibrated GPU presets")
    args = ap.parse_args(argv)
    for pid in preset_ids():
        d = load_device(pid)
        if d.device_class != "gpu":
            continue
        est = power_estimate(d)
        status = d.calibration.method if d.calibration else "none"
        print(f"{pid:22s} ({status:8s}) {est}")
        if args.write:
            write(d)
    return 0


if __name__ == "__main__":
    sys.exit(main())
