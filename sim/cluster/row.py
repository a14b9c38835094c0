"""A row of servers under a power budget, run two ways.

- `run_full`: every server's serving iterations in one event loop (sim/cluster/serving_load.py), the controller
  consulted at each iteration, telemetry every 100 ms; exact, and minutes per row-hour.
- `run_aggregate`: a time-stepped path for days and weeks. Per priority class, per knob setting the controller can
  emit, and on a grid of request rates, one server is served for a while by the same serving simulation
  (`build_tables`); the tables keep the distribution of the server's 1-s wall power (quantiles and lag-1
  autocorrelation), its request latencies, GPU-busy seconds and tokens. The row then steps in 1-s steps: each server's
  power is drawn from its table at its current rate and setting (an AR(1) Gaussian copula over the quantiles, with
  common random numbers across settings), the row's power feeds the controller, and latencies and throughput are
  mixed over the steps with the requests as weights. `check_aggregate` compares it with `run_full` on one window.

Both return a `PowerResult` (sim/cluster/metrics.py).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from workloads.errors import HwsimError

from . import serving_load as door
from .control import PRIORITIES, Controller, FullPathControl, make_controller
from .load import LoadShape, poisson_requests, rate, requests
from .metrics import PowerResult, latency_stats, row_stats
from .serving_load import NO_KNOBS, Deployment, Knobs

QUANTILES = np.linspace(0.0, 1.0, 41)
TABLE_VERSION = 7           # 7: first_s and gen_s (a request's first token after admission, its generation)
LAT_METRICS = ("ttft_s", "tpot_s", "e2e_s")          # reported per class
PART_METRICS = ("first_s", "gen_s")                 # parts of a request's time the queue model puts together


@dataclass(frozen=True)
class RowSpec:
    server: str = "dgx-a100-80gb"
    servers: int = 40
    budget_servers: float = None      # budget as a number of provisioned servers ("budget=40x")
    budget_w: float = None            # or in watts
    high_fraction: float = 0.5
    high: Deployment = Deployment()
    low: Deployment = Deployment()
    high_load: LoadShape = LoadShape(trace="azure-conv-2023")
    low_load: LoadShape = LoadShape(trace="azure-code-2023")

    def server_spec(self):
        from hw_models.servers import load_server
        return load_server(self.server)

    def budget(self) -> float:
        s = self.server_spec()
        if self.budget_w:
            return float(self.budget_w)
        return float(self.budget_servers or self.servers) * s.provisioned_w

    def check(self):
        if self.servers < 1:
            raise HwsimError(f"a row needs at least one server, got {self.servers}")
        if not 0.0 <= self.high_fraction <= 1.0:
            raise HwsimError(f"high-priority fraction must be in [0, 1], got {self.high_fraction}")
        if self.budget() <= 0:
            raise HwsimError("the row budget must be positive")
        self.high_load.check()
        self.low_load.check()
        self.high.check()
        self.low.check()
        return self

    def classes(self) -> dict:
        """{priority: (Deployment, LoadShape, [server indices])}, classes without servers left out."""
        n_high = int(round(self.servers * self.high_fraction))
        out = {}
        if n_high:
            out["high"] = (self.high, self.high_load, list(range(n_high)))
        if self.servers - n_high:
            out["low"] = (self.low, self.low_load, list(range(n_high, self.servers)))
        return out

    def oversubscription(self) -> float:
        return self.servers * self.server_spec().provisioned_w / self.budget()

    def describe(self) -> dict:
        s = self.server_spec()
        return {"server": s.id, "servers": self.servers, "budget_w": self.budget(),
                "budget_servers": self.budget() / s.provisioned_w, "oversubscription": round(self.oversubscription(), 4),
                "high_fraction": self.high_fraction,
                "high": asdict(self.high), "low": asdict(self.low),
                "high_load": asdict(self.high_load), "low_load": asdict(self.low_load)}


def _context(dep: Deployment) -> int:
    return door.max_context(dep.model)


# --- full path -----------------------------------------------------------------------------------------------
def run_full(spec: RowSpec, controller: Controller = None, duration_s: float = 600.0, start_s: float = 0.0,
             sample_s: float = 0.1, telemetry_delay_s: float = 0.0, seed: int = 0, progress=None,
             warmup_s: float = 120.0) -> PowerResult:
    """The row served request by request for `duration_s` from `start_s` (seconds into the week). The servers start
    `warmup_s` earlier, idle and empty; that warm-up is left out of every statistic (power, energy, latency), and
    requests still running at the end are run to completion (their tail is left out too)."""
    spec.check()
    if warmup_s < 0 or duration_s <= 0 or sample_s <= 0:
        raise HwsimError("duration and sample period must be positive and the warm-up >= 0")
    warmup_s = math.ceil(warmup_s / sample_s) * sample_s
    server = spec.server_spec()
    controller = (controller or make_controller("none")).fit(server)
    controller.reset()
    classes = spec.classes()
    frames = []
    for prio, (dep, shape, idx) in classes.items():
        df = requests(shape, idx, duration_s + warmup_s, _context(dep), start_s - warmup_s, seed)
        df["priority"] = prio
        frames.append(df)
    import pandas as pd
    reqs = pd.concat(frames).sort_values("arrival_s", kind="stable").reset_index(drop=True)
    ctl = None
    if controller.name != "none":
        ctl = FullPathControl(controller, spec.budget(), sample_s, telemetry_delay_s)
    t0 = time.perf_counter()
    run = door.run_row(server, {p: (dep, idx) for p, (dep, _, idx) in classes.items()}, reqs, ctl, sample_s, progress)
    dts = np.diff(run.edges)
    keep = (run.edges[:-1] >= warmup_s - 1e-9) & (run.edges[1:] <= warmup_s + duration_s + 1e-9)
    wall = server.wall_w(run.gpu_energy[:, keep] / dts[keep][None, :])          # [servers, T]
    server_energy = (wall * dts[keep][None, :]).sum(axis=1)
    lat = {}
    table = run.requests
    window = (table.arrival_s >= warmup_s) & (table.arrival_s < warmup_s + duration_s)
    for prio in classes:
        df = table[(table.priority == prio) & window]
        done = df[df.finish_s.notna()]
        reps = [r for r, p in run.replicas if p == prio]
        tokens = float(done.prompt_tokens.sum() + done.output_tokens.sum())
        busy = door.busy_between(reps, warmup_s, warmup_s + duration_s)
        ref_busy = door.uncapped_busy_between(reps, warmup_s, warmup_s + duration_s)
        lat[prio] = latency_stats({"ttft_s": done.ttft_s.to_numpy(), "tpot_s": done.tpot_s.dropna().to_numpy(),
                                   "e2e_s": done.e2e_s.to_numpy()})
        lat[prio].update({"requests": int(len(df)), "completed": int(len(done)), "tokens": tokens,
                          "gpu_busy_s": busy, "tokens_per_busy_gpu_s": door.work_between(reps, warmup_s,
                                                                                        warmup_s + duration_s) / max(busy, 1e-12),
                          "uncapped_busy_s": ref_busy, "work_rate": ref_busy / busy if busy > 0 else float("nan")})
    return PowerResult(path="full", spec=spec.describe(), policy=controller.name, policy_params=controller.params(),
                       dt=sample_s, row_w=wall.sum(axis=0), server_energy_j=server_energy, events=list(controller.events),
                       classes=lat, budget_w=spec.budget(), duration_s=float(wall.shape[1] * sample_s),
                       wall_s=time.perf_counter() - t0, extra={"requests": table, "warmup_s": warmup_s})


# --- aggregate path: tables ----------------------------------------------------------------------------------
@dataclass
class Table:
    rates: np.ndarray                 # [J] requests/s per server
    settings: list                    # [K] Knobs
    power_q: np.ndarray               # [K, J, Q] wall W of 1-s windows, at QUANTILES
    rho: np.ndarray                   # [K, J] lag-1 autocorrelation of the 1-s wall power
    lat_q: dict                       # metric -> [K, J, Q] seconds at QUANTILES (LAT_METRICS + PART_METRICS)
    busy: np.ndarray                  # [K, J] GPU-busy seconds per second
    tokens: np.ndarray                # [K, J] tokens processed per second
    ref_busy: np.ndarray              # [K, J] GPU-busy seconds per second the same iterations take uncapped
    build_s: float = 0.0


def _cache_dir() -> Path:
    return Path(os.environ.get("HWSIM_CACHE", Path.home() / ".cache" / "hwsim")) / "cluster"


_MODEL_DIGEST = None


def model_digest() -> str:
    """A digest of everything a table's numbers come from besides its key's arguments: the cost and power models,
    the presets (GPUs, servers, systems, hosts, stacks), the simulator (serving, cluster and what they import) and the
    traced workloads. Without it a table cached by older code was reused after the model changed (the POLCA study
    shaped its load on tables that no longer matched the serving costs)."""
    global _MODEL_DIGEST
    if _MODEL_DIGEST is None:
        from workloads.template import code_digest
        root = Path(__file__).resolve().parents[2]
        h = hashlib.sha1(code_digest().encode())
        for folder, pattern in (("hw_models", "*.py"), ("hw_models", "*.yaml"), ("mapping", "*.py"),
                                ("sim", "*.py")):     # all of sim: the serving step imports sim.predict, and more may
            for path in sorted((root / folder).rglob(pattern)):
                h.update(path.relative_to(root).as_posix().encode())
                h.update(path.read_bytes())
        _MODEL_DIGEST = h.hexdigest()[:16]
    return _MODEL_DIGEST


def _key(server, dep, shape, settings, rates, window_s, warmup_s, seed) -> str:
    from .load import trace_key
    lengths = {"trace": trace_key(shape.trace), "prompt_scale": shape.prompt_scale, "seed": shape.seed}   # all it uses
    blob = json.dumps([TABLE_VERSION, model_digest(), server.id, server.gpu_power, asdict(dep), lengths,
                       [asdict(k) for k in settings], list(map(float, rates)), window_s, warmup_s, seed],
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


_TABLES = {}


def build_tables(server, dep: Deployment, shape: LoadShape, settings: list, rates, window_s: float = 300.0,
                 warmup_s: float = 60.0, seed: int = 0, cache: bool = True) -> Table:
    rates = np.asarray(sorted(set(float(r) for r in rates)), dtype=float)
    key = _key(server, dep, shape, settings, rates, window_s, warmup_s, seed)
    if key in _TABLES:
        return _TABLES[key]
    path = _cache_dir() / f"{key}.npz"
    if cache and path.is_file():
        try:
            z = np.load(path, allow_pickle=False)
            tab = Table(z["rates"], list(settings), z["power_q"], z["rho"],
                        {m: z[f"lat_{m}"] for m in LAT_METRICS + PART_METRICS}, z["busy"], z["tokens"],
                        z["ref_busy"], 0.0)
            _TABLES[key] = tab
            return tab
        except Exception:
            pass
    t0 = time.perf_counter()
    K, J, Q = len(settings), len(rates), len(QUANTILES)
    power_q = np.zeros((K, J, Q))
    rho = np.zeros((K, J))
    lat = {m: np.zeros((K, J, Q)) for m in LAT_METRICS + PART_METRICS}
    busy = np.zeros((K, J))
    tokens = np.zeros((K, J))
    ref_busy = np.zeros((K, J))
    ctx = _context(dep)
    idle = server.idle_wall_w
    total = warmup_s + window_s
    edges = np.arange(0.0, total + 1.0, 1.0)
    for j, r in enumerate(rates):
        if r <= 0:
            power_q[:, j, :] = idle
            continue
        reqs = poisson_requests(shape, r, total, ctx, seed)
        for k, knobs in enumerate(settings):
            energy, table, b, tok, ref = door.table_run(server, dep, reqs, knobs, edges, (warmup_s, total))
            w = server.wall_w(energy)[int(warmup_s):]
            power_q[k, j] = np.quantile(w, QUANTILES)
            if len(w) > 2 and np.std(w) > 0:
                rho[k, j] = float(np.corrcoef(w[:-1], w[1:])[0, 1])
            done = table[(table.arrival_s >= warmup_s) & table.finish_s.notna()]
            done = done.assign(first_s=done.ttft_s - done.queue_s.fillna(0.0), gen_s=done.e2e_s - done.ttft_s)
            for m in lat:
                vals = done[m].dropna().to_numpy()
                lat[m][k, j] = np.quantile(vals, QUANTILES) if len(vals) else np.nan
            busy[k, j] = b / window_s
            tokens[k, j] = tok / window_s
            ref_busy[k, j] = ref / window_s
    tab = Table(rates, list(settings), power_q, np.nan_to_num(rho), lat, busy, tokens, ref_busy,
                time.perf_counter() - t0)
    _TABLES[key] = tab
    if cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, rates=rates, power_q=power_q, rho=tab.rho, busy=busy, tokens=tokens, ref_busy=ref_busy,
                     **{f"lat_{m}": v for m, v in lat.items()})
            os.replace(tmp, path)
        except OSError:
            pass
    return tab


# The rates per server the aggregate path's lookup tables are built at: fixed, the same every run (it does not depend
# on where the load shaping goes), 0.25 req/s apart from idle through the saturation knee of a Llama-2-70B TP8 DGX A100
# server (about 4.5 req/s with code-trace lengths, 5 with conversation lengths: the serving simulation, uncapped),
# then coarser above for the bursts. Between points the aggregate path interpolates linearly. The POLCA study
# (studies/polca.py) builds its tables on it, and `check_aggregate` checks the aggregate path on it.
RATE_GRID = np.concatenate([np.arange(0.0, 6.0 + 1e-9, 0.25), [7.0, 8.0, 9.0, 10.0, 12.0]])


# rates past the load's highest, as multiples of it, on a grid of its own (`rate_grid`): where a server's capacity is
# under 3x the load's top they are saturated and the queue's capacity (`capacity`, its PLATEAU_POINTS highest rates)
# is read from them; a load whose top stays under a third of the capacity never queues, and its capacity reads
# unlimited. Without them a `hwsim power` row's tables stopped at its top and a load past capacity carried no queue
BEYOND_TOP = (1.5, 2.0, 2.5, 3.0)


def rate_grid(shape: LoadShape, duration_s: float, start_s: float, points: int = 7, top: float = None) -> np.ndarray:
    """Rates per server the tables are built at: 0 to the span's highest rate (or `top`), then BEYOND_TOP x it."""
    if top is None:
        t = np.arange(0.0, min(duration_s, 14 * 86400.0), 1.0)
        top = float(rate(shape, t, start_s).max()) if len(t) else shape.peak_rps
    return np.concatenate([np.linspace(0.0, top * 1.02, points), top * np.asarray(BEYOND_TOP)])


# --- aggregate path: the time-stepped row ---------------------------------------------------------------------
def _phi(z):
    """Standard normal CDF (Abramowitz-Stegun 7.1.26 on erf; |error| < 1.5e-7)."""
    x = np.abs(z) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * x)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * np.exp(-x * x)
    return 0.5 * (1.0 + np.sign(z) * y)


def _ar1(z0: np.ndarray, eps: np.ndarray, a: float):
    """z_t = a z_{t-1} + sqrt(1 - a^2) eps_t for every column, in blocks of 64 steps (a lower-triangular matrix of
    powers of a per block): [C, n] values and the last state."""
    C, n = eps.shape
    b = math.sqrt(max(1.0 - a * a, 0.0))
    L = 64
    i = np.arange(L)
    expo = i[:, None] - i[None, :]
    M = np.where(expo >= 0, a ** np.maximum(expo, 0), 0.0) * b
    carry = a ** (i + 1)
    out = np.empty((C, n))
    z = z0
    for s0 in range(0, C, L):
        e = eps[s0:s0 + L]
        m = len(e)
        blk = M[:m, :m] @ e + carry[:m, None] * z[None, :]
        out[s0:s0 + m] = blk
        z = blk[-1]
    return out, z


def _control_loop(controller, names, sums, ks, c0, C, dt, budget, delay=0.0):
    """The row's power step by step under a controller that reads it: [C] row watts; fills ks (setting per step)."""
    lists = {p: [x.tolist() for x in sums[p]] for p in names}
    kl = {p: [0] * C for p in names}
    out = [0.0] * C
    state, observe = controller.state, controller.observe
    for i in range(C):
        tt = (c0 + i) * dt
        st = state(tt)
        tot = 0.0
        for p in names:
            k = st[p]
            kl[p][i] = k
            tot += lists[p][k][i]
        out[i] = tot
        observe(tt + dt + delay, tot / budget)
    for p in names:
        ks[p][:] = kl[p]
    return np.asarray(out)


def _locate(grid, x):
    j = np.clip(np.searchsorted(grid, x, side="right") - 1, 0, len(grid) - 2)
    w = np.clip((x - grid[j]) / (grid[j + 1] - grid[j]), 0.0, 1.0)
    return j, w


# --- aggregate path: the queue carried from one step to the next ------------------------------------------------
WAIT_EDGES = np.concatenate([[0.0], 0.25 * 2.0 ** np.arange(15)])    # s: bins of the backlog wait, 0 .. ~68 min
PLATEAU_POINTS = 4  # the highest grid rates, where a setting serves its most whatever the load: its capacity
STEADY = 0.9        # a table point below this share of the capacity is a steady state, not a queue growing all window
UNSATURATED = 0.8   # table points below this share of the capacity give the tokens per request


def capacity(tab: Table):
    """Per knob setting: (mu, steady, top) -- mu the requests/s a server serves at most (its tokens processed per
    second on the PLATEAU_POINTS highest grid rates over the tokens per request of the points below UNSATURATED x
    the capacity, where every request arriving is served), or inf where the grid's top is not saturated; steady the
    index of the highest grid rate at or below STEADY x mu (a steady server's); top the index of the highest grid
    rate (a saturated server's). The tokens per request come from all the unsaturated points (thousands of
    requests): from the lowest quarter of the grid alone (a few hundred) they were 4% high on the code trace's
    lengths, and the capacity 4% low."""
    rates = tab.rates
    K, J = tab.tokens.shape
    top = J - 1
    on = rates > 0
    if on.sum() < PLATEAU_POINTS + 2:
        return np.full(K, np.inf), np.full(K, top), top
    mu, steady = [], []
    for k in range(K):
        plateau_tokens = float(np.median(tab.tokens[k, -PLATEAU_POINTS:]))
        low = on & (rates <= np.quantile(rates[on], 0.25))
        per_request = float(tab.tokens[k, low].sum() / rates[low].sum())       # a first guess, to find the knee
        if per_request > 0:
            below = on & (rates <= UNSATURATED * plateau_tokens / per_request)
            if below.sum() > low.sum():
                per_request = float(tab.tokens[k, below].sum() / rates[below].sum())
        plateau = plateau_tokens / per_request if per_request > 0 else np.inf
        m = plateau if plateau < 0.95 * rates[-PLATEAU_POINTS] else np.inf
        mu.append(m)
        steady.append(int(np.searchsorted(rates, STEADY * m, side="right") - 1) if np.isfinite(m) else top)
    return np.array(mu), np.maximum(np.array(steady), 0), top


def saturated_latency(tab: Table, metric: str, k: int, steady: int, top: int, wait: float,
                      saturated_s: float = np.inf) -> np.ndarray:
    """Latency quantiles of a request that arrives at a saturated server, waits `wait` s for the backlog ahead and
    is admitted with the server still saturated for `saturated_s` s: its first token comes a saturated server's
    admission-to-first-token time (`first_s` at the grid's top rate) after the wait; its tokens come at a saturated
    server's pace (the grid's top rate, where the batch stays full and waiting prompts keep interrupting the
    decodes) while the backlog lasts, and at a steady server's pace after (the generation beyond `saturated_s` is
    shortened by the ratio of the steady to the saturated median time per output token). End to end: the wait,
    the first token, the generation (quantiles added as if comonotone)."""
    lat = tab.lat_q
    if metric == "tpot_s":
        return lat["tpot_s"][k, top]
    first = wait + lat["first_s"][k, top]
    if metric == "ttft_s":
        return first
    gen = lat["gen_s"][k, top]
    sat, std = float(np.median(lat["tpot_s"][k, top])), float(np.median(lat["tpot_s"][k, steady]))
    r = min(std / sat, 1.0) if sat > 0 and np.isfinite(std) else 1.0
    d = max(float(saturated_s), 0.0)
    if not np.isfinite(d):
        return first + gen
    return first + np.where(gen <= d, gen, d + (gen - d) * r)


def saturation_left(b_end, dt: float):
    """Per step, how long its server stays saturated from the middle of the step: until the first step (this one or
    later) whose backlog is empty at its end, or the end of the steps given (the chunk) if none is."""
    C = len(b_end)
    idx = np.arange(C)
    z = np.where(np.asarray(b_end) <= 0, idx, C)
    nxt = np.minimum.accumulate(z[::-1])[::-1]
    return (np.minimum(nxt, C - 1) - idx + 0.5) * dt


def backlog_scan(lam, mu, b0: float, dt: float):
    """Per step, the backlog (requests per server) at its start and at its end: b(t+1) = max(0, b(t) + (lam - mu)
    dt), the Lindley recursion in closed form (cumulative sums), carried in from b0."""
    mu = np.asarray(mu, float)
    mu = np.where(np.isfinite(mu), mu, 1e12)          # no capacity limit on the grid: drains at once
    S = np.cumsum((np.asarray(lam, float) - mu) * dt)
    end = S - np.minimum(-b0, np.minimum.accumulate(S))
    start = np.concatenate([[b0], end[:-1]])
    return start, end


def run_aggregate(spec: RowSpec, controller: Controller = None, duration_s: float = 86400.0, start_s: float = 0.0,
                  dt: float = 1.0, seed: int = 0, tables: dict = None, window_s: float = 300.0, progress=None,
                  chunk_s: float = 3600.0, telemetry_delay_s: float = 0.0) -> PowerResult:
    """The row in `dt` steps for `duration_s` from `start_s` (seconds into the week). Telemetry is the row's power
    of each step, read `telemetry_delay_s` after the step ends."""
    spec.check()
    if dt <= 0 or duration_s <= 0 or telemetry_delay_s < 0:
        raise HwsimError("duration and step must be positive, the telemetry delay >= 0")
    server = spec.server_spec()
    controller = (controller or make_controller("none")).fit(server)
    controller.reset()
    classes = spec.classes()
    tables = tables if tables is not None else {}
    for prio, (dep, shape, idx) in classes.items():
        if prio not in tables:
            tables[prio] = build_tables(server, dep, shape, controller.settings[prio],
                                        rate_grid(shape, duration_s, start_s), window_s, seed=seed)
        elif len(tables[prio].settings) < len(controller.settings[prio]) or any(
                a != b for a, b in zip(controller.settings[prio], tables[prio].settings)):
            raise HwsimError(f"the {prio}-priority tables were built for other knob settings than {controller.name}'s")
    t0 = time.perf_counter()
    budget = spec.budget()
    steps = int(math.ceil(duration_s / dt))
    row = np.zeros(steps)
    srv_energy = np.zeros(spec.servers)
    rng = np.random.default_rng([seed, 424242])
    z = {p: rng.standard_normal(len(classes[p][2])) for p in classes}
    weights = {p: np.zeros((len(tables[p].settings), len(tables[p].rates))) for p in classes}
    # latency weights by (setting, rate point, wait bin), and the wait summed in each: a server whose offered rate
    # passes what its setting serves builds a backlog that later arrivals wait behind (the tables, fixed-rate
    # windows, carry no queue from one step to the next)
    nb = len(WAIT_EDGES)
    # by setting, wait bin and bin of how long the server stays saturated after the wait
    lat_w = {p: np.zeros((len(tables[p].settings), nb, nb)) for p in classes}       # arrivals over capacity
    lat_wait = {p: np.zeros((len(tables[p].settings), nb, nb)) for p in classes}    # their summed wait
    lat_sat = {p: np.zeros((len(tables[p].settings), nb, nb)) for p in classes}     # their summed saturated time
    caps = {p: capacity(tables[p]) for p in classes}
    backlog = {p: 0.0 for p in classes}
    queued = {p: [0.0, 0.0] for p in classes}          # server-seconds with a backlog, its peak (requests)
    work = {p: [0.0, 0.0, 0.0] for p in classes}     # tokens, busy GPU-s, the same work's uncapped busy GPU-s
    # per class and setting: server-seconds spent in it, busy GPU-s there and the same work's uncapped busy GPU-s:
    # where a policy's throughput loss comes from
    levels = {p: np.zeros((len(tables[p].settings), 3)) for p in classes}
    Q = len(QUANTILES) - 1
    names = list(classes)
    idle_rest = 0.0
    chunk = max(int(chunk_s / dt), 1)
    for c0 in range(0, steps, chunk):
        c1 = min(c0 + chunk, steps)
        C = c1 - c0
        t = (np.arange(c0, c1) + 0.5) * dt
        per = {}
        for p in names:
            dep, shape, idx = classes[p]
            tab = tables[p]
            lam = rate(shape, t, start_s)
            j, w = _locate(tab.rates, lam)
            rho = float(np.clip(np.median(tab.rho[0, 1:]) if tab.rho.shape[1] > 1 else 0.0, 0.0, 0.999))
            n = len(idx)
            eps = rng.standard_normal((C, n))
            a = rho ** (dt / 1.0)
            zz, z[p] = _ar1(z[p], eps, a)
            u = _phi(zz) * Q
            q = np.minimum(u.astype(np.int64), Q - 1)
            qw = u - q
            P = np.empty((len(tab.settings), C, n))
            wc = w[:, None]
            for k in range(len(tab.settings)):
                pq = tab.power_q[k]                                  # [J, Q+1]
                R = pq[j] * (1.0 - wc) + pq[j + 1] * wc              # [C, Q+1] quantiles at each step's rate
                lo = np.take_along_axis(R, q, axis=1)
                hi = np.take_along_axis(R, q + 1, axis=1)
                P[k] = lo + (hi - lo) * qw
            per[p] = (P, P.sum(axis=2), lam, j, w, n)
        ks = {p: np.zeros(C, dtype=np.int64) for p in names}
        if not controller.needs_telemetry:
            st0 = controller.state(0.0)
            for p in names:
                ks[p][:] = st0[p]
                row[c0:c1] += per[p][1][st0[p]]
        else:
            row[c0:c1] = _control_loop(controller, names, {p: per[p][1] for p in names}, ks, c0, C, dt, budget,
                                       telemetry_delay_s)
        for p in names:
            P, _, lam, j, w, n = per[p]
            k = ks[p]
            chosen = P[k, np.arange(C), :]                            # [C, n]
            srv_energy[classes[p][2]] += chosen.sum(axis=0) * dt
            tab = tables[p]
            mu = caps[p][0][k]
            b_start, b_end = backlog_scan(lam, mu, backlog[p], dt)
            backlog[p] = float(b_end[-1])
            queued[p][0] += float(np.sum(b_start > 0)) * n * dt
            queued[p][1] = max(queued[p][1], float(b_end.max()))
            # arrivals while the offered rate passes the setting's capacity, or behind a backlog, wait it out (first
            # come, first served at the capacity) and are served as a saturated server serves (saturated_latency);
            # the others as the table at their rate
            over = (b_start > 0) | (lam > mu)
            wait = np.where(over, b_start / mu, 0.0)
            sat = np.where(over, np.maximum(saturation_left(b_end, dt) - wait, 0.0), 0.0)
            bin_ = np.clip(np.searchsorted(WAIT_EDGES, wait, side="right") - 1, 0, nb - 1)
            sbin = np.clip(np.searchsorted(WAIT_EDGES, sat, side="right") - 1, 0, nb - 1)
            arrivals = n * lam * dt * over
            np.add.at(lat_w[p], (k, bin_, sbin), arrivals)
            np.add.at(lat_wait[p], (k, bin_, sbin), arrivals * wait)
            np.add.at(lat_sat[p], (k, bin_, sbin), arrivals * sat)
            W = weights[p]
            np.add.at(W, (k, j), n * lam * dt * (1 - w) * ~over)
            np.add.at(W, (k, j + 1), n * lam * dt * w * ~over)
            bsy = n * dt * (tab.busy[k, j] * (1 - w) + tab.busy[k, j + 1] * w)
            ref = n * dt * (tab.ref_busy[k, j] * (1 - w) + tab.ref_busy[k, j + 1] * w)
            work[p][0] += float(np.sum(n * dt * (tab.tokens[k, j] * (1 - w) + tab.tokens[k, j + 1] * w)))
            work[p][1] += float(np.sum(bsy))
            work[p][2] += float(np.sum(ref))
            L = levels[p]
            for col, v in enumerate((np.full(C, n * dt), bsy, ref)):
                np.add.at(L[:, col], k, v)
        if progress is not None:
            progress(c1, steps)
    lat = {}
    for p in names:
        tab, W = tables[p], weights[p]
        LW, LS, LT = lat_w[p], lat_wait[p], lat_sat[p]
        _, steady, top = caps[p]
        values = {}
        for m in LAT_METRICS:
            arr = tab.lat_q[m]
            vals, wts = [], []
            for k in range(W.shape[0]):
                for jj in range(W.shape[1]):
                    if W[k, jj] > 0 and np.isfinite(arr[k, jj]).all():
                        vals.append(arr[k, jj])
                        wts.append(np.full(len(QUANTILES), W[k, jj] / len(QUANTILES)))
            for k, b, c in zip(*np.nonzero(LW > 0)):
                v = saturated_latency(tab, m, k, steady[k], top, LS[k, b, c] / LW[k, b, c], LT[k, b, c] / LW[k, b, c])
                if np.isfinite(v).all():
                    vals.append(v)
                    wts.append(np.full(len(QUANTILES), LW[k, b, c] / len(QUANTILES)))
            values[m] = (np.concatenate(vals), np.concatenate(wts)) if vals else (np.zeros(0), np.zeros(0))
        lat[p] = latency_stats(values)
        lat[p].update({"queued_share": float(LW.sum() / max(W.sum() + LW.sum(), 1e-12)),
                       "queued_server_s": queued[p][0], "peak_backlog": queued[p][1], "backlog_at_end": backlog[p]})
        lat[p].update({"requests": float(W.sum() + LW.sum()), "tokens": work[p][0], "gpu_busy_s": work[p][1],
                       "tokens_per_busy_gpu_s": work[p][0] / max(work[p][1], 1e-12),
                       "uncapped_busy_s": work[p][2],
                       "work_rate": work[p][2] / work[p][1] if work[p][1] > 0 else float("nan")})
    return PowerResult(path="aggregate", spec=spec.describe(), policy=controller.name,
                       policy_params=controller.params(), dt=dt, row_w=row, server_energy_j=srv_energy,
                       events=list(controller.events), classes=lat, budget_w=budget, duration_s=steps * dt,
                       wall_s=time.perf_counter() - t0,
                       extra={"table_build_s": {p: tables[p].build_s for p in names},
                              "levels": {p: level_table(tables[p].settings, levels[p]) for p in names}})


def level_table(settings, L) -> "pd.DataFrame":
    """Per knob setting of one class: server-seconds in it (`time_share`), GPU-busy seconds there and what the same
    work takes uncapped; `slowdown` is how much slower the GPUs do that work, `impact_share` the setting's part of
    the class's throughput impact (the shares add up to it: -(busy - uncapped busy) / total busy)."""
    import pandas as pd
    df = pd.DataFrame(L, columns=["server_s", "busy_s", "busy_s_uncapped"])
    df.insert(0, "setting", [k.label() for k in settings[:len(df)]])
    total = max(float(df.busy_s.sum()), 1e-12)
    df["time_share"] = df.server_s / max(float(df.server_s.sum()), 1e-12)
    df["slowdown"] = np.where(df.busy_s_uncapped > 0, df.busy_s / df.busy_s_uncapped.where(df.busy_s_uncapped > 0, 1.0)
                              - 1, 0.0)
    df["impact_share"] = -(df.busy_s - df.busy_s_uncapped) / total
    return df


def check_aggregate(spec: RowSpec, policy: str = "none", params: dict = None, duration_s: float = 3600.0,
                    start_s: float = 14 * 3600.0, seed: int = 0, window_s: float = 300.0, grid=RATE_GRID) -> dict:
    """The aggregate path against the full serving simulation on one window: row energy and p99 of the 1-s row
    power (targets: within 3% and 5%), plus the mean latency statistics of each class. The aggregate path's tables
    are built on the study's fixed rate grid (RATE_GRID), as studies/polca.py builds them (the same tables, cached)."""
    grid = np.asarray(grid, dtype=float)
    server = spec.server_spec()
    ctl = make_controller(policy, **(params or {})).fit(server)
    t = np.arange(0.0, min(duration_s, 14 * 86400.0), 1.0)
    tables = {}
    for p, (dep, shape, _) in spec.classes().items():
        top = float(rate(shape, t, start_s).max()) if len(t) else shape.peak_rps
        if top > grid[-1]:
            raise HwsimError(f"the {p}-priority load reaches {top:.2f} req/s per server, above the rate grid "
                             f"(up to {grid[-1]:g}); the aggregate path's tables are not extrapolated")
        tables[p] = build_tables(server, dep, shape, ctl.settings[p], grid, window_s, seed=seed)
    full = run_full(spec, make_controller(policy, **(params or {})), duration_s, start_s, seed=seed)
    agg = run_aggregate(spec, ctl, duration_s, start_s, seed=seed, tables=tables, window_s=window_s)
    k = int(round(1.0 / full.dt))
    f1 = full.row_w[:len(full.row_w) // k * k].reshape(-1, k).mean(axis=1)
    e_full, e_agg = float(full.row_w.sum() * full.dt), float(agg.row_w.sum() * agg.dt)
    p_full, p_agg = float(np.quantile(f1, 0.99)), float(np.quantile(agg.row_w, 0.99))
    out = {"servers": spec.servers, "policy": policy, "duration_s": duration_s,
           "energy_full_kwh": e_full / 3.6e6, "energy_aggregate_kwh": e_agg / 3.6e6, "energy_error": e_agg / e_full - 1,
           "p99_full_w": p_full, "p99_aggregate_w": p_agg, "p99_error": p_agg / p_full - 1,
           "full_run_s": full.wall_s, "aggregate_run_s": agg.wall_s}
    for p in full.classes:
        for m in ("ttft_p50_s", "e2e_p50_s", "tpot_p50_s"):
            a, b = agg.classes[p][m], full.classes[p][m]
            out[f"{p}_{m}_error"] = a / b - 1 if b else float("nan")
    return out
