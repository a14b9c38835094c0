"""`linear_cost.figures` of ONE step on one device in plain Python lists: the one-case path of `api.predict`
(sim/fastpath.py; also `linear_cost.figures_one`), capped or not, on any GPU power model: the sliding cap window
(cap_sequence; the H100's), a window without it (the H200's) or none.

Why lists: a step has a few dozen ops and each numpy call on arrays that small costs about a microsecond, more
than its arithmetic; the uncapped step is a few sums, the capped one `power_one.solve_sequence_lists` or
`solve_window_lists` and a few more. The same figures as the row path to rounding (tests/test_one_case_speed.py, tests/test_linear_step.py).
"""
from __future__ import annotations

import math
from operator import mul

from hw_models.power_one import solve_sequence_lists, solve_window_lists

BOUND_NAMES = ("compute", "memory", "latency")


def _bound(kinds, weights):
    """The bound of the largest summed weight (np.bincount(...).argmax(): the first at a tie)."""
    w = [0.0, 0.0, 0.0]
    for k, x in zip(kinds, weights):
        w[k] += x
    return BOUND_NAMES[0 if w[0] >= w[1] and w[0] >= w[2] else (1 if w[1] >= w[2] else 2)]


def window_over_cap(joined, window, tl, el, rl, head) -> bool:
    """Whether some joined op over the cap on its own also has its window (hw_models.power_solve.window_weights)
    over the cap at the top clock, for one step, in O(ops): a window's energy is the cumulative energy of the ops
    (each spread over its own time) at its end less at its start; the windows' ends only move forward along the
    ops. `joined`: the joined ops' positions in program order; tl, el, rl: top-clock times, energies beside
    static power, runs; `head`: cap - static."""
    seq, ends, cum, hot = [], [0.0], [0.0], False
    x = y = 0.0
    for i in joined:
        t = tl[i]
        if t > 0 and rl[i] > 0:
            e = el[i]
            seq.append((t, e))
            x += t
            y += e
            ends.append(x)
            cum.append(y)
            hot = hot or e > head * t
    if not hot:
        return False
    total, last = x, len(seq) - 1
    shift = total - window if total > window else 0.0
    pa = pb = 0
    for k, (t, e) in enumerate(seq):
        if e <= head * t:
            continue
        mid = ends[k] + 0.5 * t
        a = mid - 0.5 * window
        a = 0.0 if a < 0.0 else (shift if a > shift else a)
        b = a + window if a + window < total else total
        while pa < last and ends[pa + 1] <= a:
            pa += 1
        while pb < last and ends[pb + 1] <= b:
            pb += 1
        ea = cum[pa] + (cum[pa + 1] - cum[pa]) * (a - ends[pa]) / seq[pa][0]
        eb = cum[pb] + (cum[pb + 1] - cum[pb]) * (b - ends[pb]) / seq[pb][0]
        if eb - ea > head * (b - a):
            return True
    return False


def figures_lists(step, pw, cl, ml, ol, rl, El, act, kv, capacity, K, flops, nbytes, joined, EF=None):
    """One step's figures in sim.fastpath.FIELDS order, or None where the row path must answer (a step of no
    time). cl, ml, ol: compute, memory, fixed seconds of one run of each
    op at the top clock; rl: runs; El: energy of one run beside static power; act: activation bytes; kv: the KV
    storage quantity; K, flops, nbytes: El, FLOPs and bytes summed over the runs; `joined`: the ops the cap's
    windows follow in program order (linear_cost._joined_in_order); EF: the FLOP part of El, a list or a callable
    giving it (read only when the step is capped with clock-dependent energy)."""
    static, cap = pw.static, pw.cap
    head = cap - static
    top = [(c if c > m else m) + o for c, m, o in zip(cl, ml, ol)]
    latency = sum(map(mul, top, rl))
    if pw.sequenced:
        if (latency > 0 and static + K / latency > cap) or \
                (any(e > head * t for e, t in zip(El, top)) and
                 window_over_cap(joined, pw.window, top, El, rl, head)):
            EF = (EF() if callable(EF) else EF) if pw.clock_energy else None
            x = solve_sequence_lists(static, cap, pw.x_max, pw.window, pw.gamma, cl, ml, ol, rl, El, EF, joined, top)
            return _capped(step, pw, x, cl, ml, ol, rl, El, act, kv, capacity, flops, nbytes, top, EF)
    elif latency > 0:      # no sliding window: ops within the cap's window (if any) together, longer ones alone
        g = pw.gamma if pw.clock_energy else 0.0
        if g and callable(EF):
            EF = _once(EF)
        window = pw.window if pw.window > 0 else math.inf
        whole = (latency, K) if max(top) <= window else (None, None)    # no op longer than the window
        x = solve_window_lists(static, cap, pw.x_max, window, g, cl, ml, ol, rl, El, EF, top, *whole)
        if x is not None:
            return _capped(step, pw, x, cl, ml, ol, rl, El, act, kv, capacity, flops, nbytes, top,
                           (EF() if callable(EF) else EF) if g else None)
    if not latency > 0:
        return None
    energy = static * latency + K
    kinds = [2 if o > (c if c > m else m) else (1 if m > c else 0) for c, m, o in zip(cl, ml, ol)]
    bound = _bound(kinds, [t * r for t, r in zip(top, rl)])
    if step.moe:                                         # an expert class with no expert is not in the step
        dyn = [e / t for e, t, r in zip(El, top, rl) if r > 0]
        act = [a if r > 0 else 0.0 for a, r in zip(act, rl)]
    else:
        dyn = [e / t for e, t in zip(El, top)]
    peak = static + (max(dyn) if dyn else -math.inf)
    if peak > cap:
        peak = float(cap)
    if not peak >= pw.idle:
        peak = peak if peak != peak else float(pw.idle)
    avg = energy / latency
    needed = step.weight_storage + math.floor(kv * step.kv_factor) + max(act)
    fits = needed <= capacity if capacity else True
    return (latency, energy, avg, avg if avg > peak else peak, float(pw.f_max), False, bound, bool(fits), needed,
            capacity, flops, nbytes)


def _once(f):
    """f, called at most once (the FLOP energies, asked for by the solve and then by the figures)."""
    box = []

    def get():
        if not box:
            box.append(f())
        return box[0]
    return get


def _capped(step, pw, x, cl, ml, ol, rl, El, act, kv, capacity, flops, nbytes, top, EF):
    """`figures_lists` of a step the cap binds, at the ops' stretches x (`power_one`'s solve): `figures`'
    numbers (power_solve._finish's times, energies and clock). EF: the FLOP part of El, None at gamma 0."""
    static, cap, g = pw.static, pw.cap, pw.gamma
    f_max = pw.f_max
    latency = energy = clock_t = 0.0
    capped = False
    w = [0.0, 0.0, 0.0]
    p_max = -math.inf                                     # max(min(p, cap)) = min(max(p), cap)
    moe = step.moe
    for xi, r, c, m, o, t, e0, ef in zip(x, rl, cl, ml, ol, top, El, El if EF is None else EF):
        cx = c * xi
        if xi != 1.0:
            t = (cx if cx > m else m) + o
            e = static * t + e0
            if EF is not None:
                e = e - ef * (1.0 - xi ** -g)
            if xi > 1.0:
                capped = True
        else:
            e = static * t + e0
        tr = t * r
        latency += tr
        energy += e * r
        clock_t += (f_max / xi) * t * r
        w[2 if o > (cx if cx > m else m) else (0 if cx >= m else 1)] += tr
        if (not moe or r > 0) and e / t > p_max:
            p_max = e / t
    if not latency > 0:
        return None
    clock = clock_t / latency if capped else float(f_max)
    bound = BOUND_NAMES[0 if w[0] >= w[1] and w[0] >= w[2] else (1 if w[1] >= w[2] else 2)]
    if step.moe:
        act = [a if r > 0 else 0.0 for a, r in zip(act, rl)]
    avg = energy / latency
    peak = max(p_max if p_max < cap else float(cap), float(pw.idle))
    needed = step.weight_storage + math.floor(kv * step.kv_factor) + max(act)
    fits = needed <= capacity if capacity else True
    return (latency, energy, avg, avg if avg > peak else peak, clock, capped, bound, bool(fits), needed, capacity,
            flops, nbytes)
