"""The power cap's operating point of ONE step in plain Python lists (the one-case path of `api.predict`,
`hw_models.power.one_step`): the same windows, floors and closed-form roots as `power_solve._solve_sequence` and
`stretch_rows_g` (the sliding window, cap_sequence: the H100's) or `power_solve.solve` (a window without it: the
H200's), to rounding (tests/test_cap_sequence.py, tests/test_one_case_speed.py).

Why lists: a step has a few dozen ops, and each numpy call on arrays that small costs about a microsecond, more
than the arithmetic; a prefill of a new prompt length under the 700 W cap runs this once per call.
"""
from __future__ import annotations

import bisect
from operator import mul, sub


def _stretch_scalar(parts, head, g, x_max, fl=None):
    """`stretch_rows_g` for one row in plain Python: parts [(w, c, m, o, EF, EB)], `fl` the parts' energy floors
    (None: 1). The same piecewise function: break points at or below 1 are applied up front, those at or beyond
    x_max dropped (their segments are empty), the rest sorted (time before energy at a tie); Newton's method in the
    segment where the gap turns non-negative."""
    if fl is None:           # no floors (a window's parts)
        return _stretch_open(parts, head, g, x_max)
    events = []
    a = C = b = V = 0.0
    for k, (w, c, m, o, ef, eb) in enumerate(parts):
        if w == 0.0:
            continue
        f = 1.0 if fl[k] < 1.0 else fl[k]
        a += w * (o + m)
        if f > 1.0:
            fg = f ** -g if g else 1.0
            C += w * (ef * fg + eb)
            if f < x_max:
                events.append((f, 1, w * ef, -w * ef * fg))
        else:
            C += w * eb
            V += w * ef
        if c > 0:
            bx = m / c
            if bx <= 1.0:
                b += c * w
                a -= m * w
            elif bx < x_max:
                events.append((bx, 0, c * w, -m * w))
    return _root(events, a, b, V, C, head, g, x_max)


def _stretch_open(parts, head, g, x_max):
    """`_stretch_scalar` of parts (w, c, m, o, EF, EB) without floors: the one loop of windows and whole steps."""
    events = []
    a = C = b = V = 0.0
    for w, c, m, o, ef, eb in parts:
        if w == 0.0:
            continue
        a += w * (o + m)
        C += w * eb
        V += w * ef
        if c > 0:
            bx = m / c
            if bx <= 1.0:
                b += c * w
                a -= m * w
            elif bx < x_max:
                events.append((bx, 0, c * w, -m * w))
    return _root(events, a, b, V, C, head, g, x_max)


def _stretch_lists(rl, cl, ml, ol, EFl, El, head, g, x_max):
    """`_stretch_open` of the parts (r, c, m, o, EF, E - EF) of a step without floors, from its lists."""
    return _stretch_open(zip(rl, cl, ml, ol, EFl, map(sub, El, EFl)), head, g, x_max)


def _root(events, a, b, V, C, head, g, x_max):
    """The least x in [1, x_max] where head (a + b x) - V x^-g - C >= 0, the coefficients changing at the sorted
    `events` (x, kind 0: time a, b / 1: energy V, C, d1, d2); x_max where there is none."""
    events.sort(key=_event_key)
    lo = 1.0
    for i in range(len(events) + 1):
        hi = events[i][0] if i < len(events) else x_max
        if hi >= lo and head * (a + b * hi) - V * (hi ** -g if g else 1.0) - C >= 0:
            if g == 1.0:
                # gamma 1 (the H200's): head (a + b x) - V / x - C = 0 is the quadratic head b x^2 + (head a - C) x
                # - V = 0, solved in closed form (the root Newton's method reaches, without its iterations: the
                # one-case path runs this for every new prompt length under the cap)
                p, q = head * b, head * a - C
                if p > 0:
                    d = q * q + 4.0 * p * V
                    x = (2.0 * V / (q + d ** 0.5)) if q > 0 else (-q + d ** 0.5) / (2.0 * p)
                else:
                    x = V / q if q > 0 else lo
                return min(max(x, lo), hi)
            x = lo
            if g == 0.5:
                # gamma 0.5 (the H100's): with y = sqrt(x) the gap times y is the depressed cubic p y^3 + q y - V; where
                # it has one real root (Cardano), Newton's method below starts from it and polishes it in a step
                p, q = head * b, head * a - C
                if p > 0:
                    P, Q = q / p, -V / p
                    D = 0.25 * Q * Q + P * P * P / 27.0
                    if D > 0:
                        r = D ** 0.5
                        u, v = -0.5 * Q + r, -0.5 * Q - r
                        y = (u ** (1 / 3) if u >= 0 else -((-u) ** (1 / 3))) + \
                            (v ** (1 / 3) if v >= 0 else -((-v) ** (1 / 3)))
                        if y > 0:
                            x = min(max(y * y, lo), hi)
                elif q > 0:
                    x = min(max((V / q) ** 2, lo), hi)
            for _ in range(60):
                xg = x ** -g if g else 1.0
                gap = head * (a + b * x) - V * xg - C
                slope = head * b + g * V * xg / x
                step = gap / slope if slope > 0 else 0.0
                nx = min(max(x - step, lo), hi)
                if abs(nx - x) <= 1e-15 * nx:
                    x = nx
                    break
                x = nx
            return x
        if i < len(events):
            _, kind, d1, d2 = events[i]
            if kind == 0:
                b += d1
                a += d2
            else:
                V += d1
                C += d2
            lo = max(lo, hi)
    return x_max


def _event_key(e):
    return e[0], e[1]


def solve_sequence_lists(static, cap, x_max, window, g, cl, ml, ol, rl, El, EFl, joined, top=None):
    """`_solve_sequence` of one step in plain Python: the stretch of each op, as a list. cl, ml, ol: compute,
    memory, fixed seconds of one run of each op at the top clock; rl: runs; El: energy of one run beside static
    power; EFl: its FLOP part (None: energy independent of the clock); `joined`: the positions of the ops the
    windows follow, in program order; `top`: the ops' top-clock times where the caller has them. Same windows
    (`window_weights`: each joined op's window centred on it, shifted into the sequence, ops partly inside
    counted by the part inside), floors and step solve, to rounding."""
    n = len(cl)
    head = cap - static
    if top is None:
        top = [(c if c > m else m) + o for c, m, o in zip(cl, ml, ol)]
    if EFl is None:
        EFl = [0.0] * n
    floor = None
    J = [j for j in joined if rl[j] > 0 and top[j] > 0]
    if J and window > 0:
        floor = _window_floors(static, cap, head, x_max, window, g, cl, ml, ol, El, EFl, top, J)
    if floor is None:                     # no window binds: every op at the step's one stretch
        T = K = 0.0
        for r, t, e in zip(rl, top, El):
            K += r * e
            T += r * t
        if T > 0 and static + K / T > cap:
            if cap > static:
                s = _stretch_lists(rl, cl, ml, ol, EFl, El, head, g, x_max)
            else:
                s = x_max
            return [s if s > 1.0 else 1.0] * n
        return [1.0] * n
    m2 = list(ml)
    T = K = 0.0
    for k in range(n):
        fi, r = floor[k], rl[k]
        if fi > 1.0:
            mk = cl[k] * fi
            if mk > m2[k]:
                m2[k] = mk
            K += r * (El[k] - EFl[k] * (1.0 - fi ** -g))
        else:
            K += r * El[k]
        T += r * (max(cl[k], m2[k]) + ol[k])
    if T > 0 and static + K / T > cap:
        if cap > static:
            parts = [(r, c, m, o, ef, e - ef) for r, c, m, o, ef, e in zip(rl, cl, m2, ol, EFl, El)]
            s = _stretch_scalar(parts, head, g, x_max, floor)
        else:
            s = x_max
        return [max(fi, s) for fi in floor]
    return floor


def solve_window_lists(static, cap, x_max, window, g, cl, ml, ol, rl, El, EFl, top, T=None, K=None):
    """`power_solve.solve` of one step under a cap window WITHOUT cap_sequence (the H200's): the stretch of each
    op as a list, or None where the cap binds nowhere (the top clock). The ops no longer than the window share one
    stretch, solved over their sum where it is over the cap; each longer op over the cap on its own gets its own.
    cl, ml, ol, rl, El, top: as `solve_sequence_lists`; EFl: the FLOP part of El, a list or a callable giving it
    (read only when g != 0 and something is capped); T, K: top-clock time and energy summed over the runs, where
    the caller has them and no op is longer than the window."""
    head = cap - static
    hot, short = (), rl
    if T is None:
        short = [0.0 if t > window else r for r, t in zip(rl, top)]
        T, K = sum(map(mul, short, top)), sum(map(mul, short, El))
        hot = [i for i, (r, t, e) in enumerate(zip(rl, top, El))
               if t > window and r > 0 and t > 0 and static + e / t > cap]
    over = T > 0 and static + K / T > cap
    if not over and not hot:
        return None
    if g and callable(EFl):
        EFl = EFl()
    ef = EFl if g else [0.0] * len(cl)
    x = [1.0] * len(cl)
    if over:
        s = _stretch_lists(short, cl, ml, ol, ef, El, head, g, x_max) if cap > static else x_max
        x = [1.0 if t > window else s for t in top] if hot or short is not rl else [s] * len(cl)
    for i in hot:
        x[i] = _stretch_scalar([(rl[i], cl[i], ml[i], ol[i], ef[i], El[i] - ef[i])], head, g, x_max) \
            if cap > static else x_max
    return x


def _window_floors(static, cap, head, x_max, window, g, cl, ml, ol, El, EFl, top, J):
    """Each op's floor on its stretch from its window (1 where none binds), or None where no window binds."""
    ends, x = [], 0.0
    for j in J:
        x += top[j]
        ends.append(x)
    total = x
    hot = [i for i in J if static * top[i] + El[i] > cap * top[i]]
    if not hot:
        return None
    args = (static, cap, head, x_max, g, cl, ml, ol, El, EFl, top, J, ends)
    if total <= window:      # a layer shorter than the window: every window is all of it
        if static * total + sum(El[j] for j in J) < cap * total * (1.0 - 1e-9):
            return None      # clearly under the cap (the exact sum of the parts inside only where it may not be)
        f = _window_stretch(0.0, total, *args)
        if f == 1.0:
            return None
        floor = [1.0] * len(cl)
        for i in hot:
            floor[i] = f
        return floor
    shift = total - window
    floor = None
    solved = {}              # windows shared by several hot ops
    at = {j: k for k, j in enumerate(J)}
    for i in hot:
        t = top[i]
        lo = ends[at[i]] - t + 0.5 * t - 0.5 * window
        lo = 0.0 if lo < 0.0 else (shift if lo > shift else lo)
        hi = lo + window
        if hi > total:
            hi = total
        f = solved.get((lo, hi))
        if f is None:
            f = solved[lo, hi] = _window_stretch(lo, hi, *args)
        if f != 1.0:
            if floor is None:
                floor = [1.0] * len(cl)
            floor[i] = f
    return floor


def _window_stretch(lo, hi, static, cap, head, x_max, g, cl, ml, ol, El, EFl, top, J, ends):
    """The least stretch that brings the window [lo, hi] of the joined ops J (ending at `ends`) under the cap,
    each op counted by its part inside; 1 where it is under the cap at the top clock."""
    parts = []               # the ops inside, as _stretch_scalar's parts (the share of each op inside its weight)
    T = K = 0.0
    for kk in range(bisect.bisect_right(ends, lo), len(J)):
        j = J[kk]
        s1 = ends[kk]
        tj = top[j]
        s0 = s1 - tj
        if s0 >= hi:
            break
        ov = (s1 if s1 < hi else hi) - (s0 if s0 > lo else lo)
        if ov > 0:
            fr = ov / tj
            ej, efj = El[j], EFl[j]
            parts.append((fr, cl[j], ml[j], ol[j], efj, ej - efj))
            T += fr * tj
            K += fr * ej
    if T > 0 and static * T + K > cap * T:
        if cap <= static:
            return x_max
        return _stretch_scalar(parts, head, g, x_max)
    return 1.0


def _solve_sequence_one(pw, c, m, o, w, E, EF, order, joins):
    """`solve_sequence_lists` from a power_arrays namespace and 1-D arrays (o and w may be scalars or broadcast),
    `order` the columns' positions in program order (None: in it), `joins` the joined ops (None: all)."""
    import numpy as np
    cl, ml, ol = c.tolist(), m.tolist(), np.broadcast_to(o, c.shape).tolist()
    rl, El = np.broadcast_to(w, c.shape).tolist(), E.tolist()
    seq = range(len(cl)) if order is None else order.tolist()
    joined = list(seq) if joins is None else [j for j in seq if joins[j]]
    return solve_sequence_lists(float(pw.static), float(pw.cap), float(pw.x_max), float(pw.window),
                                float(pw.gamma), cl, ml, ol, rl, El, None if EF is None else EF.tolist(), joined)
