"""The power cap over a sliding window of the op sequence (a proposal for hw_models/power.py and sim/predict.py).

Today (sim/predict.py `_capped_by_window`) an op longer than the controller's window is held under the cap on its
own and every shorter op shares ONE clock solved over the whole step's average power. In a long prefill step the
GEMMs of a layer (each shorter than the window, together several windows long) then borrow the low power of the
norms and elementwise kernels of the whole step: the step runs near the top clock although the GPU's controller,
which averages over a few milliseconds, holds the GEMM-dense stretches of every layer at the cap.

`windowed_step` cuts the op sequence of one layer (in execution order; repeated layers share one sequence) into
consecutive windows of at least `window_s` seconds at the top clock, and solves one clock per window so that the
window's average power fits under the cap. A step shorter than the window behaves as today (one clock); an op
longer than the window is its own window (as today). Costs are taken at the top clock and stretched as
sim/predict.py does (compute x f_max / f, memory and fixed parts unchanged).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WindowedPoint:
    time_s: float
    energy_j: float
    clock_mhz: float        # time-weighted
    capped: bool
    windows: int


def _windows(items, window_s):
    """Split [(cost, op)] into consecutive lists whose top-clock time reaches window_s (the last may be shorter:
    it joins the previous one)."""
    out, cur, acc = [], [], 0.0
    for it in items:
        cur.append(it)
        acc += it[0].time_s
        if acc >= window_s:
            out.append(cur)
            cur, acc = [], 0.0
    if cur:
        if out:
            out[-1].extend(cur)
        else:
            out.append(cur)
    return out


def windowed_step(graph, model, power, window_s: float) -> WindowedPoint:
    """Step time, energy and clock with the cap held over windows of `window_s` (see the module docstring)."""
    f_max = power.f_max
    costs = [(model.cost(op, f_max), op) for op in graph.ops]
    # one sequence per repeat count (the decoder layers repeat; embedding, final norm and head run once)
    by_repeat = {}
    for c, op in costs:
        by_repeat.setdefault(op.repeat, []).append((c, op))
    t = e = ft = 0.0
    capped, n = False, 0
    for reps, items in by_repeat.items():
        for win in _windows(items, window_s if window_s > 0 else float("inf")):
            flops = sum(model.energy_flops(op) for _, op in win)
            nbytes = sum(c.bytes for c, _ in win)

            def evaluate(f, win=win, flops=flops, nbytes=nbytes):
                s = f_max / f
                return sum(max(c.compute_s * s, c.memory_s) + c.overhead_s for c, _ in win), flops, nbytes
            pt = power.solve(evaluate)
            t += pt.time_s * reps
            e += pt.energy_j * reps
            ft += pt.clock_mhz * pt.time_s * reps
            capped |= pt.capped
            n += 1
    return WindowedPoint(t, e, ft / t if t else f_max, capped, n)
