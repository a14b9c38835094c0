"""The one door from the cluster-power simulation into the serving simulator (sim/serving, workloads/requests).

Every call `sim/cluster` makes into the serving code goes through this module, so that when the serving
simulator changes only this file follows. What it uses of it:

- `workloads.requests`: `read_trace` (the Azure 2023 traces: request lengths and arrival burstiness), `frame`,
  `validate`;
- `sim.serving`: `Pool`, `build_pool` (replicas with their KV capacity and step-cost table), `Cluster` (the event
  loop), `make_requests`, `request_table`, `summarize`, `serve` (the plain serving run, for the uncapped check);
- a replica's `cost` (a `StepCost`: `vector`, `solve`, `stretch`, `K`, `f_max`, `static_w`, `tp`, ...), its
  `before_step(now)` hook (sets the caps in force before each iteration) and its iteration log (`log`,
  `LOG_FIELDS`: start, duration and energy of every iteration); `Cluster(..., fast_forward=False)` wherever caps can
  change or bind, since fast-forwarded decode runs are costed inside the replica from the uncapped tables.

What it adds on this side (nothing in sim/serving is edited):

- `CappedCost`: a replica's step cost under a clock cap and a per-GPU power cap that a controller may change
  during the run, and with the server's GPU power overrides (the A100 clock-power curve, `gamma`). It solves the
  operating point as `StepCost.solve` does (the clock stretches until the step's average power fits the cap), from
  a floor stretch f_max / clock_cap instead of 1. With no caps and the device's own power parameters it returns
  exactly `StepCost.cost` (tested).
- `run_row`: all servers of a row in one serving event loop (requests pinned to their server, least-loaded replica
  within it), a controller consulted at each iteration start, and the power of every replica read back from the
  iteration logs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from workloads.errors import HwsimError

F_START, F_TIME, F_ENERGY = 0, 1, 7          # fields of a replica's iteration log (sim/serving/replica.py LOG_FIELDS)


# --- requests ------------------------------------------------------------------------------------------------
def trace(name: str) -> pd.DataFrame:
    from workloads.requests import read_trace
    return read_trace(name)


def request_frame(arrival_s, prompt_tokens, output_tokens) -> pd.DataFrame:
    from workloads.requests import frame, validate
    return validate(frame(np.asarray(arrival_s, float), np.asarray(prompt_tokens, int), np.asarray(output_tokens, int)))


def max_context(model: str) -> int:
    from workloads.capture import load_spec
    return int(load_spec(model).max_positions)


# --- deployments ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Deployment:
    """What one priority class runs on each of its servers: `model` on `mapping` (replicas per server = GPUs / TP)."""
    model: str = "llama-2-70b"
    mapping: str = "tp:8"
    scheduler: str = "vllm"
    profile: str = "fused"
    dtype: str = "bf16"
    quant: str = "none"
    max_seqs: int = None

    def pool(self, system: str, replicas: int, name: str):
        from sim.serving import Pool
        return Pool(model=self.model, system=system, mapping=self.mapping, replicas=replicas, scheduler=self.scheduler,
                    profile=self.profile, dtype=self.dtype, quant=self.quant, max_seqs=self.max_seqs, name=name)

    def check(self):
        """One line unless the mapping is single or tp:N: a server holds GPUs // N replicas of N GPUs each, and
        pp/ep replicas' other devices were not counted (pp:2 put 8 two-GPU replicas on an 8-GPU server;
        tp:2,pp:2,mb:2's virtual engines overran the server list, exit 70)."""
        from mapping.registry import describe
        other = [f"{name}:{degree}" for name, degree in describe(self.mapping) if name not in ("single", "tp")]
        if other:
            raise HwsimError(f"a row's replicas run single or tp:N (each server holds GPUs / N of them); "
                             f"'{self.mapping}' uses {', '.join(other)}; use tp:N, or hwsim serve for other mappings")
        return self

    def tp(self) -> int:
        for part in self.mapping.split(","):
            name, _, degree = part.partition(":")
            if name.strip() == "tp" and degree:
                return int(degree)
        return 1


@dataclass(frozen=True)
class Knobs:
    """What a controller sets on a server: a clock cap (MHz), a per-GPU power cap (W), and for phase-aware DVFS a
    clock for decode-only iterations. None: not set."""
    clock_mhz: float = None
    power_w: float = None
    decode_clock_mhz: float = None

    def label(self) -> str:
        parts = []
        if self.clock_mhz:
            parts.append(f"{self.clock_mhz:.0f}MHz")
        if self.power_w:
            parts.append(f"{self.power_w:.0f}W")
        if self.decode_clock_mhz:
            parts.append(f"decode@{self.decode_clock_mhz:.0f}MHz")
        return "+".join(parts) or "uncapped"


NO_KNOBS = Knobs()


class CappedCost:
    """A replica's StepCost under `knobs` (changeable between iterations) and GPU power overrides."""

    def __init__(self, base, gpu_power: dict = None):
        self.base = base
        p = dict(base.power.p)
        p.update(gpu_power or {})
        self.gamma = float(p["gamma"])
        self.static = float(p.get("static_w", base.static_w))
        self.e_flop = float(p["e_flop_pj"]) * 1e-12
        self.e_byte = float(p["e_byte_pj"]) * 1e-12
        self.plain = (self.gamma == base.gamma and self.static == base.static_w and self.e_flop == base.e_flop
                      and self.e_byte == base.e_byte)
        self.knobs = NO_KNOBS
        self.f_min = float(base.power.f_min)
        # the uncapped time of every step costed here, in order (one per iteration of the replica's log, except for
        # decode runs fast-forwarded inside the replica, which only happen uncapped): the reference of `work_rate`
        self.ref_s = []

    def __getattr__(self, name):          # everything else (f_max, tp, static_w, max_context, device, ...) as the base
        return getattr(self.base, name)

    def cost(self, batch):
        k = self.knobs
        if self.plain and k is NO_KNOBS:
            st = self.base.cost(batch)
            self.ref_s.append(st.time_s)
            return st
        return self.solve_knobs(self.base.vector(batch), decode_only=not batch.chunks)

    def decode_step(self, d, ctx_sum, window_sum=None):
        k = self.knobs
        if self.plain and k is NO_KNOBS:
            st = self.base.decode_step(d, ctx_sum, window_sum)
            self.ref_s.append(st.time_s)
            return st
        from sim.serving.step_cost import Batch
        return self.solve_knobs(self.base.vector(Batch(decodes=d, decode_context=ctx_sum, window_context=window_sum)),
                                decode_only=True)

    def solve_knobs(self, vec, decode_only: bool):
        k = self.knobs
        clock = k.clock_mhz
        if decode_only and k.decode_clock_mhz:
            clock = min(clock, k.decode_clock_mhz) if clock else k.decode_clock_mhz
        cap = self.base.cap if k.power_w is None else min(self.base.cap, k.power_w)
        st = solve(self.base, vec, clock, cap, self.static, self.e_flop, self.e_byte, self.gamma)
        if k is NO_KNOBS:
            self.ref_s.append(st.time_s)
        else:               # the same step uncapped: how much slower the capped GPU does this work
            self.ref_s.append(solve(self.base, vec, None, self.base.cap, self.static, self.e_flop, self.e_byte,
                                    self.gamma).time_s)
        return st


def _fe_between(s0, s1, f0, f1, s):
    """FLOP energy (in FLOP units) at stretch s between two rungs, geometric in s (as step_cost.bracket_root)."""
    if s1 <= s0 or f0 <= 0 or f1 <= 0 or s <= s0:
        return f0
    return f0 * (s / s0) ** (math.log(f1 / f0) / math.log(s1 / s0))


def solve(base, vec, clock_cap, cap, static, e_flop, e_byte, gamma):
    """The clock under a clock cap and a power cap for a step's table vector (`StepCost.solve`, from a floor).

    The step's time at stretch s = f_max / f is the table's time ladder interpolated at s; its power
    static + (FLOPs e_flop (1/s)^gamma + bytes e_byte) / t(s). The stretch starts at f_max / clock_cap (or 1) and
    grows along the ladder until the power fits the cap. Ops longer than the power controller's window (kept apart
    by the table, solved at the TDP cap) are taken as compute-bound under a clock cap (their time grows by the floor
    stretch): an overestimate of their slowdown where they were memory-bound."""
    from sim.serving.step_cost import StepTime, bracket_root
    K = base.K
    v = vec.tolist()
    F, B, tl, el, tc = v[K:K + 5]
    S = base.stretch
    # FLOPs x stretch^-gamma at each rung where the table has them (cap_sequence floors with gamma != 0, at the
    # table's own gamma); else F x s^-gamma
    FE = v[K + 5:] if getattr(base, "fe", False) and gamma == base.gamma else [F * x ** -gamma for x in S]
    f_max = base.f_max
    s_lo = 1.0
    if clock_cap:
        s_lo = min(max(1.0, f_max / clock_cap), S[-1])
    # time at s_lo on the ladder
    j = 0
    while j < K - 1 and S[j + 1] <= s_lo:
        j += 1
    if j >= K - 1:
        t_lo, fe_lo = v[K - 1], FE[K - 1]
    else:
        w = (s_lo - S[j]) / (S[j + 1] - S[j])
        t_lo = v[j] + w * (v[j + 1] - v[j])
        fe_lo = _fe_between(S[j], S[j + 1], FE[j], FE[j + 1], s_lo)
    s, t, fe = s_lo, t_lo, fe_lo

    def watts(fx, tx):
        return static + (fx * e_flop + B * e_byte) / tx

    if t > 0 and watts(fe, t) > cap:
        prev_s, prev_t, prev_fe = s, t, fe
        k = j + 1
        if gamma == 0.0 and cap > static:
            # power = static + dyn / t(s): the cap holds where t(s) = dyn / (cap - static) (as StepCost.solve)
            target = (F * e_flop + B * e_byte) / (cap - static)
            while k < K and v[k] < target:
                prev_s, prev_t = S[k], v[k]
                k += 1
            if k == K:
                s, t = S[-1], v[K - 1]
            else:
                w = (target - prev_t) / (v[k] - prev_t) if v[k] != prev_t else 1.0
                s = prev_s + w * (S[k] - prev_s)
                t = prev_t + w * (v[k] - prev_t)
            fe = F
        else:
            while k < K and watts(FE[k], v[k]) > cap:
                prev_s, prev_t, prev_fe = S[k], v[k], FE[k]
                k += 1
            if k == K:
                s, t, fe = S[-1], v[K - 1], FE[K - 1]
            elif cap > static:
                s, t, fe = bracket_root(prev_s, S[k], prev_t, v[k], prev_fe, FE[k], B * e_byte, cap - static,
                                        e_flop)
            else:
                s, t, fe = S[k], v[k], FE[k]
    dyn = fe * e_flop + B * e_byte
    if s_lo > 1.0 and tl > 0:
        grow = tl * (s_lo - 1.0)
        tl, el = tl + grow, el + static * grow
    energy = (static * (t + tc) + dyn + el) * base.tp
    total = t + tl + tc
    clock = (f_max / s * t + min(f_max, f_max / s_lo) * tl) / (t + tl) if (t + tl) > 0 else f_max / s_lo
    return StepTime(total, energy, energy / total if total else 0.0, clock)


# --- the row ---------------------------------------------------------------------------------------------------
class _PinnedRouter:
    """Requests go to the replicas of their own server (least outstanding tokens among them)."""

    def __init__(self, server_of_request, replicas_of_server):
        self.server_of = server_of_request
        self.replicas_of = replicas_of_server

    def pick(self, r, replicas):
        reps = self.replicas_of[self.server_of[r.id]]
        best = reps[0]
        for rep in reps[1:]:
            if rep.outstanding < best.outstanding:
                best = rep
        return best


@dataclass
class ReplicaPower:
    """Power of one replica over time, from its iteration log: busy energy piecewise linear in time, idle GPUs
    (tp of them) at `idle_w` each between iterations."""
    tp: int
    idle_w: float

    def energy_at(self, log: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Cumulative energy (J) of the replica's GPUs from time 0 to each time in `t` (sorted)."""
        start, dur, energy = log[:, F_START], log[:, F_TIME], log[:, F_ENERGY]
        n = len(start)
        if n == 0:
            return self.tp * self.idle_w * t
        knots = np.empty(2 * n)
        knots[0::2], knots[1::2] = start, start + dur
        cum_e = np.zeros(2 * n)
        cum_b = np.zeros(2 * n)
        ce = np.concatenate([[0.0], np.cumsum(energy)])
        cb = np.concatenate([[0.0], np.cumsum(dur)])
        cum_e[0::2], cum_e[1::2] = ce[:-1], ce[1:]
        cum_b[0::2], cum_b[1::2] = cb[:-1], cb[1:]
        e_busy = np.interp(t, knots, cum_e, left=0.0, right=ce[-1])
        busy = np.interp(t, knots, cum_b, left=0.0, right=cb[-1])
        return e_busy + self.tp * self.idle_w * (t - busy)


def _log(rep) -> np.ndarray:
    from sim.serving.replica import LOG_FIELDS
    n = len(LOG_FIELDS)
    return np.array(rep.log, dtype=float).reshape(-1, n) if len(rep.log) else np.zeros((0, n))


@dataclass
class RowRun:
    """What the full path hands back: per-server GPU energy on a time grid, the request table (with `priority` and
    `server`), per-priority serving summaries and the replicas' busy time and tokens."""
    edges: np.ndarray              # time grid (s), len T+1
    gpu_energy: np.ndarray         # [servers, T] J of all GPUs of each server in each interval
    requests: pd.DataFrame
    summaries: dict
    busy_s: dict                   # priority -> GPU-replica busy seconds
    tokens: dict                   # priority -> tokens processed (prompt + output of completed requests)
    end_s: float
    replicas: list                 # (replica, priority)


def run_row(server, classes, requests: pd.DataFrame, controller=None, dt: float = 0.1, progress=None) -> RowRun:
    """All servers of a row in one serving event loop.

    `server`: a ServerSpec. `classes`: {priority: (Deployment, [server indices])}. `requests`: a request table with
    extra columns `priority` and `server` (its server index). `controller`: None (no caps, no wrapper when the
    server keeps the device's own power parameters) or an object with `bind(row)` and `at(now)` (see
    sim/cluster/control.py), given a `RowMeter` that reads the row's power up to `now`."""
    from sim.serving import build_pool
    from sim.serving.cluster import Cluster, make_requests
    from sim.serving.metrics import request_table, summarize
    n_servers = 1 + max(max(idx) for _, idx in classes.values())
    replicas, rep_server, rep_class, powers = [], [], [], []
    replicas_of = {s: [] for s in range(n_servers)}
    for prio, (dep, idx) in classes.items():
        per = server.gpus // dep.tp()
        if per < 1:
            raise HwsimError(f"{dep.mapping} needs {dep.tp()} GPUs; server {server.id} has {server.gpus}")
        reps, _ = build_pool(dep.pool(server.system, per * len(idx), prio), len(replicas))
        for i, rep in enumerate(reps):
            s = idx[i // per]
            rep.cost = CappedCost(rep.cost, server.gpu_power)
            replicas.append(rep)
            rep_server.append(s)
            rep_class.append(prio)
            replicas_of[s].append(rep)
            powers.append(ReplicaPower(rep.cost.tp, float(rep.cost.device.power.idle_w)))
    used = np.zeros(n_servers)
    for rep, s in zip(replicas, rep_server):
        used[s] += rep.cost.tp
    spare = server.gpus - used                       # GPUs no replica uses idle all the time
    df = requests.reset_index(drop=True)
    reqs = make_requests(df)
    router = _PinnedRouter(df["server"].astype(int).tolist(), replicas_of)
    meter = RowMeter(server, replicas, rep_server, powers, spare, n_servers)
    if controller is not None:
        controller.bind(meter, {p: idx for p, (_, idx) in classes.items()})
        for rep, s, prio in zip(replicas, rep_server, rep_class):
            _hook(rep, controller, prio)
    # the serving loop may run decode-only iterations on as one event (fast_forward); those steps are costed inside
    # the replica from the step cost's own tables, so with caps or a controller every iteration is started on its own
    plain = controller is None and all(r.cost.plain for r in replicas)
    cluster = Cluster(replicas, router, fast_forward=plain)
    cluster.run(reqs, progress)
    table = request_table(reqs, replicas)
    table["priority"] = df["priority"].values
    table["server"] = df["server"].values
    last = [_log(r)[-1] for r in replicas if len(r.log)]
    end = max([float(np.nanmax(table.finish_s)) if table.finish_s.notna().any() else 0.0]
              + [float(x[F_START] + x[F_TIME]) for x in last])
    end = max(end, float(df.arrival_s.max()) if len(df) else 0.0)
    edges = np.arange(0.0, end + dt, dt)
    if edges[-1] < end:
        edges = np.append(edges, edges[-1] + dt)
    energy = meter.server_energy(edges)
    summaries, busy, tokens = {}, {}, {}
    for prio in classes:
        sel = table.priority.values == prio
        reps = [r for r, p in zip(replicas, rep_class) if p == prio]
        summaries[prio] = summarize(table[sel].reset_index(drop=True), reps, [r for r, m in zip(reqs, sel) if m])
        busy[prio] = float(sum(r.busy_s * r.cost.tp for r in reps))
        done = table[sel & table.finish_s.notna().values]
        tokens[prio] = float(done.prompt_tokens.sum() + done.output_tokens.sum())
    return RowRun(edges, energy, table, summaries, busy, tokens, end, list(zip(replicas, rep_class)))


def _work(reps, a: float, b: float):
    """(tokens processed, GPU-busy seconds, the same iterations' uncapped GPU-busy seconds) of replicas' iterations
    within [a, b] (an iteration straddling an edge counts by its overlap): prefill tokens plus one token per decoding
    sequence. The uncapped time of an iteration is its step costed without the controller's knobs (`CappedCost.ref_s`);
    where a replica's log and that record differ in length (decode runs fast-forwarded uncapped), it is the
    iteration's own time."""
    tokens = busy = ref = 0.0
    for rep in reps:
        arr = _log(rep)
        if not len(arr):
            continue
        start, dur = arr[:, F_START], arr[:, F_TIME]
        over = np.clip(np.minimum(start + dur, b) - np.maximum(start, a), 0.0, None)
        frac = np.divide(over, dur, out=np.zeros_like(over), where=dur > 0)
        tokens += float(np.sum(frac * (arr[:, 2] + arr[:, 4])))
        busy += float(over.sum()) * rep.cost.tp
        rs = getattr(rep.cost, "ref_s", None)
        base = np.asarray(rs, dtype=float) if rs is not None and len(rs) == len(dur) else dur
        ref += float(np.sum(frac * base)) * rep.cost.tp
    return tokens, busy, ref


def busy_between(reps, a, b) -> float:
    return _work([r for r, _ in reps] if reps and isinstance(reps[0], tuple) else reps, a, b)[1]


def uncapped_busy_between(reps, a, b) -> float:
    """GPU-busy seconds the same iterations would have taken uncapped (see `_work`)."""
    return _work([r for r, _ in reps] if reps and isinstance(reps[0], tuple) else reps, a, b)[2]


def work_between(reps, a, b) -> float:
    return _work([r for r, _ in reps] if reps and isinstance(reps[0], tuple) else reps, a, b)[0]


def _hook(rep, controller, prio):
    """The controller's knobs in force at each iteration's start, through the replica's public `before_step` hook."""
    cost = rep.cost

    def before_step(now):
        cost.knobs = controller.at(now, prio)
    rep.before_step = before_step


class RowMeter:
    """Reads the power of every server of the row from the replicas' iteration logs, up to any time already
    simulated (an iteration's energy is fixed when it starts, so at simulated time `now` every interval before it
    is known)."""

    def __init__(self, server, replicas, rep_server, powers, spare, n_servers):
        self.server = server
        self.replicas = replicas
        self.rep_server = np.asarray(rep_server)
        self.powers = powers
        self.spare = spare
        self.n = n_servers
        self.idle_gpu_w = server.gpu_idle_w

    def server_energy(self, edges: np.ndarray, tail: bool = False) -> np.ndarray:
        """[servers, len(edges)-1]: GPU energy (J) of each server in each interval. `tail`: read only the iterations
        that end after edges[0] (the in-run telemetry asks for consecutive windows, so earlier ones are skipped)."""
        from sim.serving.replica import LOG_FIELDS
        nf = len(LOG_FIELDS)
        out = np.zeros((self.n, len(edges) - 1))
        if not hasattr(self, "_i0"):
            self._i0 = [0] * len(self.replicas)
        t0 = float(edges[0])
        for k, (rep, s, pw) in enumerate(zip(self.replicas, self.rep_server, self.powers)):
            if tail:
                log, i0, n = rep.log, self._i0[k], len(rep.log) // nf
                while i0 < n and log[i0 * nf + F_START] + log[i0 * nf + F_TIME] <= t0:
                    i0 += 1
                self._i0[k] = i0
                arr = np.array(log[i0 * nf:], dtype=float).reshape(-1, nf)
            else:
                arr = _log(rep)
            out[s] += np.diff(pw.energy_at(arr, edges))
        out += self.spare[:, None] * self.idle_gpu_w * np.diff(edges)[None, :]
        return out

    def row_wall_w(self, edges: np.ndarray, tail: bool = False) -> np.ndarray:
        """Row wall power (W), averaged over each interval of `edges`."""
        gpu_w = self.server_energy(edges, tail) / np.diff(edges)[None, :]
        return self.server.wall_w(gpu_w).sum(axis=0)


def serve_plain(server, dep: Deployment, requests: pd.DataFrame, name: str = "replica"):
    """The plain serving run of one server's requests (sim.serving.serve): the reference an uncapped row equals."""
    from sim.serving import serve
    per = server.gpus // dep.tp()
    return serve(requests, dep.pool(server.system, per, name))


def serve_energy(result) -> float:
    """Busy energy (J) of a plain serving run's replicas."""
    return float(sum(r.energy_j for r in result.replicas))


def table_run(server, dep: Deployment, requests: pd.DataFrame, knobs: Knobs, edges: np.ndarray, window=None):
    """One server serving `requests` under fixed `knobs`: (GPU energy per interval of `edges`, request table,
    GPU-busy seconds, tokens processed, the same iterations' uncapped GPU-busy seconds, all three within `window`
    (default: all of `edges`)): the runs the aggregate path's tables are built from."""
    from sim.serving import build_pool
    from sim.serving.cluster import Cluster, make_requests
    from sim.serving.metrics import request_table
    from sim.serving.router import make_router
    per = server.gpus // dep.tp()
    if per < 1:
        raise HwsimError(f"{dep.mapping} needs {dep.tp()} GPUs; server {server.id} has {server.gpus}")
    reps, _ = build_pool(dep.pool(server.system, per, "t"))
    powers = []
    for rep in reps:
        rep.cost = CappedCost(rep.cost, server.gpu_power)
        rep.cost.knobs = knobs
        powers.append(ReplicaPower(rep.cost.tp, float(rep.cost.device.power.idle_w)))
    reqs = make_requests(requests.reset_index(drop=True))
    Cluster(reps, make_router("least-tokens", 0), fast_forward=knobs is NO_KNOBS and reps[0].cost.plain).run(reqs)
    table = request_table(reqs, reps)
    energy = np.zeros(len(edges) - 1)
    for rep, pw in zip(reps, powers):
        energy += np.diff(pw.energy_at(_log(rep), edges))
    energy += (server.gpus - per * dep.tp()) * server.gpu_idle_w * np.diff(edges)
    a, b = window or (float(edges[0]), float(edges[-1]))
    tokens, busy, ref = _work(reps, a, b)
    return energy, table, busy, tokens, ref
