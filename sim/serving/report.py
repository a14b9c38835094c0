"""Files of a serving run: per-request log and timeline (Parquet or CSV), summary JSON, a Perfetto trace of
iterations per replica (with batch, KV and power counter tracks), and a self-contained HTML report with plots
(latency CDFs, batch / KV / power over time, and the throughput-latency curve of a rate sweep)."""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from workloads.errors import HwsimError

from ..outputs import make_folder, write_file

STYLE = """body{font-family:system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0 20px;
font-size:12px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f3f3f3}td.l{text-align:left}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}.note{color:#666;font-size:12px}img{max-width:100%}"""


def table_bytes(df: pd.DataFrame, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "parquet":
        df.to_parquet(buf, index=False)
    else:
        buf.write(df.to_csv(index=False).encode())
    return buf.getvalue()


def chrome_trace(result, limit: int = 500_000) -> dict:
    """Iterations as slices per replica, with counter tracks (decodes in the batch, KV used, power)."""
    events = []
    tl = result.timeline
    if len(tl) > limit:
        tl = tl.iloc[:limit]
    for i, name in enumerate(tl.replica.unique()):
        events.append({"name": "process_name", "ph": "M", "pid": i, "args": {"name": name}})
    pids = {name: i for i, name in enumerate(tl.replica.unique())}
    for row in tl.itertuples(index=False):
        pid = pids[row.replica]
        kind = "mixed" if row.prefill_tokens and row.decodes else ("prefill" if row.prefill_tokens else "decode")
        ts = row.start_s * 1e6
        events.append({"name": kind, "ph": "X", "pid": pid, "tid": "iterations", "ts": ts, "dur": row.time_s * 1e6,
                       "args": {"decodes": int(row.decodes), "prefill_tokens": int(row.prefill_tokens),
                                "chunks": int(row.chunks), "preempted": int(row.preempted),
                                "clock_mhz": round(row.clock_mhz, 1)}})
        events.append({"name": "batch", "ph": "C", "pid": pid, "ts": ts,
                       "args": {"decodes": int(row.decodes), "running": int(row.running), "waiting": int(row.waiting)}})
        events.append({"name": "kv_used", "ph": "C", "pid": pid, "ts": ts,
                       "args": {"fraction": round(row.kv_used_fraction, 4)}})
        events.append({"name": "power_w", "ph": "C", "pid": pid, "ts": ts, "args": {"W": round(row.power_w, 1)}})
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def _binned(tl: pd.DataFrame, column: str, bins: int = 400):
    """Time-weighted average of a per-iteration column in equal time bins, per replica."""
    if tl.empty:
        return {}
    end = float((tl.start_s + tl.time_s).max())
    edges = np.linspace(0.0, end, bins + 1)
    out = {}
    for name, g in tl.groupby("replica", sort=False):
        idx = np.clip(np.searchsorted(edges, g.start_s.to_numpy(), side="right") - 1, 0, bins - 1)
        w = g.time_s.to_numpy()
        num = np.bincount(idx, weights=g[column].to_numpy() * w, minlength=bins)
        den = np.bincount(idx, weights=w, minlength=bins)
        width = edges[1] - edges[0] if bins else 1.0
        # busy share of the bin: idle time counts as zero (batch, KV) or idle power (power)
        out[name] = ((edges[:-1] + edges[1:]) / 2, np.where(den > 0, num / np.maximum(den, 1e-30), np.nan),
                     den / width)
    return out


def plots(result, sweep: list = None) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    df = result.requests[result.requests.finish_s.notna()]
    tl = result.timeline
    rows = 3 if sweep else 2
    fig, axes = plt.subplots(rows, 3, figsize=(15, 4.2 * rows))
    for ax, col, label in zip(axes[0], ("ttft_s", "tpot_s", "e2e_s"), ("TTFT (s)", "TPOT (s)", "E2E latency (s)")):
        x = np.sort(df[col].dropna().to_numpy())
        if len(x):
            ax.plot(x, np.arange(1, len(x) + 1) / len(x))
        ax.set_xlabel(label)
        ax.set_ylabel("fraction of requests")
        ax.grid(alpha=0.3)
        slo = {k: v for k, v in result.summary.get("slo", {}).items() if k.startswith(col.split("_")[0])}
        for k, v in slo.items():
            ax.axvline(v, color="r", ls="--", lw=1)
    for ax, col, label in zip(axes[1], ("decodes", "kv_used_fraction", "power_w"),
                              ("decoding sequences per iteration", "KV cache used (fraction)", "power (W, replica)")):
        for name, (t, v, busy) in list(_binned(tl, col).items())[:8]:
            ax.plot(t, v, lw=1, label=name)
        ax.set_xlabel("time (s)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    if axes[1][0].get_legend_handles_labels()[0]:     # no iterations (every request rejected): no legend, no warning
        axes[1][0].legend(fontsize=7)
    if sweep:
        pts = pd.DataFrame(sweep)
        for ax, metric in zip(axes[2], ("ttft", "tpot", "e2e")):
            for stat in ("p50", "p99"):
                ax.plot(pts.throughput_rps, pts[f"{metric}_s_{stat}"], "o-", label=stat)
            ax.set_xlabel("throughput (requests/s)")
            ax.set_ylabel(f"{metric.upper()} (s)")
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _fmt(v):
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def html_report(result, inputs: dict, sweep: list = None) -> str:
    from sim import __version__
    s = result.summary
    png = plots(result, sweep)
    rows = "".join(f"<tr><td class=l>{html.escape(k)}</td><td>{html.escape(_fmt(v))}</td></tr>"
                   for k, v in s.items() if not isinstance(v, dict))
    cap = "".join(f"<tr><td class=l>{html.escape(p)}</td>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in c.values())
                  + "</tr>" for p, c in result.capacity.items())
    cap_head = "".join(f"<th>{html.escape(k)}</th>" for k in next(iter(result.capacity.values())).keys())
    sweep_rows = ""
    if sweep:
        cols = ("rate", "throughput_rps", "ttft_s_p50", "ttft_s_p99", "tpot_s_p50", "tpot_s_p99", "slo_met")
        sweep_rows = "<h2>Rate sweep</h2><table><tr>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>" + "".join(
            "<tr>" + "".join(f"<td>{html.escape(_fmt(p.get(c)))}</td>" for c in cols) + "</tr>" for p in sweep) + "</table>"
    checks = s.get("slo_checks") or {}
    slo = ("<h2>SLOs</h2><table><tr><th>SLO</th><th>limit</th><th>value</th><th>met</th></tr>" + "".join(
        f"<tr><td class=l>{k}</td><td>{_fmt(c['limit'])}</td><td>{_fmt(c['value'])}</td><td>{'yes' if c['met'] else 'NO'}"
        f"</td></tr>" for k, c in checks.items()) + "</table>") if checks else ""
    title = f"hwsim serve: {inputs.get('model')} on {inputs.get('system')}"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{STYLE}</style>"
            f"</head><body><h1>{html.escape(title)}</h1><p class=note>hwsim {__version__}; inputs: "
            f"{html.escape(json.dumps(inputs, default=str))}</p>{slo}<h2>Summary</h2><table>{rows}</table>"
            f"<h2>KV cache per replica</h2><table><tr><th>pool</th>{cap_head}</tr>{cap}</table>{sweep_rows}"
            f"<h2>Plots</h2><img id='serving-plots' alt='serving plots' src='data:image/png;base64,"
            f"{base64.b64encode(png).decode()}'></body></html>")


def write(result, out_dir: str, inputs: dict, fmt: str = "parquet", trace: bool = True, sweep: list = None,
          skipped: list = None) -> list:
    """Write every output file into `out_dir` (created if its parent exists); returns the paths. `skipped`: the
    trace rows left out ({row, status}), written as skipped_rows.FMT."""
    out = make_folder(out_dir, "--out")     # one line for a path through a file, a missing or full folder
    if fmt not in ("parquet", "csv"):
        raise HwsimError(f"unknown table format '{fmt}'; use parquet or csv")
    files = {f"requests.{fmt}": table_bytes(result.requests, fmt), f"timeline.{fmt}": table_bytes(result.timeline, fmt)}
    if skipped:
        files[f"skipped_rows.{fmt}"] = table_bytes(pd.DataFrame(skipped, columns=["row", "status"]), fmt)
    from sim import __version__
    doc = {"hwsim_version": __version__, "command": "serve", "inputs": inputs, **result.to_dict()}
    if sweep:
        doc["sweep"] = sweep
    files["summary.json"] = (json.dumps(doc, indent=2, default=str) + "\n").encode()
    if trace:
        files["trace.json"] = json.dumps(chrome_trace(result)).encode()
    files["report.html"] = html_report(result, inputs, sweep).encode()
    paths = []
    for name, data in files.items():
        write_file(out / name, data)
        paths.append(str(out / name))
    return paths
