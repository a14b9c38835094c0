"""Weight-only int4 GEMMs (w4a16) at decode sizes: hwsim's cost against measure_stack.py --parts w4a16 data.

A w4a16 projection is costed as a bf16 GEMM (tensor cores on dequantized weights) streaming half-byte weights plus
their group scales (workloads/transforms.py). Its compute side pads the rows to the device's smallest GEMM tile
(`mm_min_tile_m`, hw_models/gpu.py gemm_plan): with 64-row tiles a batch-1 int4 GEMM reads as compute-bound, with
16-row tiles (one m16n8k16 MMA) as weight-streaming. This script prints, per shape and M, the measured time of
torch's tinygemm int4 kernel (aten._weight_int4pack_mm, group 128) and of bf16 / FP8 GEMMs on the same rows, beside
hwsim's cost at each candidate `mm_min_tile_m`; the candidate is picked on the calibration shapes (llama8b.*) and
reported on the held-out ones (llama70b-tp8.*, phi3.*), per variant.

usage: python3 benchmarks/gpu/w4a16_check.py DATA_DIR [--preset h100-sxm-80gb] [--tiles 64,32,16] [--rows]
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hw_models import load_device  # noqa: E402
from hw_models.gpu import GPUModel  # noqa: E402
from hw_models.power import PowerModel  # noqa: E402
from workloads.graph import Op  # noqa: E402
from workloads.transforms import SCHEMES, _weight_bits  # noqa: E402

CALIBRATION = ("llama8b.",)
W4_BITS = _weight_bits(SCHEMES["w4a16"], 16, 2.0)      # 4 bits plus a 16-bit scale and a zero per 128 weights


def op_of(r) -> Op:
    """The GEMM as hwsim's precision transform leaves it: bf16 compute, weight bytes at the variant's width."""
    m, n, k = int(r["m"]), int(r["n"]), int(r["k"])
    v = r["variant"]
    fp8 = v.startswith("fp8")
    wb = n * k * (W4_BITS / 8 if v.startswith("int4") else 1 if fp8 else 2)
    act = m * k * (1 if fp8 else 2) + m * n * 2
    attrs = dict(m=m, n=n, k=k, batch=1, scaling="tensor")
    if v.startswith("int4"):
        attrs.update(weight_bits=W4_BITS, act_bits=16)
    return Op(0, "mm", "matmul", None, 1, (), (), "fp8" if fp8 else "bf16", 2 * m * n * k,
              {"weight": wb, "activation": act}, attrs=attrs)


def errors(preset, rows, tile):
    device = load_device(preset)
    model = GPUModel(device, profile="fused", params={"mm_min_tile_m": tile})
    power = PowerModel(device)
    out = []
    for r in rows:
        op = op_of(r)
        if r.get("sm_mhz"):                       # at the clock NVML read during the timing
            got = model.cost(op, float(r["sm_mhz"])).time_s
        else:                                     # else with the power cap in the loop (fit_stack.py's _solve)
            got = power.solve(lambda f: (model.cost(op, f).time_s, model.energy_flops(op),
                                         model.cost(op, f).bytes)).time_s
        out.append((r, got, (got - float(r["seconds"])) / float(r["seconds"])))
    return out


def mape(errs):
    return 100 * statistics.mean(abs(e) for *_, e in errs) if errs else float("nan")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="a folder with w4a16.csv (benchmarks/gpu/measure_stack.py --parts w4a16)")
    ap.add_argument("--preset", default=None, help="device preset (default: from the folder name, h100 or h200)")
    ap.add_argument("--tiles", default="64,32,16", help="candidate mm_min_tile_m values")
    ap.add_argument("--rows", action="store_true", help="print every row")
    args = ap.parse_args(argv)
    path = Path(args.data) / "w4a16.csv"
    if not path.is_file():
        ap.exit(2, f"w4a16_check.py: no w4a16.csv in {args.data}; run measure_stack.py --parts w4a16 there first\n")
    rows = list(csv.DictReader(open(path)))
    preset = args.preset or ("h200-141gb" if "h200" in Path(args.data).name else "h100-sxm-80gb")
    tiles = [int(x) for x in args.tiles.split(",")]
    print(f"{path} on {preset}: {len(rows)} rows; calibration shapes {', '.join(CALIBRATION)}*, the rest held out")
    for variant in sorted({r["variant"] for r in rows}):
        vr = [r for r in rows if r["variant"] == variant]
        cal = [r for r in vr if r["shape"].startswith(CALIBRATION)]
        held = [r for r in vr if not r["shape"].startswith(CALIBRATION)]
        line = []
        for tile in tiles:
            line.append(f"tile {tile}: calibration {mape(errors(preset, cal, tile)):5.1f}%  "
                        f"held out {mape(errors(preset, held, tile)):5.1f}%")
        print(f"  {variant:14s} n={len(vr):3d}  " + " | ".join(line))
    if args.rows:
        print(f"\n{'shape':22s} {'variant':14s} {'m':>5s} {'meas us':>9s} " +
              " ".join(f"{'t' + str(t) + ' us':>9s} {'err':>6s}" for t in tiles) + "  GB/s")
        per_tile = {t: errors(preset, rows, t) for t in tiles}
        for i, r in enumerate(rows):
            cells = " ".join(f"{per_tile[t][i][1] * 1e6:9.1f} {100 * per_tile[t][i][2]:+5.0f}%" for t in tiles)
            print(f"{r['shape']:22s} {r['variant']:14s} {int(r['m']):5d} {float(r['seconds']) * 1e6:9.1f} {cells}  "
                  f"{r['weight_gbps']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
