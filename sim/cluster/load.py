"""Load over long spans: each priority class's request rate per server over days and weeks, and requests drawn from it.

rate(t) = peak_rps x diurnal(t) x burst(t), per server of the class:

- diurnal(t): a daily cosine between `trough` (fraction of the peak, at peak_hour + 12 h) and 1 (at `peak_hour`),
  times `weekend` on days 6 and 7 of each week. The week-long Azure 2024 traces that would give this shape are not in
  this repository (only the one-hour 2023 traces are), so the shape is an assumption with its parameters exposed;
- burst(t): the minute-scale burstiness of a public trace (the Azure LLM inference traces 2023, `azure-conv-2023` or
  `azure-code-2023`): its arrivals per second over its hour, averaged over `burst_window_s`, normalised to mean 1,
  its deviations scaled by `burst_scale`, and tiled over longer spans with a seeded random offset per hour.

With a week-long trace (`azure-code-2024`, `azure-conv-2024`: the Azure LLM inference traces 2024, a user's
downloaded copy found by workloads/azure2024.py, or the path of a CSV in their format) the trace itself gives the
shape over days: its arrivals per second, smoothed over an hour (the slow part, which replaces the cosine: `trough`,
`peak_hour` and `weekend` do not apply) plus `burst_scale` x (its arrivals smoothed over `burst_window_s` minus the
slow part), scaled so that the busiest hour of the trace is `peak_rps`; run time 0 is the trace's first request, and
runs longer than the trace tile it.

Requests (for the full path) are a non-homogeneous Poisson stream at rate(t) per server (thinning), each given a
(prompt, output) pair drawn from the same trace (pairs kept together), clipped to the model's context; POLCA reports
that prompt length drives peak power and output length does not, so the trace's prompt mix is what matters and
`prompt_scale` stretches it. The aggregate path uses rate(t) itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workloads.errors import HwsimError

from . import serving_load as door

DAY = 86400.0
TRACES = ("azure-conv-2023", "azure-code-2023")
WEEK_TRACES = ("azure-code-2024", "azure-conv-2024")

# The POLCA study's load calibration (studies/polca.py, step 1, `shape_load`): the load shaped so that an uncapped
# 40-server DGX A100 row of Llama-2-70B TP8 servers peaks at 79% of its budget and its 40-s mean power rises at most
# 11.8% between windows: requests/s per server at the diurnal peak, and the scale of the Azure 2023 traces' minute-
# scale bursts. `hwsim power` takes them as its default load; the study prints its shaped load against them. Inputs,
# not results. From the study's 2026-12-07 run on its fixed rate grid (RATE_GRID, extended to 12 req/s that day),
# the first with tables built by the current code (the table cache is keyed by the model's code and presets since):
# shaped 3.850 req/s, burst 0.376. Before: 3.05 / 0.29 (2026-12-06), which the DGX A100 NCCL refit later that day
# (e7b6092: faster TP8 collectives, so less power per request) had left stale while cached tables hid it.
# To regenerate: `python -m studies.polca` (5-15 minutes; step 1 prints "load: X req/s per server at the daily peak,
# burst scale Y") and copy X and Y (2 decimals) here.
POLCA_PEAK_RPS = 3.85
POLCA_BURST_SCALE = 0.38


def is_week(trace: str) -> bool:
    """A week-long trace (its own diurnal shape): a 2024 name or a file path."""
    return trace not in TRACES


def trace_key(trace: str) -> str:
    """What identifies a trace's content in cache keys (a path: its name, size and modification time)."""
    if trace in TRACES:
        return trace
    from workloads import azure2024
    return azure2024.trace_id(trace)


@dataclass(frozen=True)
class LoadShape:
    trace: str = "azure-conv-2023"
    peak_rps: float = 1.0             # requests per second per server at the diurnal peak (before bursts)
    trough: float = 0.45
    peak_hour: float = 14.0
    weekend: float = 0.85
    burst_window_s: float = 60.0
    burst_scale: float = 1.0
    prompt_scale: float = 1.0
    seed: int = 0

    def check(self):
        if self.trace not in TRACES:
            from pathlib import Path
            from workloads import azure2024
            if self.trace not in WEEK_TRACES and not Path(self.trace).is_file():
                raise HwsimError(f"unknown trace '{self.trace}'; choose one of {', '.join(TRACES + WEEK_TRACES)} or "
                                 f"give the path of a CSV in the Azure 2024 format")
            azure2024.resolve(self.trace)
        if not (self.peak_rps > 0 and np.isfinite(self.peak_rps)):
            raise HwsimError(f"the peak rate must be positive, got {self.peak_rps}")
        if not 0 <= self.trough <= 1 or not 0 <= self.weekend <= 1.5:
            raise HwsimError("trough must be in [0, 1] and weekend in [0, 1.5]")
        if self.burst_window_s < 1 or self.burst_scale < 0 or self.prompt_scale <= 0:
            raise HwsimError("burst window must be >= 1 s, burst scale >= 0, prompt scale > 0")
        return self

    def with_(self, **kw) -> "LoadShape":
        from dataclasses import replace
        return replace(self, **kw)


_BURST = {}
_PAIRS = {}


def _table(name: str):
    if name in TRACES:
        return door.trace(name)
    from workloads import azure2024
    return azure2024.read(name)


def _smooth(counts: np.ndarray, w: int) -> np.ndarray:
    """Moving mean over w seconds, centred, circular (the trace is tiled)."""
    n = len(counts)
    w = max(min(int(w), n), 1)
    padded = np.concatenate([counts[n - w:], counts, counts[:w]])
    c = np.concatenate([[0.0], np.cumsum(padded)])
    lo = np.arange(n) + w - w // 2
    return (c[lo + w] - c[lo]) / w


_WEEK = {}


def _week_profile(name: str, window: float):
    """(slow, fast) arrivals per second of a week-long trace: smoothed over an hour and over `window` seconds,
    both divided by the slow curve's maximum (its busiest hour = 1)."""
    key = (trace_key(name), window)
    if key not in _WEEK:
        t = _table(name).arrival_s.to_numpy()
        n = int(np.ceil(t.max())) + 1
        counts = np.bincount(t.astype(np.int64), minlength=n).astype(float)
        slow = _smooth(counts, 3600)
        fast = _smooth(counts, window)
        top = float(slow.max())
        _WEEK[key] = (slow / top, fast / top)
    return _WEEK[key]


def _trace_burst(name: str, window: float) -> np.ndarray:
    key = (name, window)
    if key not in _BURST:
        df = _table(name)
        t = df.arrival_s.to_numpy()
        n = int(np.ceil(t.max())) + 1
        counts = np.bincount(t.astype(int), minlength=n).astype(float)
        w = max(int(window), 1)
        kernel = np.ones(w) / w
        padded = np.concatenate([counts[-w:], counts, counts[:w]])          # circular, the hour is tiled
        smooth = np.convolve(padded, kernel, mode="same")[w:w + n]
        _BURST[key] = smooth / smooth.mean()
    return _BURST[key]


def trace_pairs(name: str) -> np.ndarray:
    if name not in _PAIRS:
        df = _table(name)
        _PAIRS[name] = np.stack([df.prompt_tokens.to_numpy(), df.output_tokens.to_numpy()], axis=1).astype(np.int64)
    return _PAIRS[name]


def diurnal(shape: LoadShape, t) -> np.ndarray:
    t = np.asarray(t, dtype=float)
    hour = (t % DAY) / 3600.0
    d = shape.trough + (1.0 - shape.trough) * (0.5 + 0.5 * np.cos(2 * np.pi * (hour - shape.peak_hour) / 24.0))
    day = (t // DAY) % 7
    return d * np.where(day >= 5, shape.weekend, 1.0)


def burst(shape: LoadShape, t) -> np.ndarray:
    b = _trace_burst(shape.trace, shape.burst_window_s)
    n = len(b)
    t = np.asarray(t, dtype=float)
    hours = (t // 3600.0).astype(np.int64)
    rng = np.random.default_rng(shape.seed + 7919)
    top = int(hours.max()) + 1 if hours.size else 1
    offsets = rng.integers(0, n, size=top)
    idx = ((t % 3600.0).astype(np.int64) + offsets[hours]) % n
    return 1.0 + shape.burst_scale * (b[idx] - 1.0)


def rate(shape: LoadShape, t, start_s: float = 0.0) -> np.ndarray:
    """Requests per second per server at times t (s from the start of the run; `start_s` is the run's offset into
    the week, so a one-hour window can sit at the daily peak)."""
    tt = np.asarray(t, dtype=float) + start_s
    if is_week(shape.trace):
        slow, fast = _week_profile(shape.trace, shape.burst_window_s)
        i = tt.astype(np.int64) % len(slow)
        return np.maximum(shape.peak_rps * (slow[i] + shape.burst_scale * (fast[i] - slow[i])), 0.0)
    return np.maximum(shape.peak_rps * diurnal(shape, tt) * burst(shape, tt), 0.0)


def requests(shape: LoadShape, servers: list, duration_s: float, max_total: int, start_s: float = 0.0,
             seed: int = 0) -> "door.pd.DataFrame":
    """A request table for the servers of one class over [0, duration_s): columns of workloads/requests.py plus
    `server`. Arrivals by thinning a Poisson stream at the peak bound, independently per server."""
    shape.check()
    rng = np.random.default_rng([seed, shape.seed, len(servers)])
    grid = np.arange(0.0, duration_s + 1.0, 1.0)
    lam = rate(shape, grid, start_s)
    bound = float(lam.max()) * 1.05 + 1e-9
    pairs = trace_pairs(shape.trace)
    out_t, out_s, out_p, out_o = [], [], [], []
    for s in servers:
        n = rng.poisson(bound * duration_s)
        t = np.sort(rng.uniform(0.0, duration_s, n))
        keep = rng.uniform(0.0, bound, n) < np.interp(t, grid, lam)
        t = t[keep]
        pick = pairs[rng.integers(0, len(pairs), len(t))]
        prompt = np.maximum(np.rint(pick[:, 0] * shape.prompt_scale).astype(np.int64), 1)
        output = np.maximum(pick[:, 1], 1)
        output = np.minimum(output, max_total // 4)
        prompt = np.minimum(prompt, max_total - output - 1)
        out_t.append(t)
        out_s.append(np.full(len(t), s))
        out_p.append(prompt)
        out_o.append(output)
    t = np.concatenate(out_t) if out_t else np.zeros(0)
    order = np.argsort(t, kind="stable")
    if len(t) == 0:
        raise HwsimError("the load draws no requests in this span; raise the rate or the duration")
    df = door.request_frame(t[order], np.concatenate(out_p)[order], np.concatenate(out_o)[order])
    df["server"] = np.concatenate(out_s)[order]
    return df


def poisson_requests(shape: LoadShape, rps: float, duration_s: float, max_total: int, seed: int = 0):
    """A steady Poisson stream at `rps` with the shape's length mix (the aggregate path's table runs)."""
    rng = np.random.default_rng([seed, shape.seed, int(rps * 1000)])
    n = max(int(rng.poisson(rps * duration_s)), 1)
    t = np.sort(rng.uniform(0.0, duration_s, n))
    pairs = trace_pairs(shape.trace)
    pick = pairs[rng.integers(0, len(pairs), n)]
    prompt = np.maximum(np.rint(pick[:, 0] * shape.prompt_scale).astype(np.int64), 1)
    output = np.minimum(np.maximum(pick[:, 1], 1), max_total // 4)
    prompt = np.minimum(prompt, max_total - output - 1)
    return door.request_frame(t, prompt, output)
