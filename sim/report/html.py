"""A self-contained HTML report: summary, the roofline chart (embedded), per-layer and per-op tables."""
from __future__ import annotations

import base64
import html
import json

from .. import __version__

STYLE = """body{font-family:system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0 20px;
font-size:12px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f3f3f3}td.l{text-align:left}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}.note{color:#666;font-size:12px}img{max-width:100%}"""

SCRIPT = """<script>
window.addEventListener('load', function () {
  var img = document.getElementById('roofline-chart');
  if (img && img.complete && img.naturalWidth > 0) { document.body.setAttribute('data-chart-rendered', 'yes'); }
});
</script>"""


def _fmt(v, unit=""):
    if v is None:
        return "-"
    for f, p in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= f:
            return f"{v / f:.3g}{p}{unit}"
    return f"{v:.3g}{unit}"


def _table(headers, rows):
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td{' class=l' if i == 0 else ''}>{html.escape(str(c))}</td>"
                                   for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render(rooflines: list, png: bytes, inputs: dict, title: str) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             f"<p class=note>hwsim {__version__}; inputs: {html.escape(json.dumps(inputs))}</p>"]
    summary = []
    for r in rooflines:
        for phase, p in r.predictions.items():
            g = r.graphs[phase]
            tokens = g.meta["batch"] * g.meta["new_tokens"]
            summary.append([f"{r.device.id} {phase}", f"{p.latency_s * 1e3:.3f} ms", f"{tokens / p.latency_s:,.0f}",
                            f"{p.energy_j:.3g} J", f"{p.avg_power_w:.0f} W", f"{p.clock_mhz:.0f} MHz", p.bound,
                            _fmt(p.flops, "FLOP"), _fmt(p.bytes, "B"), "yes" if p.fits else "NO"])
    parts.append(_table(["device / phase", "latency", "tokens/s", "energy", "avg power", "clock", "bound", "FLOPs",
                         "bytes", "fits"], summary))
    parts.append("<h2>Roofline</h2><img id='roofline-chart' alt='roofline chart' src='data:image/png;base64,"
                 + base64.b64encode(png).decode() + "'>")
    for r in rooflines:
        for phase, p in r.predictions.items():
            parts.append(f"<h2>{html.escape(r.device.name)}: {phase}, per layer group</h2>")
            parts.append(_table(["layers", "ops", "FLOPs", "bytes", "FLOP/B", "time", "share"], [
                [row["layers"], row["ops"], _fmt(row["flops"]), _fmt(row["bytes"], "B"),
                 "-" if row["intensity"] is None else f"{row['intensity']:.1f}", f"{row['time_s'] * 1e3:.3f} ms",
                 f"{100 * row['share']:.1f}%"] for row in r.layer_rows(phase)]))
            peak = max(r.ceilings.values()) if r.ceilings else 0
            parts.append(f"<h2>{html.escape(r.device.name)}: {phase}, per op</h2>")
            parts.append(_table(["op", "kind", "count", "FLOPs", "bytes", "FLOP/B", "attained FLOP/s", "% of peak",
                                 "attained B/s", "bound", "time (all layers)", "share"], [
                [o["name"], o["kind"], o["count"], _fmt(o["flops"]), _fmt(o["bytes"], "B"),
                 "-" if not o["intensity"] else f"{o['intensity']:.1f}", _fmt(o["attained_flops"]),
                 f"{100 * o['attained_flops'] / peak:.1f}%" if peak else "-", _fmt(o["attained_bandwidth"], "B/s"),
                 o["bound"], f"{o['total_time_s'] * 1e3:.3f} ms", f"{100 * o['share']:.1f}%"] for o in p.ops]))
    parts.append(SCRIPT + "</body></html>")
    return "\n".join(parts)
