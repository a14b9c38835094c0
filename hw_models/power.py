"""Power model: static power, energy per FLOP and per byte, and a power cap enforced by clock scaling.

Energy per operation may scale with the clock as (f / f_max)^gamma (lower clocks run at lower voltage;
the H100/H200 measurements fit best with gamma = 0).
When a step's average power at the maximum clock exceeds the cap, the clock is lowered (bisection)
until the average power fits: compute-bound work then takes longer, memory-bound work hardly changes.
This reproduces the measured behaviour of an H100 at its 700 W cap (prefill) and far below it (decode).
"""
from __future__ import annotations

from dataclasses import dataclass

POWER_DEFAULTS = {
    "static_w": 150.0,       # power drawn while busy, beyond the dynamic terms (clock tree, leakage, idle HBM)
    "e_flop_pj": 0.75,       # energy per FLOP (tensor cores and the operand path)
    "e_byte_pj": 130.0,      # energy per byte of DRAM traffic (HBM, L2 and SM load path together)
    "gamma": 0.0,            # energy-per-op scaling with clock, (f/f_max)^gamma; 0 fits H100/H200 data best
    "cap_per_op": 0.0,       # 1: every op must fit under the cap; 0: the step's average power must
    "cap_window_s": 0.0,     # ops longer than this fit under the cap on their own (the controller's window)
    "cap_sequence": 0.0,     # 1: the window slides over the step's layer ops in program order (power_solve)
    "host_wait_w": 0.0,      # W while the GPU waits for a host that issues kernels one by one (eager stacks);
                             # 0: static_w (an effective figure where fitted: benchmarks/host/fit_host_wait.py)
}


def host_wait_w(power) -> float:
    """Power of a GPU waiting between kernels for the host that issues them (host-issued stacks): the device's
    fitted `host_wait_w`, else its busy static power."""
    return float(power.p.get("host_wait_w") or power.p["static_w"])

# Per device class, over POWER_DEFAULTS (an H100 fit) where a preset has no calibration block.
# static_w None: the preset's idle_w (none of these parts publishes a busy floor). All are estimates:
# npu  e_flop from TPU v4 (Google: 90 W min, 192 W max at 275 TFLOPS -> <= 0.37 pJ/FLOP); e_byte HBM2
#      ~3.9 pJ/bit (O'Connor et al., MICRO'17) = 31 pJ/B plus on-chip movement.
# soc  LPDDR5X ~4-5 pJ/bit with PHY (40 pJ/B); NPU INT8 / GPU FP16 ~0.5 pJ/op at 4 nm.
# pim  in-bank column reads skip the TSV/PHY path: ~0.5 pJ/bit (O'Connor's HBM2 breakdown; Samsung runs
#      all-bank PIM inside the normal HBM power envelope); MAC units in DRAM process ~0.5 pJ/FLOP.
# fpga e_byte 80 pJ/B chosen so FlightLLM's U280 decode lands near its ~45 W (Fig. 1) and TeLLMe's KV260
#      near 4.8 W over their idle estimates (HBM/DDR + fabric routing); DSP op ~1 pJ at 16 nm.
# cpu  DDR5 ~15-20 pJ/bit with the cache hierarchy (150 pJ/B); ~5 pJ/FLOP between AMX and AVX-512.
CLASS_POWER_DEFAULTS = {
    "npu": {"static_w": None, "e_flop_pj": 0.35, "e_byte_pj": 40.0},
    "soc": {"static_w": None, "e_flop_pj": 0.5, "e_byte_pj": 40.0},
    "pim": {"static_w": None, "e_flop_pj": 0.5, "e_byte_pj": 4.0},
    "fpga": {"static_w": None, "e_flop_pj": 1.0, "e_byte_pj": 80.0},
    "cpu": {"static_w": None, "e_flop_pj": 5.0, "e_byte_pj": 150.0},
}


@dataclass(frozen=True)
class PowerPoint:
    clock_mhz: float
    time_s: float
    energy_j: float
    avg_power_w: float
    capped: bool


class PowerModel:
    def __init__(self, device, params: dict = None):
        cal = device.calibration.params if device.calibration else {}
        if not cal and device.device_class == "gpu":     # a user's GPU file with no calibration: datasheet estimate
            from .gpu_defaults import power_estimate
            cal = power_estimate(device)
        base = {**POWER_DEFAULTS, **CLASS_POWER_DEFAULTS.get(device.device_class, {})}
        self.p = {**base, **{k: v for k, v in cal.items() if k in POWER_DEFAULTS}, **(params or {})}
        if self.p["static_w"] is None:
            self.p["static_w"] = device.power.idle_w
        self.cap = device.power.tdp_w
        self.idle = device.power.idle_w
        self.f_max = device.power.extra.get("max_clock_mhz") or max(e.clock_mhz for e in device.engines.values())
        self.f_min = device.power.min_clock_mhz or self.f_max * 0.2

    def energy(self, time_s: float, flops: float, nbytes: float, clock_mhz: float) -> float:
        scale = (clock_mhz / self.f_max) ** self.p["gamma"]
        return (self.p["static_w"] * time_s + flops * self.p["e_flop_pj"] * 1e-12 * scale
                + nbytes * self.p["e_byte_pj"] * 1e-12)

    def solve(self, evaluate) -> PowerPoint:
        """evaluate(clock_mhz) -> (time_s, flops, bytes). Returns the operating point under the cap."""
        def point(f):
            t, flops, nbytes = evaluate(f)
            e = self.energy(t, flops, nbytes, f)
            return PowerPoint(f, t, e, e / t if t else self.idle, False)

        top = point(self.f_max)
        if top.avg_power_w <= self.cap:
            return top
        lo, hi = self.f_min, self.f_max
        for _ in range(30):
            mid = 0.5 * (lo + hi)
            if point(mid).avg_power_w > self.cap:
                hi = mid
            else:
                lo = mid
        p = point(lo)
        return PowerPoint(p.clock_mhz, p.time_s, p.energy_j, p.avg_power_w, True)


@dataclass(frozen=True)
class OperatingPoint:
    """Where a step runs under the power cap: per op (rows) and step (columns) the clock, the time and energy of
    one run; per step the latency, energy and time-weighted clock."""
    op_clock: object          # MHz, [ops, steps]
    op_time: object           # s of one run, [ops, steps]
    op_energy: object         # J of one run, [ops, steps]
    latency: object           # s, [steps]
    energy: object            # J, [steps]
    clock: object             # MHz, time-weighted, [steps]
    capped: object            # the cap pulled some op's clock below the maximum, [steps]


def _bisect(power, watts_at, shape):
    """The highest clock (to 2^-30 of the range) at which watts_at(clock) fits under the cap, per entry."""
    import numpy as np
    clock = np.full(shape, float(power.f_max))
    capped = watts_at(clock) > power.cap
    if not capped.any():
        return clock
    lo, hi = np.full(shape, float(power.f_min)), clock.copy()
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        over = watts_at(mid) > power.cap
        hi = np.where(over, mid, hi)
        lo = np.where(over, lo, mid)
    return np.where(capped, lo, clock)


def operating_point(power: "PowerModel", compute, memory, fixed, reps, flops, nbytes, joins=None) -> OperatingPoint:
    """The clock/power solution of many steps at once (arrays [ops, steps]; `reps` [ops] or [ops, steps]).

    At a lower clock only the compute part of an op stretches (as f_max / f). The power controller averages
    over a window (`cap_window_s`): an op longer than the window must fit under the cap on its own (its clock
    is solved alone); the shorter ops of a step share one clock, solved over their average power. Without a
    window the whole step shares one clock. With `cap_sequence` the window slides along the program instead
    (hw_models.power_solve.window_weights; `joins`: per op, whether it is one of the ops the windows follow, `joins_window`)."""
    import numpy as np
    compute, memory, fixed = (np.asarray(x, dtype=float) for x in (compute, memory, fixed))
    flops, nbytes = np.asarray(flops, dtype=float), np.asarray(nbytes, dtype=float)
    reps = np.asarray(reps, dtype=float)
    reps = reps.reshape(-1, 1) if reps.ndim < 2 else reps
    steps = memory.shape[1]
    if power.p["gamma"] != 0.0:
        return _solved_rows(power, compute, memory, fixed, reps, flops, nbytes, joins)
    if power.p.get("cap_sequence") and power.p.get("cap_window_s"):
        cols = [one_step(power, compute[:, j].tolist(), memory[:, j].tolist(), fixed[:, j].tolist(),
                         reps[:, min(j, reps.shape[1] - 1)].tolist(), flops[:, j].tolist(), nbytes[:, j].tolist(),
                         joins) for j in range(steps)]
        arr = lambda k: np.array([c[k] for c in cols], dtype=float).T
        return OperatingPoint(arr(0), arr(1), arr(2), np.array([c[3] for c in cols]), np.array([c[4] for c in cols]),
                              np.array([c[5] for c in cols]), np.array([c[6] for c in cols]))
    if steps == 1:
        return _one_step(power, compute[:, 0].tolist(), memory[:, 0].tolist(), fixed[:, 0].tolist(),
                         reps[:, 0].tolist(), flops[:, 0].tolist(), nbytes[:, 0].tolist())
    return _bisected(power, compute, memory, fixed, reps, flops, nbytes)


def _bisected(power, compute, memory, fixed, reps, flops, nbytes) -> OperatingPoint:
    """`operating_point` without cap_sequence by bisection on the clock (30 passes), any gamma: the steps' shared
    clock over their ops shorter than the window, each longer op's own. Arrays as `operating_point`'s."""
    import numpy as np

    def op_time(clock):
        return np.maximum(compute * (power.f_max / clock), memory) + fixed

    window = power.p.get("cap_window_s", 0.0)
    long = (np.maximum(compute, memory) + fixed > window) if window else np.zeros(memory.shape, dtype=bool)
    short = ~long
    s_flops, s_bytes = (flops * reps * short).sum(axis=0), (nbytes * reps * short).sum(axis=0)
    w_short = np.broadcast_to(reps * short, memory.shape)

    def step_watts(clock, cols=slice(None)):
        t = ((np.maximum(compute[:, cols] * (power.f_max / clock), memory[:, cols]) + fixed[:, cols])
             * w_short[:, cols]).sum(axis=0)
        return power.energy(t, s_flops[cols], s_bytes[cols], clock) / np.where(t > 0, t, 1.0)

    # the clock is solved only for the steps over the cap at the top clock (the others run at it)
    op_clock = np.full(memory.shape, float(power.f_max))
    over = np.flatnonzero(step_watts(float(power.f_max)) > power.cap)
    if over.size:
        op_clock[:, over] = _bisect(power, lambda clock: step_watts(clock, over), over.size)
    if long.any():
        def op_watts(c, at):
            t = np.maximum(compute[at] * (power.f_max / c), memory[at]) + fixed[at]
            return power.energy(t, flops[at], nbytes[at], c) / np.where(t > 0, t, 1.0)
        at = np.nonzero(long)
        hot = op_watts(float(power.f_max), at) > power.cap        # only long ops over the cap at the top clock
        op_clock[at] = float(power.f_max)
        if hot.any():
            at = tuple(i[hot] for i in at)
            op_clock[at] = _bisect(power, lambda c: op_watts(c, at), hot.sum())
    t1 = op_time(op_clock)
    e1 = power.energy(t1, flops, nbytes, op_clock)
    times = t1 * reps
    latency = times.sum(axis=0)
    energy = (e1 * reps).sum(axis=0)
    capped = (op_clock < power.f_max).any(axis=0)
    clock = np.where(capped, (op_clock * times).sum(axis=0) / np.where(latency > 0, latency, 1.0), power.f_max)
    return OperatingPoint(op_clock, t1, e1, latency, energy, clock, capped)


def _solved_rows(power, compute, memory, fixed, reps, flops, nbytes, joins) -> OperatingPoint:
    """`operating_point` with clock-dependent energy per FLOP (gamma != 0) through the row solver
    (hw_models.power_solve.solve, the closed form's segments with Newton's method inside one), the steps as rows:
    what the one-case fast path, sweeps and serving tables compute, so every path gives the same figures.
    `_sequence_bisected` is the independent reference it is tested against."""
    import numpy as np
    from .power_solve import power_arrays, solve
    pw = power_arrays([power])
    e_f, e_b = power.p["e_flop_pj"] * 1e-12, power.p["e_byte_pj"] * 1e-12
    T = lambda v: np.ascontiguousarray(np.asarray(v, dtype=float).T)
    c, m, o, fl, nb = T(compute), T(memory), T(fixed), T(flops), T(nbytes)
    w = T(np.broadcast_to(reps, memory.shape)) if reps.shape[1] > 1 else reps[:, 0]
    EF = fl * e_f
    E = EF + nb * e_b
    x, times, energies, latency, energy, clock, capped = solve(pw, c, m, o, w, E, None, joins, EF)
    if x is None:
        x = np.ones_like(c)
    clocks = power.f_max / x
    return OperatingPoint(clocks.T, np.asarray(times).T, np.asarray(energies).T, np.asarray(latency),
                          np.asarray(energy), np.asarray(clock, dtype=float) * np.ones(len(c)), np.asarray(capped))


def _sequence_bisected(power, compute, memory, fixed, reps, flops, nbytes, joins) -> OperatingPoint:
    """`operating_point` under cap_sequence with clock-dependent energy per op (gamma != 0), by bisection on the
    clock, step by step: each hot joined op's floor clock brings its window under the cap
    (hw_models.power_solve.window_weights, window_hot), then one step clock brings the step under it; an op runs at
    the lower of the two. With gamma = 0 the closed form (power_solve) gives the same to rounding."""
    import numpy as np
    from .power_solve import power_arrays, window_hot, window_weights
    f_max, cap = float(power.f_max), power.cap
    n, steps = memory.shape
    pw = power_arrays([power])
    out = []
    for j in range(steps):
        c, m, o, fl, nb = compute[:, j], memory[:, j], fixed[:, j], flops[:, j], nbytes[:, j]
        r = reps[:, min(j, reps.shape[1] - 1)]
        top = np.maximum(c, m) + o
        E = power.energy(np.zeros(n), fl, nb, f_max)
        F = window_weights(np.where(r > 0, top, 0.0)[None, :], joins, float(power.p["cap_window_s"]))
        hot = window_hot(pw, top[None, :], E[None, :], F)[0][0]
        floor = np.full(n, f_max)
        for i in np.flatnonzero(hot):
            w = F[0, i]
            wf, wb = float(w @ fl), float(w @ nb)

            def window_watts(f, w=w, wf=wf, wb=wb):
                f = float(f[0])
                t = float(w @ (np.maximum(c * (f_max / f), m) + o))
                return np.array([power.energy(t, wf, wb, f) / t])
            floor[i] = float(_bisect(power, window_watts, 1)[0])

        def step_watts(f):
            clk = np.minimum(float(f[0]), floor)
            t = np.maximum(c * (f_max / clk), m) + o
            return np.array([float(r @ power.energy(t, fl, nb, clk)) / max(float(r @ t), 1e-300)])
        fs = float(_bisect(power, step_watts, 1)[0])
        clk = np.minimum(fs, floor)
        t1 = np.maximum(c * (f_max / clk), m) + o
        e1 = power.energy(t1, fl, nb, clk)
        lat, en = float(r @ t1), float(r @ e1)
        capped = bool((clk < f_max).any())
        out.append((clk, t1, e1, lat, en, float((clk * t1) @ r / lat) if capped and lat > 0 else f_max, capped))
    arr = lambda k: np.array([x[k] for x in out], dtype=float).T
    return OperatingPoint(arr(0), arr(1), arr(2), np.array([x[3] for x in out]), np.array([x[4] for x in out]),
                          np.array([x[5] for x in out]), np.array([x[6] for x in out]))


def joins_window(op) -> bool:
    """Whether an op is one the sliding window follows (`cap_sequence`): the layers' token-wise ops (norms,
    projections, dense MLP, elementwise), whose runs of GEMMs are what meets the cap. Attention (its time set by
    the context), the LM head and routed experts stay in the step's shared pool, as do windows under the cap:
    a step priced from parts (the serving tables) then sees the same windows as the whole step."""
    from .moe import expert_of
    return op.kind != "attention" and not op.name.startswith("lm_head") and expert_of(op.name) is None


def one_step(power, compute, memory, fixed, reps, flops, nbytes, joins=None) -> tuple:
    """The operating point of one step with clock-independent energy per operation (gamma = 0), in closed form
    and plain Python (lists of a few dozen ops: cheaper than numpy calls). The step's power is
    static + K / T(x), so the cap holds once the time T reaches K / (cap - static).
    Returns (op clocks, op times, op energies, latency, energy, clock, capped)."""
    from .power_solve import _stretch_scalar
    f_max, static, cap = power.f_max, power.p["static_w"], power.cap
    e_f, e_b = power.p["e_flop_pj"] * 1e-12, power.p["e_byte_pj"] * 1e-12
    window = power.p.get("cap_window_s", 0.0)
    n = len(compute)
    top = [max(c, m) + o for c, m, o in zip(compute, memory, fixed)]
    long = [bool(window) and t > window for t in top]

    def solve(idx):
        t_top = sum(reps[i] * top[i] for i in idx)
        k = sum(reps[i] * (flops[i] * e_f + nbytes[i] * e_b) for i in idx)
        if not idx or t_top <= 0 or static + k / t_top <= cap:
            return 1.0
        if cap <= static:
            return f_max / power.f_min
        return _stretch_scalar([(reps[i], compute[i], memory[i], fixed[i], 0.0, flops[i] * e_f + nbytes[i] * e_b)
                                for i in idx], cap - static, 0.0, f_max / power.f_min)

    if window and power.p.get("cap_sequence"):
        # each joined op's window (hw_models.power_solve.window_weights), as the row solver does it for one step
        import numpy as np
        from .power_solve import _solve_sequence_one, power_arrays
        arr = lambda v: np.asarray(v, dtype=float)
        x = _solve_sequence_one(power_arrays([power]), arr(compute), arr(memory), arr(fixed), arr(reps),
                                arr([f * e_f + b * e_b for f, b in zip(flops, nbytes)]), None, None, joins)
    else:
        short = [i for i in range(n) if not long[i]]
        xs = solve(short)
        x = [solve([i]) if long[i] else xs for i in range(n)]
    clocks = [f_max / xi for xi in x]
    times = [max(c * xi, m) + o if xi != 1.0 else t for c, m, o, xi, t in zip(compute, memory, fixed, x, top)]
    energies = [static * t + f * e_f + b * e_b for t, f, b in zip(times, flops, nbytes)]
    latency = sum(t * r for t, r in zip(times, reps))
    energy = sum(e * r for e, r in zip(energies, reps))
    capped = any(xi > 1.0 for xi in x)
    clock = sum(f * t * r for f, t, r in zip(clocks, times, reps)) / latency if capped and latency > 0 else f_max
    return clocks, times, energies, latency, energy, clock, capped


def _one_step(power, compute, memory, fixed, reps, flops, nbytes) -> OperatingPoint:
    import numpy as np
    clocks, times, energies, latency, energy, clock, capped = one_step(power, compute, memory, fixed, reps, flops,
                                                                     nbytes)
    col = lambda v: np.array(v, dtype=float)[:, None]
    return OperatingPoint(col(clocks), col(times), col(energies), np.array([latency]), np.array([energy]),
                          np.array([clock]), np.array([capped]))
