"""Output files of `hwsim power`: row power over time (Parquet/CSV), events, summary JSON, the sweep table, plots and
a self-contained HTML report. Everything is built in memory first and then written file by file atomically, so a
failure leaves nothing half-written."""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from workloads.errors import HwsimError

from ..outputs import check_folder, make_folder, write_file

STYLE = """body{font-family:system-ui,sans-serif;margin:24px;max-width:1200px}table{border-collapse:collapse;margin:8px 0;
font-size:12px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f3f3f3}td.l{text-align:left}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}.note{color:#666;font-size:12px}img{max-width:100%}"""


def _fmt(v):
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _downsample(x: np.ndarray, dt: float, points: int = 4000):
    k = max(len(x) // points, 1)
    n = len(x) // k * k
    if n == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    blocks = x[:n].reshape(-1, k)
    t = (np.arange(len(blocks)) * k + k / 2) * dt
    return t, blocks.mean(axis=1), blocks.max(axis=1)


def plots(res, ref=None, sweep: list = None) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = 2 if sweep else 1
    fig, axes = plt.subplots(rows, 2, figsize=(15, 4.4 * rows), squeeze=False)
    ax = axes[0][0]
    scale = 3600.0 if res.duration_s > 7200 else 1.0
    unit = "h" if scale > 1 else "s"
    for r, label, color in ((ref, "uncapped", "0.6"), (res, res.policy, "C0")):
        if r is None:
            continue
        t, mean, peak = _downsample(r.row_w / r.budget_w, r.dt)
        ax.plot(t / scale, mean, lw=0.8, color=color, label=f"{label} (mean per point)")
        if len(t) < len(r.row_w):
            ax.plot(t / scale, peak, lw=0.4, color=color, alpha=0.5)
    for th, name in ((res.policy_params.get("t1"), "T1"), (res.policy_params.get("t2"), "T2"), (1.0, "budget")):
        if th:
            ax.axhline(th, color="r" if name == "budget" else "orange", ls="--", lw=0.8)
            ax.text(0, th, f" {name}", va="bottom", fontsize=7)
    for e in res.events[:400]:
        if e.kind in ("brake",):
            ax.axvline(e.effective_s / scale, color="r", lw=0.6)
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("row power / budget")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax = axes[0][1]
    for r, label, color in ((ref, "uncapped", "0.6"), (res, res.policy, "C0")):
        if r is None:
            continue
        x = np.sort(r.row_w / r.budget_w)
        ax.plot(x, 1.0 - np.arange(len(x)) / len(x), color=color, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("row power / budget")
    ax.set_ylabel("fraction of time above")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if sweep:
        pts = pd.DataFrame(sweep).sort_values("servers")
        ax = axes[1][0]
        for col in [c for c in pts.columns if c.endswith("_impact")]:
            ax.plot(pts.servers, 100 * pts[col].astype(float), "o-", label=col.replace("_", " "))
        ax.axhline(1.0, color="r", ls="--", lw=0.8)
        ax.axhline(-1.0, color="r", ls="--", lw=0.8)
        ax.set_xlabel("servers deployed")
        ax.set_ylabel("change vs uncapped (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax = axes[1][1]
        ax.plot(pts.servers, pts.peak_fraction, "o-", label="peak")
        ax.plot(pts.servers, pts.p99_fraction, "o-", label="p99")
        ax2 = ax.twinx()
        ax2.bar(pts.servers, pts.brake_events, alpha=0.3, color="r", label="brake events")
        ax2.set_ylabel("brake events")
        ax.axhline(1.0, color="r", ls="--", lw=0.8)
        ax.set_xlabel("servers deployed")
        ax.set_ylabel("row power / budget")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _kv_table(d: dict) -> str:
    return "<table>" + "".join(f"<tr><td class=l>{html.escape(str(k))}</td><td>{html.escape(_fmt(v))}</td></tr>"
                               for k, v in d.items() if not isinstance(v, (dict, list))) + "</table>"


def html_report(res, ref, inputs: dict, sweep: list = None) -> str:
    from sim import __version__
    png = plots(res, ref, sweep)
    stats = res.stats()
    classes = ""
    imp = res.impact(ref) if ref is not None else {}
    for p, c in res.classes.items():
        classes += f"<h3>{html.escape(p)} priority</h3>" + _kv_table(c)
        if p in imp:
            classes += "<p class=note>change against the uncapped run</p>" + _kv_table(imp[p])
    ev = "".join(f"<tr><td>{_fmt(e.decided_s)}</td><td>{_fmt(e.effective_s)}</td><td class=l>{html.escape(e.kind)}</td>"
                 f"<td class=l>{html.escape(e.detail)}</td><td>{_fmt(e.row_fraction)}</td></tr>" for e in res.events[:200])
    events = (f"<h2>Controller events ({len(res.events)}; first 200)</h2><table><tr><th>decided (s)</th><th>effective (s)"
              f"</th><th>kind</th><th>action</th><th>row power / budget</th></tr>{ev}</table>") if res.events else ""
    sw = ""
    if sweep:
        cols = list(sweep[0].keys())
        sw = "<h2>Servers deployed vs loss</h2><table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + \
             "</tr>" + "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>"
                               for r in sweep) + "</table>"
    title = f"hwsim power: {res.spec['servers']} x {res.spec['server']}, policy {res.policy}"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{STYLE}</style>"
            f"</head><body><h1>{html.escape(title)}</h1><p class=note>hwsim {__version__}; {res.path} path; inputs: "
            f"{html.escape(json.dumps(inputs, default=str))}</p>"
            f"<h2>Row power</h2>{_kv_table(stats)}"
            + (f"<h2>Uncapped reference</h2>{_kv_table(ref.stats())}" if ref is not None else "")
            + f"<h2>Latency and throughput per priority</h2>{classes}{events}{sw}"
            f"<h2>Plots</h2><img id='power-plots' alt='row power plots' src='data:image/png;base64,"
            f"{base64.b64encode(png).decode()}'></body></html>")


def check_out_dir(out_dir: str):
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise HwsimError(f"cannot write to {out_dir}: it is a file, not a folder")
    if not out.exists() and not out.parent.exists():
        raise HwsimError(f"cannot write to {out_dir}: folder {out.parent} does not exist; create it or pick another")
    check_folder(out_dir, "--out")          # a parent that is a file, a folder that takes no new files


def write(res, ref, out_dir: str, inputs: dict, doc: dict, sweep: list = None, fmt: str = "parquet") -> list:
    check_out_dir(out_dir)
    t = np.arange(len(res.row_w)) * res.dt
    series = pd.DataFrame({"time_s": t, "row_w": res.row_w, "row_fraction": res.row_w / res.budget_w})
    if ref is not None and len(ref.row_w) == len(res.row_w):
        series["uncapped_row_w"] = ref.row_w
    buf = io.BytesIO()
    if fmt == "parquet":
        series.to_parquet(buf, index=False)
    else:
        buf.write(series.to_csv(index=False).encode())
    files = {f"row_power.{fmt}": buf.getvalue(),
             "events.json": (json.dumps([e.to_dict() for e in res.events], indent=1) + "\n").encode(),
             "summary.json": (json.dumps(doc, indent=2, default=str) + "\n").encode(),
             "report.html": html_report(res, ref, inputs, sweep).encode()}
    if sweep:
        files["sweep.csv"] = pd.DataFrame(sweep).to_csv(index=False).encode()
    out = make_folder(out_dir, "--out")
    paths = []
    for name, data in files.items():
        write_file(out / name, data)
        paths.append(str(out / name))
    return paths
