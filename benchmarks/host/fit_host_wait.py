"""Fit the power of a GPU waiting for its host (`host_wait_w`) on Hugging Face generate() decode energy.

Ground truth: data sets measured with `benchmarks/gpu/measure_hf_generate.py --settle S` (decode energy by
conservation: the counter read with the GPU idle before and after, the prefill-only run's energy subtracted). hwsim
prices an eager decode step (`--impl hf --profile hf-generate`) as its kernels' energy plus `host_wait_w` for every
second the GPU waits for the host between them (sim/hostqueue.py's device idle time); the default is the busy
static power. One number, least squares on the calibration architectures' relative power error (the same split as
hf_generate_accuracy.py), reported on the held-out ones. It is an effective figure: it takes up whatever the kernel
energy model gets wrong for HF's eager decode kernels as well as the wait itself (docs/tracing-and-host.md).

usage: python3 benchmarks/host/fit_host_wait.py [--data FOLDER] [--host FILE] [--write]
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hf_generate_accuracy as acc  # noqa: E402
from hw_models import load_device  # noqa: E402
from hw_models.power import PowerModel  # noqa: E402
from sim import api  # noqa: E402

SETTLED = os.path.join(ROOT, "benchmarks", "gpu", "data", "h100-2026-12-06-lease5-hf-generate")


def rows(folder, host):
    df = acc.measured(folder, "first3")
    df = df[df.settled_decode_power_w.notna()]
    out = []
    for r in df.itertuples():
        model = r.config.removesuffix(".json")
        kw = dict(impl="hf", host=host)
        total = acc._layers(model)
        if int(r.layers) < total:
            kw["drop_layer_ids"] = tuple(range(int(r.layers), total))
        d = api.predict(model, "h100", "decode", int(r.batch), int(r.prompt) + int(r.new_tokens) // 2,
                        profile="hf-generate", detail=True, **kw)
        out.append({"model": model, "batch": int(r.batch), "prompt": int(r.prompt), "energy_j": d.energy_j,
                    "wait_s": d.device_idle_s, "latency_s": d.latency_s, "measured_w": r.settled_decode_power_w,
                    "calibration": model in acc.CALIBRATION})
    return pd.DataFrame(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=SETTLED)
    ap.add_argument("--host", default="h100-lent-host-hf")
    ap.add_argument("--write", action="store_true", help="write host_wait_w into the H100 preset")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    power = PowerModel(load_device("h100"))
    current = float(power.p.get("host_wait_w") or power.p["static_w"])
    t = rows(args.data, args.host)
    kernels = t.energy_j - current * t.wait_s           # the kernels' energy, whatever the preset's wait power

    def err(w):
        return ((kernels + w * t.wait_s) / t.latency_s) / t.measured_w - 1

    cal = t.calibration.to_numpy()
    grid = np.arange(40.0, 200.01, 0.5)
    best = grid[np.argmin([np.mean(err(w)[cal] ** 2) for w in grid])]
    static = float(power.p["static_w"])
    print(f"{os.path.basename(args.data)}: {len(t)} settled decode cases ({cal.sum()} calibration), host {args.host}")
    print(f"  {'host_wait_w':>24s}  calibration MAPE  held-out MAPE  (max)")
    for label, w in (("busy static", static), ("idle reading (idle_w)", float(power.idle)), ("fitted", best)):
        e = err(w).abs() * 100
        print(f"  {label + f' {w:.1f} W':>24s}  {e[cal].mean():15.1f}%  {e[~cal].mean():12.1f}%  ({e[~cal].max():.0f}%)")
    show = t.assign(err_static=err(static) * 100, err_fitted=err(best) * 100)
    print(show[["model", "batch", "prompt", "measured_w", "err_static", "err_fitted", "calibration"]].round(1)
          .to_string(index=False))
    if args.write:
        from hw_models.presets import alias_table
        path = alias_table()["h100-sxm-80gb"]
        text = path.read_text()
        line = (f"    # host_wait_w: power while the GPU waits for the host between eager kernels, an effective figure "
                f"fitted by benchmarks/host/fit_host_wait.py on {os.path.basename(args.data)} (HF generate() decode "
                f"energy by conservation, calibration architectures)\n    host_wait_w: {best}\n")
        lines = [ln for ln in text.splitlines(True) if not ln.strip().startswith(("host_wait_w:", "# host_wait_w:"))]
        text = "".join(lines)
        anchor = "    static_w:"
        text = text.replace(anchor, line + anchor, 1)
        path.write_text(text)
        print(f"wrote host_wait_w {best} into {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
