"""Study outputs: a summary for the terminal, Pareto plots and heatmaps (matplotlib) and an HTML report listing
the axes, the front, the sensitivity of each objective to each axis, and the best designs with their rooflines."""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from .. import __version__
from .evaluate import roofline_png
from .sensitivity import sensitivity

STYLE = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}table{border-collapse:collapse;
margin:8px 0 20px;font-size:12px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f3f3f3}
td.l{text-align:left}h1{font-size:20px}h2{font-size:16px;margin-top:28px}.note{color:#666;font-size:12px}
img{max-width:100%}.warn{color:#a40}"""


def axis_columns(study, df) -> list:
    return [a for a in study.axes if a in df.columns and df[a].nunique() > 1] or [a for a in study.axes if a in df]


def summary(study, df) -> dict:
    ok = df["status"] == "ok"
    errors = df[df["status"].str.startswith("error")]
    front = df[df["pareto"]] if "pareto" in df else df.iloc[:0]
    first = list(study.objectives)[0]
    front = front.sort_values(first, ascending=study.objectives[first] == "min")
    cols = axis_columns(study, df)
    best = [{**{c: (str(r[c]) if not isinstance(r[c], float) else r[c]) for c in cols},
             **{o: float(r[o]) for o in study.objectives}} for _, r in front.head(10).iterrows()]
    return {"points": int(len(df)), "ok": int(ok.sum()), "feasible": int(df.get("feasible", ok).sum()),
            "front": int(len(front)), "errors": int(len(errors)),
            "first_error": errors["status"].iloc[0] if len(errors) else "", "axis_columns": cols, "best": best}


def findings_text(study, df) -> str:
    """The study's own findings (Study.findings), or '' when it declares none."""
    if study.findings is None:
        return ""
    from workloads.errors import HwsimError
    try:
        return str(study.findings(df)).rstrip()
    except HwsimError:
        raise
    except Exception as exc:                  # noqa: BLE001 - a study's findings code failing is its own bug
        raise HwsimError(f"study {study.name}: its findings function failed: {type(exc).__name__}: {exc}") from None


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return buf.getvalue()


def pareto_plot(study, df, x: str, y: str, color: str = None) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ok = df[df["status"] == "ok"]
    infeasible = ok[~ok["feasible"]]
    feasible = ok[ok["feasible"]]
    ax.scatter(infeasible[x], infeasible[y], s=6, c="#ddd", label="infeasible", rasterized=True)
    if color and color in feasible and feasible[color].nunique() <= 12:
        for i, (val, grp) in enumerate(feasible.groupby(color, sort=False)):
            ax.scatter(grp[x], grp[y], s=8, alpha=0.6, label=f"{color}={val}", color=f"C{i % 10}", rasterized=True)
    else:
        ax.scatter(feasible[x], feasible[y], s=8, alpha=0.6, label="feasible", rasterized=True)
    front = feasible[feasible["pareto"]].sort_values(x)
    ax.plot(front[x], front[y], "k.-", lw=1, ms=7, label="Pareto front")
    for col, axis in ((x, ax.set_xscale), (y, ax.set_yscale)):
        vals = ok[col].to_numpy(dtype=float)
        vals = vals[np.isfinite(vals) & (vals > 0)]
        if len(vals) and vals.max() / vals.min() > 30:
            axis("log")
    ax.set_xlabel(f"{x} ({study.objectives.get(x, '')})")
    ax.set_ylabel(f"{y} ({study.objectives.get(y, '')})")
    ax.set_title(f"{study.name}: {y} vs {x}")
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3, which="both")
    return _png(fig)


def heatmap(study, df, objective: str, rows: str, cols: str) -> bytes:
    """Best value of the objective over the other axes, for each (rows, cols) pair."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ok = df[(df["status"] == "ok") & df["feasible"]]
    agg = "min" if study.objectives.get(objective, "min") == "min" else "max"
    pivot = ok.pivot_table(index=rows, columns=cols, values=objective, aggfunc=agg, sort=False)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * max(len(pivot.columns), 3), 1.0 + 0.45 * max(len(pivot.index), 3)))
    data = pivot.to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        shown = np.log10(data) if np.nanmin(data) > 0 and np.nanmax(data) / np.nanmin(data) > 30 else data
    im = ax.imshow(shown, aspect="auto", cmap="viridis_r" if agg == "min" else "viridis")
    ax.set_xticks(range(len(pivot.columns)), [str(c) for c in pivot.columns], rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(pivot.index)), [str(c) for c in pivot.index], fontsize=7)
    for (i, j), v in np.ndenumerate(data):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=6, color="w")
    ax.set_xlabel(cols)
    ax.set_ylabel(rows)
    ax.set_title(f"{agg} {objective}{' (log10 colour)' if shown is not data else ''}", fontsize=9)
    fig.colorbar(im, ax=ax)
    return _png(fig)


def _table(headers, rows):
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td{' class=l' if isinstance(c, str) else ''}>"
                                    f"{html.escape(f'{c:.4g}' if isinstance(c, float) else str(c))}</td>"
                                    for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(png: bytes, alt: str) -> str:
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def write(study, df, out) -> Path:
    """report.html (plus pareto.png / heatmap.png) in the results folder; returns the report's path."""
    from .run import _write_text
    out = Path(out)
    objectives = list(study.objectives)
    cols = axis_columns(study, df)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(study.name)}</title>"
             f"<style>{STYLE}</style></head><body><h1>Study {html.escape(study.name)}</h1>",
             f"<p class=note>hwsim {__version__}; {html.escape(study.description)}</p>"]
    s = summary(study, df)
    parts.append(f"<p>{s['points']:,} points: {s['ok']:,} evaluated, {s['feasible']:,} feasible, {s['front']} on the "
                 f"Pareto front of {', '.join(f'{k} ({v})' for k, v in study.objectives.items())}.</p>")
    if s["errors"]:
        parts.append(f"<p class=warn>{s['errors']} points failed; first: {html.escape(s['first_error'])}</p>")
    text = findings_text(study, df)
    if text:
        parts.append(f"<h2>Findings</h2><pre>{html.escape(text)}</pre>")
    desc = study.describe()
    parts.append("<h2>Axes</h2>" + _table(["axis", "values"], [[k, ", ".join(v) if isinstance(v, list) else v]
                                                                for k, v in desc["axes"].items()]))
    parts.append("<h2>Constraints and objectives</h2>" + _table(
        ["constraints", "objectives"], [[", ".join(desc["constraints"]),
                                         ", ".join(f"{k}: {v}" for k, v in desc["objectives"].items())]]))
    basis = df.loc[df["status"] == "ok", "price_basis"].unique() if "price_basis" in df else []
    if len([b for b in basis if b]) > 1 and any("usd" in o for o in objectives):
        parts.append(f"<p class=warn>Prices in this study come from different bases ({', '.join(b for b in basis if b)}): "
                     f"cloud prices include the vendor's margin, manufacturing costs do not.</p>")
    if len(objectives) >= 2 and s["ok"]:
        color = next((c for c in cols if c not in ("batch", "seq_len")), None)
        png = pareto_plot(study, df, objectives[0], objectives[1], color)
        (out / "pareto.png").write_bytes(png)
        parts.append("<h2>Pareto front</h2>" + _img(png, "pareto"))
    front = df[df["pareto"]].sort_values(objectives[0], ascending=study.objectives[objectives[0]] == "min")
    show = cols + ["hardware"] * ("hardware" not in cols) + objectives + \
        [c for c in ("latency_s", "tokens_per_s", "tokens_per_j", "usd_per_mtoken", "area_mm2", "bound")
         if c not in objectives]
    parts.append(f"<h2>Front ({len(front)} designs)</h2>" +
                 _table(show, [[r[c] for c in show] for _, r in front.head(50).iterrows()]))
    sens_rows = []
    for obj in objectives:
        table_ = sensitivity(df, cols, obj, study.objectives[obj])
        for r in table_:
            sens_rows.append([obj, r["axis"], r["first_order"], r["spread"], str(r["best"])])
    if sens_rows:
        parts.append("<h2>Sensitivity</h2><p class=note>first_order: share of the variance of log(objective) "
                     "explained by the axis alone (main effect over the grid); spread: best/worst ratio of the "
                     "axis-level means.</p>" + _table(["objective", "axis", "first order", "spread", "best level"],
                                                    sens_rows))
    multi = [c for c in cols if df[c].nunique() > 1]
    if len(multi) >= 2 and s["feasible"]:
        png = heatmap(study, df, objectives[0], multi[0], multi[1])
        (out / "heatmap.png").write_bytes(png)
        parts.append(f"<h2>Heatmap: best {objectives[0]} by {multi[0]} x {multi[1]}</h2>" + _img(png, "heatmap"))
    shown = 0
    for _, row in front.iterrows():
        if shown >= 3:
            break
        try:
            png = roofline_png(row.to_dict())
        except Exception:                     # noqa: BLE001 - a chart that cannot be drawn is left out
            png = None
        if png:
            parts.append(f"<h2>Roofline of design {int(row['point'])}</h2>" + _img(png, "roofline"))
            shown += 1
    parts.append(f"<p class=note>inputs: {html.escape(json.dumps(desc))}</p></body></html>")
    target = out / "report.html"
    _write_text("".join(parts), target)
    return target
