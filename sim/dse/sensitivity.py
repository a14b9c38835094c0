"""Sensitivity of an objective to each axis over a grid: main effects (first-order variance share) of
log(objective), and the best/worst ratio of the axis-level means."""
from __future__ import annotations

import numpy as np


def sensitivity(df, axes, objective: str, sense: str = "min", feasible_only: bool = False) -> list:
    """Rows {axis, first_order, spread, best} sorted by first_order, over the evaluated points.
    first_order = Var(E[log y | axis]) / Var(log y) (a grid's Sobol main effect); spread = ratio of the worst
    to the best level mean of y (>= 1); best = the level with the best mean."""
    ok = df["status"] == "ok"
    if feasible_only and "feasible" in df:
        ok &= df["feasible"]
    d = df[ok]
    y = d[objective].to_numpy(dtype=float)
    good = np.isfinite(y) & (y > 0)
    d, y = d[good], y[good]
    if len(y) < 2:
        return []
    logy = np.log(y)
    total = logy.var()
    rows = []
    for axis in axes:
        if axis not in d or d[axis].nunique() < 2:
            continue
        groups = d.groupby(d[axis].astype(str), sort=False)
        means = groups[objective].mean()
        logmeans = np.log(groups[objective].apply(lambda s: float(np.exp(np.log(s.to_numpy(dtype=float)).mean()))))
        counts = groups.size()
        main = float(((logmeans - logy.mean()) ** 2 * counts).sum() / counts.sum() / total) if total > 0 else 0.0
        best = means.idxmin() if sense == "min" else means.idxmax()
        rows.append({"axis": axis, "first_order": main, "spread": float(means.max() / means.min()),
                     "best": best})
    return sorted(rows, key=lambda r: -r["first_order"])
