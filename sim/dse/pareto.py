"""Pareto fronts over any objectives (min or max), on numpy arrays."""
from __future__ import annotations

import numpy as np


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """Non-dominated rows of an (n, k) array where every column is minimised. A row is dominated when another is
    no worse in every column and better in one; rows with a NaN are never on the front; equal rows all stay."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError("pareto_mask needs an (n, k) array")
    n, k = values.shape
    keep = np.zeros(n, dtype=bool)
    valid = np.flatnonzero(~np.isnan(values).any(axis=1))
    if not len(valid):
        return keep
    v = values[valid]
    order = np.lexsort(tuple(v[:, j] for j in range(k - 1, -1, -1)))      # by column 0, then 1, ...
    if k == 1:
        best = v[order[0], 0]
        keep[valid[v[:, 0] == best]] = True
        return keep
    if k == 2:
        # sorted by x then y: a row is on the front iff its y beats every earlier row's y (ties in x and y kept)
        xs, ys = v[order, 0], v[order, 1]
        prev = np.concatenate([[np.inf], np.minimum.accumulate(ys)[:-1]])
        on = ys < prev
        start = np.ones(len(xs), dtype=bool)               # first row of each run of identical rows
        start[1:] = (xs[1:] != xs[:-1]) | (ys[1:] != ys[:-1])
        run = np.cumsum(start) - 1
        on = on[np.flatnonzero(start)][run]                # identical rows share the first one's fate
        keep[valid[order[on]]] = True
        return keep
    # lexicographic order: a later row can never dominate an earlier one, so the front only grows; rows are
    # checked in blocks against the front so far and against the earlier rows of their block
    front = np.empty((0, k))
    chosen = []
    for at in range(0, len(order), 512):
        idx = order[at:at + 512]
        block = v[idx]
        if len(front):
            le = np.ones((len(block), len(front)), dtype=bool)
            lt = np.zeros((len(block), len(front)), dtype=bool)
            for j in range(k):
                le &= front[None, :, j] <= block[:, None, j]
                lt |= front[None, :, j] < block[:, None, j]
            alive = ~(le & lt).any(axis=1)
            idx, block = idx[alive], block[alive]
        if len(block):
            le = np.ones((len(block), len(block)), dtype=bool)
            lt = np.zeros((len(block), len(block)), dtype=bool)
            for j in range(k):
                le &= block[None, :, j] <= block[:, None, j]
                lt |= block[None, :, j] < block[:, None, j]
            alive = ~(le & lt).any(axis=1)
            front = np.vstack([front, block[alive]])
            chosen.extend(idx[alive].tolist())
    keep[valid[chosen]] = True
    return keep


def front(df, objectives: dict, feasible=None) -> np.ndarray:
    """Boolean mask of the Pareto-optimal rows of a results table for objectives {column: 'min' | 'max'},
    among the `feasible` rows (default: all rows with status ok)."""
    ok = np.asarray(df["status"] == "ok") if feasible is None else np.asarray(feasible, dtype=bool)
    cols = []
    for col, sense in objectives.items():
        x = df[col].to_numpy(dtype=float)
        cols.append(x if sense == "min" else -x)
    vals = np.stack(cols, axis=1) if cols else np.zeros((len(df), 0))
    vals[~ok] = np.nan
    return pareto_mask(vals)
