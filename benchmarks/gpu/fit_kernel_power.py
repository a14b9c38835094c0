"""Energy per DRAM byte of each eager kernel class, read from measure_kernel_power.py's sustained NVML runs.

hwsim's power model charges `static_w` for every second and `e_byte_pj` for every byte an eager kernel moves,
whatever the kernel (hw_models/power.py). Here each class's energy per byte is what the sustained run leaves
after the static power: (energy per step - static_w x step seconds) / bytes, beside the preset's e_byte_pj and
the power the preset predicts at the measured step time (static + e_byte x bytes / t). A class whose energy per
byte is well above the vectorized copy's draws power the preset does not see.

The preset's two numbers (hw_models/gpu.py kernel_energy_rel) are each class's energy per byte over the run's
vectorized kernels' (bytes-weighted): `e_cat_rel` the gapped cat's, `e_nonvec_rel` the mean of the other
non-vectorized kernels' (the broadcast product and the widening copy, both Kernel.strided 2). `--write` writes them
into the preset under a source comment.

usage: python3 benchmarks/gpu/fit_kernel_power.py --data benchmarks/gpu/data/FOLDER [--device h100] [--write]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))

from hw_models import load_device  # noqa: E402
from hw_models.gpu import GPUModel  # noqa: E402
from hw_models.power import PowerModel  # noqa: E402


def energy_per_byte(df: pd.DataFrame, static_w: float, e_byte_pj: float) -> pd.DataFrame:
    """Per kernel case: its energy per byte after `static_w` (pJ), that over `e_byte_pj`, its attained bandwidth,
    and the power the preset's terms give at the measured step time against the measured average."""
    k = df[df.case != "idle"].copy()
    t, e, b = k.step_seconds.astype(float), k.energy_j_per_step.astype(float), k.bytes.astype(float)
    k["gbps"] = b / t / 1e9
    k["pj_per_byte"] = (e - static_w * t) / b * 1e12
    k["rel"] = k.pj_per_byte / e_byte_pj
    k["model_w"] = static_w + e_byte_pj * 1e-12 * b / t
    k["power_err"] = k.model_w / k.avg_power_w.astype(float) - 1.0
    return k


def class_rel(k: pd.DataFrame) -> dict:
    """The preset's numbers from `energy_per_byte`'s table: the vectorized kernels' bytes-weighted pJ per byte
    (`base`), the gapped cat's over it (`e_cat_rel`), the other non-vectorized kernels' mean over it
    (`e_nonvec_rel`: access nonvec and convert)."""
    vec = k[k.access == "vec"]
    base = float((vec.pj_per_byte * vec.bytes).sum() / vec.bytes.sum())
    cat = k[k.access == "cat"].pj_per_byte
    nonvec = k[k.access.isin(("nonvec", "convert"))].pj_per_byte
    return {"base": base, "e_cat_rel": float(cat.mean()) / base, "e_nonvec_rel": float(nonvec.mean()) / base}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder with kernel_power.csv")
    ap.add_argument("--device", default=None, help="preset (default: from env.json's device name)")
    ap.add_argument("--write", action="store_true", help="write e_cat_rel and e_nonvec_rel into the preset")
    args = ap.parse_args()
    folder = Path(args.data)
    df = pd.read_csv(folder / "kernel_power.csv")
    name = args.device
    if name is None:
        env = pd.read_json(folder / "env.json", typ="series")
        name = "h200" if "H200" in str(env.get("device", "")) else "h100"
    device = load_device(name)
    power = PowerModel(device)
    cost = GPUModel(device).p                     # the kernel classes' factors are cost-model parameters
    static_w, e_byte = power.p["static_w"], power.p["e_byte_pj"]
    idle = df[df.case == "idle"]
    print(f"{folder.name}: preset {name} static {static_w:.1f} W, e_byte {e_byte:.1f} pJ; measured idle "
          f"{float(idle.avg_power_w.iloc[0]) if len(idle) else float('nan'):.1f} W")
    k = energy_per_byte(df, static_w, e_byte)
    cols = ["case", "access", "gbps", "avg_power_w", "avg_sm_mhz", "pj_per_byte", "rel", "model_w", "power_err"]
    print(k[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"))
    rel = class_rel(k)
    print(f"vectorized bytes-weighted {rel['base']:.1f} pJ/B; over it: e_cat_rel {rel['e_cat_rel']:.2f}, "
          f"e_nonvec_rel {rel['e_nonvec_rel']:.2f} (the preset's: {cost.get('e_cat_rel', 0) or '-'}, "
          f"{cost.get('e_nonvec_rel', 0) or '-'})")
    if args.write:
        from fit_stack import write_params
        env = pd.read_json(folder / "env.json", typ="series").to_dict()
        write_params(device, {k: round(v, 2) for k, v in rel.items() if k != "base"}, folder, env,
                     label="eager kernel energy per byte",
                     note="; NVML energy of sustained single-kernel runs after static_w, over the vectorized "
                          "copy/add/cat's (hw_models/gpu.py kernel_energy_rel)",
                     script="benchmarks/gpu/fit_kernel_power.py")


if __name__ == "__main__":
    main()
