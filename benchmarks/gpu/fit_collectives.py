"""Refit hwsim's collective model on measured collectives, and compare hwsim with measured TP/EP steps (issue 16).

Reads every collectives.csv and tp_steps.csv (each with the env.json beside it, from measure_collectives.py
and measure_tp_steps.py) under the data folders: by default benchmarks/gpu/data/*-collectives/ (searched
recursively), or the folders given. Prints, per data set:
  1. the refit: for each collective, world size and mode, hwsim's alpha-beta form (hw_models/collectives.py:
     steps x latency + bytes x factor / bandwidth) fitted by least relative squares, as a per-step latency and a
     bandwidth (and its fraction of the link's datasheet bandwidth), beside the system preset's figures, which
     come from published measurements (Vidur's DGX-H100 NCCL all-reduce profile; benchmarks/collective_fit.py):
     where the two differ by more than 10% it says DISAGREE;
  2. hwsim against the measurement per size bucket (<= 64 KB, <= 4 MB, > 4 MB): mean |error| of the preset
     and of the refit, with the 10% acceptance (on the refit);
  3. hwsim `simulate --mapping tp:N` (or ep:N; `--profile eager`, the truncated layers dropped) against each
     measured step, with the preset link and with the all-reduce refit of the same world size; acceptance
     decode 8%, prefill 10%. No step is used for fitting (the refit uses the collectives only), so every
     model is held out.
Data from gloo on the CPU is marked NOT GPU DATA: it checks this pipeline, its errors mean nothing. Steps
measured with --tiny (toy shapes) are not compared. The refit is printed, never written to the presets.

With no measured data it says so in one line and exits 0 (CI runs it).
usage: python3 benchmarks/gpu/fit_collectives.py [DATA_DIR ...] [--system dgx-h100]
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hw_models.collectives import collective_time, link_collective_time  # noqa: E402
from hw_models.systems import load_system  # noqa: E402

DATA = ROOT / "benchmarks" / "gpu" / "data"
KIND = {"all_reduce": "all_reduce_ring", "all_gather": "all_gather", "reduce_scatter": "reduce_scatter",
        "all_to_all": "all_to_all", "send_recv": "p2p"}
BUCKETS = (("<=64KB", 0, 64 << 10), ("<=4MB", 64 << 10, 4 << 20), (">4MB", 4 << 20, float("inf")))
COLLECTIVE_TOL = 0.10
STEP_TOL = {"decode": 0.08, "prefill": 0.10}
PUBLISHED_TOL = 0.10


# --- data -----------------------------------------------------------------------------------------------------
class DataSet:
    """One CSV with its env.json: rows with status ok, the GPU (or not) it was measured on."""

    def __init__(self, path: Path):
        self.path = path
        env_file = path.parent / "env.json"
        self.env = json.loads(env_file.read_text()) if env_file.is_file() else {}
        with open(path) as f:
            self.rows = [r for r in csv.DictReader(f) if r.get("status") == "ok"]
        self.gpu = bool(self.env.get("gpu")) and self.env.get("backend") == "nccl"
        self.device = self.env.get("device", "unknown")
        self.tiny = bool(self.env.get("args", {}).get("tiny"))

    def label(self) -> str:
        tag = "" if self.gpu else "  [NOT GPU DATA: gloo on the CPU, a check of this pipeline; errors mean nothing]"
        return f"{self.path.relative_to(self.path.parents[1])} ({self.device}, {self.env.get('world_size', '?')} " \
               f"ranks, {self.env.get('backend', '?')}){tag}"


def find(folders) -> tuple:
    """(collective data sets, step data sets) under the folders."""
    colls, steps = [], []
    for folder in folders:
        folder = Path(folder)
        colls += [DataSet(p) for p in sorted(folder.rglob("collectives.csv"))]
        steps += [DataSet(p) for p in sorted(folder.rglob("tp_steps.csv"))]
    return [d for d in colls if d.rows], [d for d in steps if d.rows]


def system_for(ds: DataSet, default: str) -> str:
    name = ds.device.upper()
    return "dgx-h200" if "H200" in name else "dgx-h100" if "H100" in name else default


# --- the model and its refit ----------------------------------------------------------------------------------
def form(kind: str, n: int) -> tuple:
    """(latency steps, seconds per byte at 1 B/s) of hwsim's formula for this collective: t = a*lat + b*bytes/bw."""
    steps = collective_time(kind, 1.0, n, 1e30, 1.0)
    per_byte = collective_time(kind, 1.0, n, 1.0, 0.0)
    return steps, per_byte


def refit(kind: str, n: int, sizes, times) -> tuple:
    """(latency s per step, bandwidth B/s) minimizing the squared relative error over the points."""
    steps, per_byte = form(kind, n)
    x, t = np.asarray(sizes, float), np.asarray(times, float)
    a = np.stack([steps / t, per_byte * x / t], axis=1)
    (lat, inv_bw), *_ = np.linalg.lstsq(a, np.ones_like(t), rcond=None)
    if inv_bw <= 0:                                  # latency alone explains the points: no bandwidth term
        return float(np.mean(t / steps)), float("inf")
    if lat < 0:                                      # bandwidth alone
        lat, inv_bw = 0.0, float(np.mean(t / (per_byte * x)))
    return float(lat), 1.0 / float(inv_bw)


def modelled(kind, n, nbytes, lat, bw) -> float:
    return collective_time(kind, nbytes, n, bw, lat)


def rel_err(model, meas) -> float:
    return (model - meas) / meas


# --- reports --------------------------------------------------------------------------------------------------
def groups(ds: DataSet):
    out = {}
    for r in ds.rows:
        out.setdefault((r["collective"], int(r["world_size"]), r["mode"]), []).append(r)
    return out


def collectives_report(ds: DataSet, default_system: str) -> dict:
    """Print the refit and the bucket table of one data set; {(collective, n, mode): (lat s, bw B/s)}."""
    system = load_system(system_for(ds, default_system))
    print(f"\n== collectives: {ds.label()}; hwsim system {system.id}")
    fits, lines, table = {}, [], []
    for (coll, n, mode), rows in sorted(groups(ds).items()):
        if n < 2:
            lines.append(f"   {coll} N={n} {mode}: one rank, no link (hwsim gives 0): not fitted")
            continue
        link = system.link_within("gpu", n)
        if link is None:
            continue
        kind = KIND[coll]
        sizes = [int(r["bytes"]) for r in rows]
        times = [float(r["time_us"]) * 1e-6 for r in rows]
        lat, bw = refit(kind, n, sizes, times) if len(rows) >= 2 else (None, None)
        if lat is None:
            lines.append(f"   {coll} N={n} {mode}: {len(rows)} point, not fitted")
            continue
        fits[(coll, n, mode)] = (lat, bw)
        eff = bw / (link.bandwidth_gbps * 1e9)
        d_lat = rel_err(lat * 1e6, link.latency_us) if link.latency_us else 0.0
        d_eff = rel_err(eff, link.efficiency) if bw != float("inf") else float("inf")
        flag = "DISAGREE" if abs(d_lat) > PUBLISHED_TOL or abs(d_eff) > PUBLISHED_TOL else "agree"
        bw_txt = f"{bw / 1e9:8.1f} GB/s = {eff:5.2f}" if bw != float("inf") else "no bandwidth term (latency alone)"
        lines.append(f"   {coll:>14} N={n} {mode:>5} {len(rows):3d} pts: {lat * 1e6:7.2f} us/step  "
                     f"{bw_txt} of {link.bandwidth_gbps:.0f} | preset {link.latency_us:.2f} "
                     f"us, {link.efficiency:.2f}: {flag} (latency {100 * d_lat:+.0f}%, bandwidth {100 * d_eff:+.0f}%)")
        for name, lo, hi in BUCKETS:
            sel = [(s, t) for s, t in zip(sizes, times) if lo < s <= hi]
            if not sel:
                continue
            pre = [abs(rel_err(link_collective_time(kind, s, n, link), t)) for s, t in sel]
            fit = [abs(rel_err(modelled(kind, n, s, lat, bw), t)) for s, t in sel]
            ok = statistics.mean(fit) <= COLLECTIVE_TOL
            verdict = ("PASS" if ok else "FAIL") if ds.gpu else "n/a"
            table.append(f"   {coll:>14} N={n} {mode:>5} {name:>7} {len(sel):3d} pts  median "
                         f"{1e6 * statistics.median(t for _, t in sel):10.2f} us   "
                         f"preset {100 * statistics.mean(pre):6.1f}%"
                         f"   refit {100 * statistics.mean(fit):6.1f}% (max {100 * max(fit):5.1f}%)  {verdict}")
    print(" refit (hwsim's alpha-beta form per collective, world size and mode) vs the preset's published figures:")
    print("\n".join(lines) or "   (nothing to fit)")
    print(f" hwsim vs measured, mean |error| per size bucket (acceptance: refit within {100 * COLLECTIVE_TOL:.0f}%):")
    print("\n".join(table) or "   (no buckets)")
    best = max((k for k in fits if k[0] == "all_reduce"), key=lambda k: (k[2] == "graph", k[1]), default=None)
    if best and fits[best][1] != float("inf"):
        lat, bw = fits[best]
        link = system.link_within("gpu", best[1])
        print(f" link parameters the all-reduce at N={best[1]} ({best[2]}) implies: latency_us {lat * 1e6:.2f}, "
              f"efficiency {bw / (link.bandwidth_gbps * 1e9):.3f} (preset {link.latency_us}, {link.efficiency}); "
              f"not written to any preset")
    return fits


def with_link(system, n: int, lat: float, bw: float):
    """The system with the link a collective over n devices uses set to a refit latency and bandwidth."""
    link = system.link_within("gpu", n)
    name = next(k for k, v in system.links.items() if v is link)
    eff = min(1.0, bw / (link.bandwidth_gbps * 1e9))
    new = link.model_copy(update={"latency_us": max(lat * 1e6, 1e-3), "efficiency": eff})
    return system.model_copy(update={"links": {**system.links, name: new}})


def steps_report(ds: DataSet, fits_by_device: dict, default_system: str):
    print(f"\n== parallel steps: {ds.label()}")
    if ds.tiny:
        print(f"   {len(ds.rows)} steps at toy shapes (--tiny): not comparable with hwsim, not compared")
        return
    from sim.api import simulate
    system = load_system(system_for(ds, default_system))
    fits = fits_by_device.get(ds.device, {})
    print(f"   hwsim system {system.id}, --profile eager; acceptance decode {100 * STEP_TOL['decode']:.0f}%, prefill "
          f"{100 * STEP_TOL['prefill']:.0f}% (every model held out: the refit uses collectives only)")
    for r in ds.rows:
        n, layers, total = int(r["degree"]), int(r["layers"]), int(r["config_layers"])
        mapping = "single" if n == 1 else f"{r['parallel']}:{n}"
        kw = dict(phase=r["phase"], batch=int(r["batch"]), seq_len=int(r["seq_len"]), profile="eager",
                  drop_layer_ids=list(range(layers, total)))
        meas = float(r["step_us"]) * 1e-6
        try:
            pre = simulate(r["model"], system, mapping, **kw).latency_s
            fit = fits.get(("all_reduce", n, "graph")) or fits.get(("all_reduce", n, "eager"))
            refit_s = None
            if fit and n > 1:
                refit_s = simulate(r["model"], with_link(system, n, *fit), mapping, **kw).latency_s
        except Exception as exc:   # noqa: BLE001 - one line per case hwsim refuses
            print(f"   {r['model']}:{layers} {mapping} {r['phase']} {r['batch']}x{r['seq_len']}: hwsim: {exc}")
            continue
        e_pre = rel_err(pre, meas)
        e_fit = rel_err(refit_s, meas) if refit_s else None
        judged = e_fit if e_fit is not None else e_pre
        verdict = ("PASS" if abs(judged) <= STEP_TOL[r["phase"]] else "FAIL") if ds.gpu else "n/a"
        fit_txt = f"{100 * e_fit:+6.1f}%" if e_fit is not None else "     -"
        extra = r.get("embedding") == "vocab-parallel" and r["parallel"] == "tp" and n > 1
        note = " (measured embedding all-reduce: not in hwsim)" if extra else ""
        print(f"   {r['model']}:{layers:<3} {mapping:>6} {r['phase']:>7} b={r['batch']:>3} s={r['seq_len']:>5}: "
              f"measured {meas * 1e3:8.3f} ms  hwsim {pre * 1e3:8.3f} ms ({100 * e_pre:+6.1f}%)  with refit {fit_txt}  "
              f"{verdict}{note}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="*", help="folders with measured data (default: benchmarks/gpu/data/*-collectives)")
    ap.add_argument("--system", default="dgx-h100", help="hwsim system for data from an unknown device")
    args = ap.parse_args(argv)
    folders = args.data or sorted(DATA.glob("*-collectives"))
    colls, steps = find(folders)
    if not colls and not steps:
        where = ", ".join(str(f) for f in args.data) if args.data else "benchmarks/gpu/data/*-collectives/"
        print(f"no measured multi-GPU data in {where} (none has been measured yet: docs/multi-gpu.md); nothing to fit")
        return 0
    fits_by_device = {}
    for ds in colls:
        fits = collectives_report(ds, args.system)
        if ds.gpu:
            fits_by_device.setdefault(ds.device, {}).update(fits)
    for ds in steps:
        steps_report(ds, fits_by_device, args.system)
    return 0


if __name__ == "__main__":
    sys.exit(main())
