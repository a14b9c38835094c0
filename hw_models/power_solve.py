"""The power cap's operating point in closed form, for many steps at once (arrays [steps, ops]).

What `hw_models.power.one_step` does for one step in plain Python, as numpy over rows: with energy per operation
independent of the clock (gamma = 0) a set of ops' power is static + K / T(x), where T(x) = sum r (max(c x, m) + o)
is piecewise linear in the stretch x = f_max / f; the cap holds once T reaches K / (cap - static). The ops shorter
than the controller's window share one stretch (solved over their sum), each longer op has its own. The root is
exact (sorted break points, cumulative slopes), not bisected; results equal `one_step`'s to rounding
(tests/test_linear_step.py).
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from workloads.linear_step import matmul_rows


def power_arrays(models, index=None):
    """The numbers of PowerModels the solve reads: scalars for one model (index None), else arrays [points]
    gathered by `index` (with `*_c`, the same as columns [points, 1])."""
    def pick(values):
        return values[0] if index is None else np.asarray(values, dtype=float)[index]
    pw = SimpleNamespace(
        f_max=pick([float(m.f_max) for m in models]), f_min=pick([float(m.f_min) for m in models]),
        static=pick([float(m.p["static_w"]) for m in models]), cap=pick([float(m.cap) for m in models]),
        idle=pick([float(m.idle) for m in models]), e_f=pick([m.p["e_flop_pj"] * 1e-12 for m in models]),
        e_b=pick([m.p["e_byte_pj"] * 1e-12 for m in models]),
        window=pick([float(m.p.get("cap_window_s", 0.0) or 0.0) for m in models]))
    for k in ("f_max", "static", "cap", "e_f", "e_b", "window"):
        setattr(pw, k + "_c", _col(getattr(pw, k)))
    pw.x_max = pw.f_max / pw.f_min
    pw.scalar = index is None
    pw.windowed = bool(np.any(pw.window > 0))
    return pw


def _col(v):
    return np.reshape(v, (-1, 1)) if np.ndim(v) else v


def _rows(v, rows):
    return v[rows] if np.ndim(v) else np.full(len(rows), v, dtype=float)


def stretch_rows(c, m, o, r, target, x_max):
    """Per row, the least x in [1, x_max] with sum r (max(c x, m) + o) >= target ([rows, parts] arrays; as
    `power._stretch_to`, exact on the piecewise-linear time)."""
    if c.shape[1] == 1:
        return _stretch_one(c[:, 0], m[:, 0], o[:, 0], r[:, 0], target, x_max)
    safe = np.where(c > 0, c, 1.0)
    bx = np.where(c > 0, m / safe, np.inf)
    order = np.argsort(bx, axis=1, kind="stable")
    bx = np.take_along_axis(bx, order, axis=1)
    cr = np.take_along_axis(c * r, order, axis=1)
    mr = np.take_along_axis(m * r, order, axis=1)
    fixed = (r * o).sum(axis=1)
    zero = np.zeros((len(bx), 1))
    slope = np.hstack([zero, np.cumsum(cr, axis=1)])          # on segment s: parts before break s at c x
    const = (fixed + mr.sum(axis=1))[:, None] - np.hstack([zero, np.cumsum(mr, axis=1)])
    x_max = _col(x_max)
    hi = np.minimum(np.hstack([bx, np.full((len(bx), 1), np.inf)]), x_max)
    lo = np.maximum(1.0, np.hstack([np.full((len(bx), 1), -np.inf), hi[:, :-1]]))
    valid = np.hstack([bx, np.full((len(bx), 1), np.inf)]) > lo
    hit = valid & (slope > 0) & (const + slope * hi >= target[:, None])
    first = hit.argmax(axis=1)[:, None]
    s = np.take_along_axis(slope, first, axis=1)[:, 0]
    k = np.take_along_axis(const, first, axis=1)[:, 0]
    lo = np.take_along_axis(lo, first, axis=1)[:, 0]
    x = np.maximum(lo, (target - k) / np.where(s > 0, s, 1.0))
    return np.where(hit.any(axis=1), x, np.reshape(x_max, -1) * np.ones(len(bx)))


def _stretch_one(c, m, o, r, target, x_max):
    """stretch_rows of rows of one part (an op longer than the cap's window), the same operations without the
    sort: below the break point m / c the time does not grow; past it, r c x + const."""
    bx = np.where(c > 0, m / np.where(c > 0, c, 1.0), np.inf)
    x_max = np.reshape(x_max, -1) * np.ones(len(c))
    slope = c * r
    mr = m * r
    const = (r * o + mr) - mr
    lo = np.maximum(1.0, np.minimum(bx, x_max))
    hit = (slope > 0) & (const + slope * x_max >= target)
    x = np.maximum(lo, (target - const) / np.where(slope > 0, slope, 1.0))
    return np.where(hit, x, x_max)


def wsum(x, w):
    """Per row, sum over ops of x x runs (`w` [ops] or [rows, ops])."""
    return matmul_rows(x, w) if w.ndim == 1 else (x * w).sum(axis=1)


def solve(pw, c, m, o, w, E):
    """The operating point of many steps. c, m, o: compute, memory and fixed seconds of one run of each op at
    the top clock [steps, ops]; w: runs [ops] or [steps, ops] (0: the op is not in that step); E: energy of one
    run beside static power (FLOPs x e_f + bytes x e_b). Returns (stretch per op [steps, ops], or None where
    no step is capped; op times of one run; op energies; per step latency, energy, clock, capped)."""
    P, n = c.shape
    top = np.maximum(c, m) + o
    static, cap = pw.static_c, pw.cap_c
    long = None
    if pw.windowed:
        long = (top > pw.window_c) & (pw.window_c > 0)
        if not long.any():
            long = None
    short_w = w if long is None else np.where(long, 0.0, w)
    T, K = wsum(top, short_w), wsum(E, short_w)
    over = (T > 0) & (pw.static + K / np.where(T > 0, T, 1.0) > pw.cap)
    hot = None
    if long is not None:
        hot = long & (w > 0) & (top > 0) & (static + E / np.where(top > 0, top, 1.0) > cap)
        if not hot.any():
            hot = None
    if hot is None and not over.any():
        energies = static * top + E
        clock = pw.f_max * np.ones(P) if pw.scalar else pw.f_max
        return None, top, energies, wsum(top, w), wsum(energies, w), clock, np.zeros(P, dtype=bool)
    o = np.broadcast_to(o, (P, n))
    x_max = pw.x_max
    x = np.ones((P, n))
    if over.any():
        rows = np.flatnonzero(over)
        cap_r, static_r, xm = _rows(pw.cap, rows), _rows(pw.static, rows), _rows(x_max, rows)
        xs = xm.copy()
        ok = cap_r > static_r
        if ok.any():
            sel = rows[ok]
            r = np.broadcast_to(short_w, (P, n))[sel]
            xs[ok] = stretch_rows(c[sel], m[sel], o[sel], r, K[sel] / (cap_r[ok] - static_r[ok]), xm[ok])
        x[rows] = xs[:, None]
        if long is not None:
            x[long] = 1.0
    if hot is not None:
        at = np.nonzero(hot)
        cap_h, static_h = (np.broadcast_to(v, (P, n))[at] for v in (cap, static))
        xm = np.broadcast_to(_col(x_max), (P, n))[at]
        r = np.broadcast_to(w, (P, n))[at]
        xl = xm.copy()
        ok = cap_h > static_h
        one = (slice(None), None)
        if ok.any():
            xl[ok] = stretch_rows(c[at][ok][one], m[at][ok][one], o[at][ok][one], r[ok][one],
                                  r[ok] * E[at][ok] / (cap_h[ok] - static_h[ok]), xm[ok])
        x[at] = xl
    times = np.where(x != 1.0, np.maximum(c * x, m) + o, top)
    energies = static * times + E
    latency = wsum(times, w)
    energy = wsum(energies, w)
    capped = (x > 1.0).any(axis=1)
    clocks = pw.f_max_c / x
    clock = np.where(capped, wsum(clocks * times, w) / np.where(latency > 0, latency, 1.0), pw.f_max)
    return x, times, energies, latency, energy, clock, capped
