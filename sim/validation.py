"""Prediction error against committed GPU measurements (benchmarks/gpu/data/*/steps.csv).

Sliding-window prefill cases from sets measured before the benchmark used SDPA with a window mask (their
env.json lacks "window_attention") ran the math reference instead and are left out.
"""
from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

from hw_models import load_device
from workloads import trace
from workloads.errors import HwsimError

from .predict import predict
from .roofline_baseline import roofline_time

DATA_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu" / "data"
DEVICE_OF = {"NVIDIA H100 80GB HBM3": "h100-sxm-80gb", "NVIDIA H200": "h200-141gb"}


def _env(folder: Path) -> dict:
    """A measurement set's env.json (the device and software it was measured with), as one-line errors."""
    path = folder / "env.json"
    try:
        env = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise HwsimError(f"cannot read {path}: {exc.strerror}; each measurement set needs one") from None
    except ValueError as exc:
        raise HwsimError(f"{path}: not valid JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(env, dict) or not isinstance(env.get("device"), str):
        raise HwsimError(f"{path}: must be a JSON object with a \"device\" name")
    return env


def datasets(root: Path = DATA_DIR) -> list:
    if not Path(root).is_dir():
        raise HwsimError(f"measurement folder {root} does not exist or is not a folder")
    out = []
    for folder in sorted(p for p in Path(root).glob("*") if (p / "steps.csv").is_file()):
        env = _env(folder)
        out.append((folder, env, DEVICE_OF.get(env["device"])))
    return out


def _cases(path: Path) -> list:
    """The rows of steps.csv with their numbers checked, for the fits that read the committed sets: a bad row is a
    one-line error naming its line."""
    rows = []
    for line, row, error in _case_lines(path):
        if error is not None:
            raise HwsimError(f"{path} line {line}: {error}")
        rows.append(row)
    return rows


def _case_lines(path: Path) -> list:
    """(line, row, error) of steps.csv with its numbers checked: a bad row carries `error: line N: why` and no
    numbers, the good rows are kept; an unreadable file is a one-line error."""
    try:
        reader = csv.DictReader(open(path, encoding="utf-8", newline=""))
        out, line = [], 1
        for r in reader:
            line_no = line + 1
            line = reader.line_num
            missing = [c for c in ("model", "phase", "batch", "seq_len", "seconds") if not r.get(c)]
            if missing:
                out.append((line_no, r, f"no {', '.join(missing)}"))
                continue
            try:
                seconds = float(r["seconds"])
                row = {**r, "batch": int(r["batch"]), "seq_len": int(r["seq_len"]), "seconds": seconds}
            except ValueError:
                out.append((line_no, r, "batch and seq_len must be whole numbers and seconds a number"))
                continue
            if not seconds > 0 or seconds == float("inf"):
                out.append((line_no, r, f"seconds must be a positive time, got {r['seconds']!r}"))
                continue
            out.append((line_no, row, None))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise HwsimError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return out


def _windowed_prefill(graph) -> bool:
    return any(op.kind == "attention" and op.attrs.get("window") and op.attrs["window"] < op.attrs["sk"]
               and op.attrs["sq"] > 1 for op in graph.ops)


def evaluate(folder: Path, device_id: str, progress=None) -> list:
    """One dict per case: the measured and predicted times, or, for a row that cannot be priced (a bad value, an
    unknown model), its `status` `error: line N: why` and no numbers; the other rows keep their results."""
    device = load_device(device_id)
    env = _env(folder)
    windows_ok = env.get("window_attention") == "sdpa-mask"
    rows = []
    cases = _case_lines(folder / "steps.csv")
    for i, (line, r, error) in enumerate(cases):
        if error is None:
            try:
                g = trace(r["model"], r["phase"], r["batch"], r["seq_len"])
                if _windowed_prefill(g) and not windows_ok:
                    continue
                p = predict(g, device)
                base = roofline_time(g, device)
            except HwsimError as exc:
                error = str(exc)
        if error is not None:
            rows.append({"model": r.get("model") or "", "phase": r.get("phase") or "", "batch": r.get("batch"),
                         "seq_len": r.get("seq_len"), "status": f"error: line {line}: {error}"})
            continue
        measured = r["seconds"]
        rows.append({"model": r["model"], "phase": r["phase"], "batch": int(r["batch"]), "seq_len": int(r["seq_len"]),
                     "measured_s": measured, "hwsim_s": p.latency_s, "roofline_s": base,
                     "hwsim_err": (p.latency_s - measured) / measured, "roofline_err": (base - measured) / measured,
                     "status": "ok"})
        if progress:
            progress(i + 1, len(cases))
    return rows


def priced(rows: list) -> list:
    """The rows that were priced (status ok)."""
    return [r for r in rows if r.get("status", "ok") == "ok"]


def summary(rows: list) -> list:
    out = []
    rows = priced(rows)
    for phase in sorted({r["phase"] for r in rows}):
        sel = [r for r in rows if r["phase"] == phase]
        out.append({"phase": phase, "cases": len(sel),
                    "hwsim_mape": 100 * statistics.mean(abs(r["hwsim_err"]) for r in sel),
                    "hwsim_max": 100 * max(abs(r["hwsim_err"]) for r in sel),
                    "roofline_mape": 100 * statistics.mean(abs(r["roofline_err"]) for r in sel),
                    "roofline_max": 100 * max(abs(r["roofline_err"]) for r in sel)})
    return out


def ratio_check(results: dict) -> dict:
    """Predicted vs measured H200/H100 latency ratio over the cases measured on both."""
    if "h100-sxm-80gb" not in results or "h200-141gb" not in results:
        return {}
    key = lambda r: (r["model"], r["phase"], r["batch"], r["seq_len"])
    a = {key(r): r for r in priced(results["h100-sxm-80gb"])}
    errs = []
    for r in priced(results["h200-141gb"]):
        if key(r) in a:
            measured = r["measured_s"] / a[key(r)]["measured_s"]
            predicted = r["hwsim_s"] / a[key(r)]["hwsim_s"]
            errs.append(abs(predicted - measured) / measured)
    if not errs:
        return {}
    return {"cases": len(errs), "ratio_err_mean_pct": 100 * statistics.mean(errs), "ratio_err_max_pct": 100 * max(errs)}
