"""The power cap's operating point in closed form, for many steps at once (arrays [steps, ops]).

What `hw_models.power.one_step` does for one step in plain Python, as numpy over rows: with energy per operation
independent of the clock (gamma = 0) a set of ops' power is static + K / T(x), where T(x) = sum r (max(c x, m) + o)
is piecewise linear in the stretch x = f_max / f; the cap holds once T reaches K / (cap - static). The ops shorter
than the controller's window share one stretch (solved over their sum), each longer op has its own. The root is
exact (sorted break points, cumulative slopes), not bisected; results equal `one_step`'s to rounding
(tests/test_linear_step.py).

With clock-dependent energy per FLOP (gamma != 0: a FLOP at stretch x costs x^-gamma of its top-clock energy) the
power is static + (KF x^-gamma + KB) / T(x): the same sorted break points find the segment where the cap is met,
and Newton's method finds the root inside it (the gap cap T - energy is concave and increasing in x there, so
Newton from the segment's left end rises to the root without overshooting), to rounding in a few passes.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from workloads.linear_step import matmul_rows

from .power_one import _solve_sequence_one, _stretch_scalar  # noqa: F401  (one step in plain Python)


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
        window=pick([float(m.p.get("cap_window_s", 0.0) or 0.0) for m in models]),
        gamma=pick([float(m.p.get("gamma", 0.0) or 0.0) for m in models]),
        sequence=pick([float(bool(m.p.get("cap_sequence")) and bool(m.p.get("cap_window_s"))) for m in models]))
    for k in ("f_max", "static", "cap", "e_f", "e_b", "window", "gamma"):
        setattr(pw, k + "_c", _col(getattr(pw, k)))
    pw.x_max = pw.f_max / pw.f_min
    pw.scalar = index is None
    pw.windowed = bool(np.any(pw.window > 0))
    pw.sequenced = bool(np.any(pw.sequence > 0))
    pw.clock_energy = bool(np.any(pw.gamma != 0))
    return pw


def _col(v):
    return np.reshape(v, (-1, 1)) if np.ndim(v) else v


def _rows(v, rows):
    return v[rows] if np.ndim(v) else np.full(len(rows), v, dtype=float)


def stretch_rows(c, m, o, r, target, x_max):
    """Per row, the least x in [1, x_max] with sum r (max(c x, m) + o) >= target ([rows, parts] arrays; as
    `_stretch_scalar` does for one row, exact on the piecewise-linear time)."""
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


def stretch_rows_g(c, m, o, r, head, EF, EB, gamma, x_max, fl=None):
    """Per row, the least x in [1, x_max] with head x sum r (max(c x, m) + o) >= sum r (EF max(x, fl)^-gamma + EB):
    the stretch at which a set of parts meets the cap when a FLOP's energy scales with the clock ([rows, parts]
    arrays; `head` [rows] = cap - static; EF, EB: one run's FLOP and byte energy at the top clock; `fl`: a floor on
    each part's own stretch, below which its FLOP energy stays at the floor's, None: 1). Break points of the time
    (m / c) and of the energy (fl) sorted together; on the segment where the gap head T(x) - energy(x) turns
    non-negative, Newton's method from its left end. gamma = 0 gives `stretch_rows`' root to rounding."""
    R, n = c.shape
    g = np.broadcast_to(_col(gamma), (R, 1)).astype(float)
    H = np.broadcast_to(_col(head), (R, 1)).astype(float)
    xm = np.broadcast_to(_col(x_max), (R, 1)).astype(float)[:, 0]
    fl = np.ones((R, n)) if fl is None else np.maximum(np.broadcast_to(fl, (R, n)), 1.0)
    safe = np.where(c > 0, c, 1.0)
    bx = np.where(c > 0, m / safe, np.inf)
    zeros = np.zeros((R, n))
    ev = np.hstack([bx, fl])
    d_slope = np.hstack([c * r, zeros])
    d_tc = np.hstack([-m * r, zeros])
    d_var = np.hstack([zeros, r * EF])
    d_ec = np.hstack([zeros, -r * EF * fl ** -g])
    order = np.argsort(ev, axis=1, kind="stable")
    ev = np.take_along_axis(ev, order, axis=1)
    cum = lambda d: np.hstack([np.zeros((R, 1)), np.cumsum(np.take_along_axis(d, order, axis=1), axis=1)])
    a = (r * (o + m)).sum(axis=1)[:, None] + cum(d_tc)
    b = cum(d_slope)
    V = cum(d_var)
    C = (r * (EF * fl ** -g + EB)).sum(axis=1)[:, None] + cum(d_ec)
    hi = np.minimum(np.hstack([ev, np.full((R, 1), np.inf)]), xm[:, None])
    lo = np.maximum(1.0, np.hstack([np.full((R, 1), -np.inf), hi[:, :-1]]))
    valid = hi > lo
    valid[:, 0] |= hi[:, 0] >= lo[:, 0]
    gap_hi = H * (a + b * hi) - V * hi ** -g - C
    hit = valid & (gap_hi >= 0)
    k = hit.argmax(axis=1)[:, None]
    pick = lambda v: np.take_along_axis(v, k, axis=1)[:, 0]
    a, b, V, C, lo, hi = pick(a), pick(b), pick(V), pick(C), pick(lo), pick(hi)
    H, g = H[:, 0], g[:, 0]
    x = lo.copy()
    for _ in range(60):
        gap = H * (a + b * x) - V * x ** -g - C
        slope = H * b + g * V * x ** (-g - 1.0)
        step = np.where(slope > 0, gap / np.where(slope > 0, slope, 1.0), 0.0)
        nx = np.clip(x - step, lo, hi)
        done = np.all(np.abs(nx - x) <= 1e-15 * nx)
        x = nx
        if done:
            break
    return np.where(hit.any(axis=1), x, xm)


def wsum(x, w):
    """Per row, sum over ops of x x runs (`w` [ops] or [rows, ops])."""
    return matmul_rows(x, w) if w.ndim == 1 else (x * w).sum(axis=1)


def solve(pw, c, m, o, w, E, order=None, joins=None, EF=None):
    """The operating point of many steps. c, m, o: compute, memory and fixed seconds of one run of each op at
    the top clock [steps, ops]; w: runs [ops] or [steps, ops] (0: the op is not in that step); E: energy of one
    run beside static power (FLOPs x e_f + bytes x e_b). Returns (stretch per op [steps, ops], or None where
    no step is capped; op times of one run; op energies; per step latency, energy, clock, capped). `order`: the
    columns' positions in program order where they are not in it, `joins` [ops] the ops the windows follow
    (cap_sequence: hw_models.power.joins_window). `EF`: the FLOP part of E (at the top clock), needed where some
    row's energy per FLOP depends on the clock (pw.gamma != 0; stretch_rows_g)."""
    P, n = c.shape
    top = np.maximum(c, m) + o
    static, cap = pw.static_c, pw.cap_c
    if not getattr(pw, "clock_energy", False):
        EF = None
    elif EF is None:
        raise ValueError("solve: clock-dependent energy (gamma != 0) needs the FLOP part of the energy (EF)")
    else:
        EF = np.broadcast_to(EF, (P, n))
    if pw.sequenced:
        if P == 1 and pw.scalar:                 # one step: plain Python (the one-case path)
            x = np.array([_solve_sequence_one(pw, c[0], m[0], o if np.ndim(o) < 2 else o[0],
                                              w if np.ndim(w) < 2 else w[0], np.broadcast_to(E, (P, n))[0],
                                              None if EF is None else EF[0], order, joins)])
            return _finish(pw, c, m, o, w, np.broadcast_to(E, (P, n)), top, x, EF)
        return _solve_sequence(pw, c, m, o, w, E, top, order, joins, EF)
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
    E = np.broadcast_to(E, (P, n))
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
            if EF is None:
                xs[ok] = stretch_rows(c[sel], m[sel], o[sel], r, K[sel] / (cap_r[ok] - static_r[ok]), xm[ok])
            else:
                xs[ok] = stretch_rows_g(c[sel], m[sel], o[sel], r, cap_r[ok] - static_r[ok], EF[sel],
                                        E[sel] - EF[sel], _rows(pw.gamma, sel), xm[ok])
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
            if EF is None:
                xl[ok] = stretch_rows(c[at][ok][one], m[at][ok][one], o[at][ok][one], r[ok][one],
                                      r[ok] * E[at][ok] / (cap_h[ok] - static_h[ok]), xm[ok])
            else:
                gam = np.broadcast_to(_col(pw.gamma), (P, n))[at][ok]
                xl[ok] = stretch_rows_g(c[at][ok][one], m[at][ok][one], o[at][ok][one], r[ok][one],
                                        cap_h[ok] - static_h[ok], EF[at][ok][one], (E[at] - EF[at])[ok][one], gam,
                                        xm[ok])
        x[at] = xl
    return _finish(pw, c, m, o, w, E, top, x, EF)


def _finish(pw, c, m, o, w, E, top, x, EF=None):
    static = pw.static_c
    times = np.where(x != 1.0, np.maximum(c * x, m) + o, top)
    energies = static * times + E
    if EF is not None:                         # a FLOP at stretch x costs x^-gamma of its top-clock energy
        energies = energies - EF * (1.0 - x ** -pw.gamma_c)
    latency = wsum(times, w)
    energy = wsum(energies, w)
    capped = (x > 1.0).any(axis=1)
    clocks = pw.f_max_c / x
    clock = np.where(capped, wsum(clocks * times, w) / np.where(latency > 0, latency, 1.0), pw.f_max)
    return x, times, energies, latency, energy, clock, capped


def window_weights(top, joins, window, order=None):
    """[rows, ops, ops]: F[p, i, j] = the share of one run of op j inside op i's window under cap_sequence.

    The joined ops (`joins` [ops]) of a step, one run each, lie end to end in program order (`order`: the
    columns' positions in it, None where they are in it) at their top-clock times (`top` [rows, ops], 0 for an
    op not in the step); op i's window is the `window` seconds centred on it, shifted to lie inside the sequence
    (the whole sequence when it is shorter). Ops lying partly inside count by the part inside, so the windows
    move smoothly with the ops' times."""
    top = np.asarray(top, dtype=float)
    P, n = top.shape
    on = np.asarray(joins, dtype=bool) if joins is not None else np.ones(n, dtype=bool)
    h = np.where(on & (top > 0), top, 0.0)
    if order is not None:
        h = h[:, order]
    end = np.cumsum(h, axis=1)
    start = end - h
    total = end[:, -1:] if n else np.zeros((P, 1))
    mid = start + 0.5 * h
    a = np.clip(mid - 0.5 * window, 0.0, np.maximum(total - window, 0.0))
    b = np.minimum(a + window, total)
    overlap = np.minimum(end[:, None, :], b[:, :, None]) - np.maximum(start[:, None, :], a[:, :, None])
    F = np.where(h[:, None, :] > 0, np.clip(overlap, 0.0, None) / np.where(h > 0, h, 1.0)[:, None, :], 0.0)
    F = np.where(h[:, :, None] > 0, F, 0.0)
    if order is not None:
        inv = np.empty(n, dtype=np.int64)
        inv[order] = np.arange(n)
        F = F[:, inv][:, :, inv]
    return F


def window_hot(pw, top, E, F):
    """[rows, ops]: op i over the cap on its own and its window too, at the top clock (static + energy / time of
    its share of ops): the ops whose clock the window sets (an op under the cap on its own runs at the top clock
    or the step's)."""
    T = np.einsum("pij,pj->pi", F, top)
    K = np.einsum("pij,pj->pi", F, E)
    static, cap = np.broadcast_to(_col(pw.static), (T.shape[0], 1)), np.broadcast_to(_col(pw.cap), (T.shape[0], 1))
    own = (top > 0) & (static * top + E > cap * top)
    return own & (T > 0) & (static * T + K > cap * T), T, K


def window_stretch(pw, c, m, o, W, E, top, order=None, joins=None, EF=None):
    """[rows, ops]: the least stretch of each op under cap_sequence (`window_weights`): a joined op whose window
    is over the cap at the top clock runs no faster than the stretch that brings its window under it; 1 for the
    others."""
    P, n = c.shape
    o_b = np.broadcast_to(o, (P, n))
    seq = np.broadcast_to(_col(pw.sequence), (P, 1))[:, 0] > 0
    static, cap = np.broadcast_to(_col(pw.static), (P, 1)), np.broadcast_to(_col(pw.cap), (P, 1))
    xm_all = np.broadcast_to(_col(pw.x_max), (P, 1))[:, 0].astype(float)
    window = np.broadcast_to(_col(pw.window), (P, 1))[:, 0]
    x = np.ones((P, n))
    for win in np.unique(window[seq]):
        rows = np.flatnonzero(seq & (window == win))
        F = window_weights(np.where(W[rows] > 0, top[rows], 0.0), joins, win, order)
        h, T, K = window_hot(SimpleNamespace(static=pw.static if np.ndim(pw.static) == 0 else pw.static[rows],
                                             cap=pw.cap if np.ndim(pw.cap) == 0 else pw.cap[rows]),
                             top[rows], E[rows], F)
        if not h.any():
            continue
        pr, oi = np.nonzero(h)
        rr = rows[pr]
        cap_r, static_r, xm = cap[rr, 0], static[rr, 0], xm_all[rr]
        xs = xm.copy()
        ok = cap_r > static_r
        if ok.any():
            sel = rr[ok]
            if EF is None:
                xs[ok] = stretch_rows(c[sel], m[sel], o_b[sel], F[pr[ok], oi[ok]], K[pr[ok], oi[ok]] /
                                      (cap_r[ok] - static_r[ok]), xm[ok])
            else:
                xs[ok] = stretch_rows_g(c[sel], m[sel], o_b[sel], F[pr[ok], oi[ok]], cap_r[ok] - static_r[ok],
                                        EF[sel], E[sel] - EF[sel], _rows(pw.gamma, sel), xm[ok])
        x[rr, oi] = xs
    return x


def _solve_sequence(pw, c, m, o, w, E, top, order=None, joins=None, EF=None):
    """`solve` under `cap_sequence`: each joined op runs no faster than its window allows (`window_stretch`: its
    floor folds into its memory time, max(c x, m) = max(c s, c x_floor, m) for s <= x_floor), then the whole step
    meets the cap at one more stretch s as without windows; an op's stretch is max(s, its floor). With gamma != 0
    a floored op's FLOP energy stays at its floor's until s passes it (stretch_rows_g's `fl`)."""
    P, n = c.shape
    W = np.broadcast_to(w, (P, n))
    E = np.broadcast_to(E, (P, n))
    floor = window_stretch(pw, c, m, o, W, E, top, order, joins, EF)
    m2 = np.where(floor > 1.0, np.maximum(m, c * floor), m)
    top2 = np.maximum(c, m2) + o
    static, cap = pw.static, pw.cap
    T = wsum(top2, W)
    E1 = E if EF is None else E - EF * (1.0 - floor ** -pw.gamma_c)       # energies at stretch 1 (floors kept)
    K = wsum(E1, W)
    over = (T > 0) & (static + K / np.where(T > 0, T, 1.0) > cap)
    x = floor.copy()
    if over.any():
        rows = np.flatnonzero(over)
        cap_r, static_r, xm = _rows(pw.cap, rows), _rows(pw.static, rows), _rows(pw.x_max, rows)
        xs = xm.copy()
        ok = cap_r > static_r
        if ok.any():
            sel = rows[ok]
            o_b = np.broadcast_to(o, (P, n))
            if EF is None:
                xs[ok] = stretch_rows(c[sel], m2[sel], o_b[sel], W[sel], K[sel] / (cap_r[ok] - static_r[ok]),
                                      xm[ok])
            else:
                xs[ok] = stretch_rows_g(c[sel], m2[sel], o_b[sel], W[sel], cap_r[ok] - static_r[ok], EF[sel],
                                        E[sel] - EF[sel], _rows(pw.gamma, sel), xm[ok], fl=floor[sel])
        x[rows] = np.maximum(x[rows], xs[:, None])
    return _finish(pw, c, m, o, w, E, top, x, EF)
