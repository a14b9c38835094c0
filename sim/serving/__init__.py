"""Serving simulation: requests arriving over time at replicas that batch them iteration by iteration.

    from workloads.requests import synthetic
    from sim.serving import Pool, serve
    result = serve(synthetic(1000, rate=5.0, source="sharegpt"),
                   Pool(model="llama-3.1-70b", system="dgx-h100", mapping="tp:4", replicas=2, scheduler="vllm"),
                   slo={"ttft_p99": 1.0, "tpot_p99": 0.05})
    result.summary["throughput_rps"], result.requests (pandas, one row per request), result.timeline

Modules, one job each: `step_cost` (the only door into hwsim's cost models), `kv` (capacity, paged blocks,
prefix cache), `request` (a request's state), `scheduler` (policies, a registry), `replica` (queues and
iterations), `pipeline` (pp:N,mb:N virtual engines sharing the stages), `router` (a registry), `cluster` (the event loop, disaggregation), `metrics` (tables and summary),
`report` (files: Parquet/CSV, JSON, Perfetto trace, HTML).
"""
from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from workloads.errors import HwsimError, HwsimWarning

from .cluster import Cluster, make_requests
from .kv import BLOCK_SIZE, GPU_MEMORY_UTILIZATION, SWAP_SPACE_GIB, capacity
from .metrics import parse_slo, request_table, summarize, timeline
from .pipeline import EngineGroup, EngineRouter, Pipeline
from .replica import Replica
from .router import make_router
from .scheduler import scheduler as make_policy
from .step_cost import StepCost


@dataclass
class Pool:
    """Identical replicas: each is `model` on `mapping` of `system` with one scheduler."""
    model: str
    system: str
    mapping: str = "single"
    replicas: int = 1
    scheduler: str = "vllm"
    profile: str = "fused"             # software stack (hw_models/stacks.py): kernels and host costs per step/request
    dtype: str = "bf16"
    quant: str = "none"
    kv_dtype: str = None
    max_seqs: int = None
    max_tokens: int = None
    chunked: bool = None
    priority: str = None
    preemption: str = None
    batch_timeout_s: float = None
    prefix_caching: bool = False
    block_size: int = None             # KV block (page) tokens; default the stack's page size, else vLLM's 16
    memory_utilization: float = GPU_MEMORY_UTILIZATION
    overhead_gib: float = None
    activation_gib: float = None
    kv_blocks: int = None
    memory_gib: float = None
    swap_gib: float = SWAP_SPACE_GIB
    max_context: int = None
    power_cap_w: float = None          # per device; default the device's (TDP)
    routing: str = "uniform"           # MoE models: how a step's tokens spread over the experts (even | uniform)
    role: str = "both"
    name: str = None

    def policy(self):
        policy = make_policy(self.scheduler, max_seqs=self.max_seqs, max_tokens=self.max_tokens, chunked=self.chunked,
                             priority=self.priority, preemption=self.preemption, batch_timeout_s=self.batch_timeout_s)
        return vllm_long_context(self, policy)


_COSTS: dict = {}
# vLLM v0 (0.5-0.6) EngineArgs.create_engine_config: "Chunked prefill is enabled by default for models with
# max_model_len > 32K" on CUDA, without sliding window, speculative decoding, LoRA or prefix caching; SchedulerConfig
# then budgets 512 tokens an iteration ("Chunked prefill is enabled with max_num_batched_tokens=512", its log for
# Llama-3.1-8B at max_seq_len 131072, v0.6.4)
VLLM_LONG_CONTEXT = 32768
VLLM_CHUNK_BUDGET = 512
_WARNED: set = set()      # (model, max context) pairs whose clipped context was reported


def vllm_long_context(pool: Pool, policy):
    """The `vllm` scheduler as vLLM v0 sets itself up: above 32K-token contexts (no sliding window, no prefix
    caching) it chunks prefills beside the decodes (decodes first) in a 512-token budget, or --max-batched-tokens;
    --chunked / --no-chunked and --priority say otherwise."""
    if policy.name != "vllm" or pool.chunked is not None or pool.prefix_caching:
        return policy
    from workloads.capture import load_spec
    spec = load_spec(pool.model)
    ctx = min(pool.max_context or spec.max_positions, spec.max_positions)
    if ctx <= VLLM_LONG_CONTEXT or any(k.window for k in spec.layer_kinds):
        return policy
    budget = pool.max_tokens or VLLM_CHUNK_BUDGET
    if (spec.name, ctx, "chunked") not in _WARNED:
        _WARNED.add((spec.name, ctx, "chunked"))
        warnings.warn(HwsimWarning(
            f"vllm: chunked prefill on, {budget} tokens an iteration, as vLLM v0 turns it on above "
            f"{VLLM_LONG_CONTEXT:,}-token contexts ({spec.name} serves {ctx:,}); chunked=False or max_context="
            f"{VLLM_LONG_CONTEXT} for whole-prompt prefills", arguments=("chunked=False", "max_context=")))
    return replace(policy, chunked=True, mixed=True, priority=pool.priority or "decode", max_tokens=budget,
                   description=policy.description + f"; chunked prefill ({budget} tokens) above "
                                                    f"{VLLM_LONG_CONTEXT:,}-token contexts").validate()


def step_cost_for(pool: Pool, policy) -> StepCost:
    """One cost table per (model, system, mapping, stack, precision, sizes): shared by a pool's replicas and
    kept across runs in a process (rate searches re-run the same deployment)."""
    from workloads.capture import load_spec
    spec = load_spec(pool.model)
    if pool.max_context and pool.max_context > spec.max_positions and (spec.name, pool.max_context) not in _WARNED:
        _WARNED.add((spec.name, pool.max_context))      # once per process (rate searches build many runs)
        warnings.warn(HwsimWarning(f"max_context {pool.max_context} exceeds {spec.name}'s {spec.max_positions} "
                                   f"positions; served at {spec.max_positions}", arguments=("max_context",)))
    ctx = min(pool.max_context or spec.max_positions, spec.max_positions)
    budget = policy.budget(ctx)
    max_tokens = max(budget, 2048)
    key = (pool.model, pool.system, pool.mapping, pool.profile, pool.dtype, pool.quant, pool.kv_dtype, ctx,
           max_tokens, policy.max_seqs, pool.power_cap_w, pool.routing)
    if key not in _COSTS:
        _COSTS[key] = StepCost(pool.model, pool.system, pool.mapping, pool.profile, pool.dtype, pool.quant,
                               pool.kv_dtype, max_tokens=max_tokens, max_seqs=max(policy.max_seqs, 1), max_context=ctx,
                               power_cap_w=pool.power_cap_w, routing=pool.routing)
    return _COSTS[key]


# a pool's optional sizes: (field, what it must be); None keeps the default. A falsy 0 used to fall back to the
# default silently, a negative block count ran with negative capacity and NaN died in int() (exit 70). The errors
# name the field; `hwsim serve` says its flag instead (sim/cli/serve_cmd.py FLAGS)
_SIZES = (("kv_blocks", "whole"), ("max_context", "whole"), ("memory_gib", "positive"),
          ("batch_timeout_s", "nonnegative"), ("overhead_gib", "nonnegative"), ("activation_gib", "nonnegative"),
          ("swap_gib", "nonnegative"), ("max_seqs", "whole"), ("max_tokens", "whole"), ("block_size", "whole"),
          ("memory_utilization", "fraction"), ("power_cap_w", "positive"))
_NEED = {"whole": "a whole number >= 1", "positive": "a positive number", "nonnegative": "a number >= 0",
         "fraction": "a number in (0, 1]"}
ROLES = ("both", "prefill", "decode")


def _check_sizes(pool: Pool):
    for field, kind in _SIZES:
        v = getattr(pool, field)
        if v is None:
            continue
        number = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)
        ok = number and {"whole": lambda: float(v).is_integer() and v >= 1, "positive": lambda: v > 0,
                         "nonnegative": lambda: v >= 0, "fraction": lambda: 0 < v <= 1}[kind]()
        if not ok:
            raise HwsimError(f"{field} must be {_NEED[kind]}, got {v!r}", arguments=(field,))
    # switches: a string such as "no" was taken as on (truthiness)
    for field, optional in (("chunked", True), ("prefix_caching", False)):
        v = getattr(pool, field)
        if not (isinstance(v, (bool, np.bool_)) or (optional and v is None)):
            raise HwsimError(f"{field} must be True or False{' (or None: the scheduler decides)' if optional else ''}"
                             f", got {v!r}", arguments=(field,))
    if pool.role not in ROLES:
        raise HwsimError(f"a pool's role must be one of {', '.join(ROLES)} (serve(..., decode_pool=...) sets "
                         f"prefill/decode), got {pool.role!r}")


def block_size_for(pool: Pool) -> int:
    """The pool's KV block size: as given, else its stack's page size (trtllm 64, sglang 1 token; the page its
    decode kernel reads, hw_models/stacks.py), else vLLM's default 16."""
    if pool.block_size is not None:
        return pool.block_size
    from hw_models.stacks import stack
    return stack(pool.profile).page_tokens or BLOCK_SIZE


def build_pool(pool: Pool, first_id: int = 0):
    """(replicas, KV capacity of each); pipeline virtual engines (pp:N,mb:N) are replicas of their own here."""
    reps, cap, _ = build_engines(pool, first_id)
    return reps, cap


def build_engines(pool: Pool, first_id: int = 0):
    """(replicas, capacity, None) or, with virtual engines, (engines, capacity of each, one EngineGroup per
    replica)."""
    if isinstance(pool.replicas, bool) or not isinstance(pool.replicas, numbers.Integral):
        raise HwsimError(f"a pool's replicas must be a whole number >= 1, got {pool.replicas!r}")
    if pool.replicas <= 0:
        raise HwsimError(f"a pool needs at least one replica, got {pool.replicas}")
    _check_sizes(pool)
    policy = pool.policy()
    cost = step_cost_for(pool, policy)
    cap = capacity(cost, block_size_for(pool), pool.memory_utilization, pool.overhead_gib, pool.activation_gib,
                   memory_gib=pool.memory_gib, budget_tokens=policy.budget(cost.max_context), kv_blocks=pool.kv_blocks)
    label = pool.name or (pool.role if pool.role != "both" else "replica")
    n = cost.engines
    if n == 1:
        reps = [Replica(first_id + i, cost, cap, policy, pool.prefix_caching, pool.role, pool.swap_gib,
                        name=f"{label}{i}") for i in range(pool.replicas)]
        return reps, cap, None
    # pp:N,mb:N: N virtual engines per replica, each a scheduler with 1/N of the KV blocks (sim/serving/pipeline.py)
    cap = replace(cap, blocks=cap.blocks // n)
    if cap.blocks == 0:
        raise HwsimError(f"{cost.model_name} with {cost.mapping}: 1/{n} of the KV blocks per virtual engine leaves "
                         f"none; use fewer stages or more memory")
    reps, groups = [], []
    for i in range(pool.replicas):
        pipe, engines = Pipeline(cost.pp), []
        for v in range(n):
            rep = Replica(first_id + len(reps), cost, cap, policy, pool.prefix_caching, pool.role, pool.swap_gib,
                          name=f"{label}{i}.ve{v}")
            rep.pipeline, rep.devices = pipe, cost.devices // n
            engines.append(rep)
            reps.append(rep)
        groups.append(EngineGroup(i, engines))
    return reps, cap, groups


@dataclass
class ServeResult:
    summary: dict
    requests: pd.DataFrame
    capacity: dict
    pools: list
    transfers: list = field(default_factory=list)
    replicas: list = field(default_factory=list, repr=False)
    _timeline: pd.DataFrame = field(default=None, repr=False)

    @property
    def timeline(self) -> pd.DataFrame:
        """One row per iteration per replica (built on first use: long runs have millions of iterations)."""
        if self._timeline is None:
            self._timeline = timeline(self.replicas)
        return self._timeline

    def to_dict(self) -> dict:
        return {"summary": self.summary, "capacity": self.capacity,
                "pools": [{k: v for k, v in p.__dict__.items()} for p in self.pools]}


def serve(requests: pd.DataFrame, pool: Pool, router: str = "least-tokens", slo=None, decode_pool: Pool = None,
          decode_router: str = "least-tokens", kv_link_gbps: float = None, kv_link_latency_us: float = None,
          progress=None, seed: int = 0, fast_forward: bool = True) -> ServeResult:
    """Serve a request table (workloads/requests.py) on `pool` (and, disaggregated, prefill on `pool` and decode
    on `decode_pool`, the KV crossing a `kv_link_gbps` link)."""
    from workloads.requests import validate
    if progress is not None and not callable(progress):
        raise HwsimError(f"progress must be a function called with the number of finished requests (or None), "
                         f"got {progress!r}")
    if not isinstance(fast_forward, (bool, np.bool_)):
        raise HwsimError(f"fast_forward must be True or False, got {fast_forward!r}")
    # NaN deadlocked the prefill pool (exit 70), 0 and negative rates were taken
    for name, value in (("kv_link_gbps", kv_link_gbps), ("kv_link_latency_us", kv_link_latency_us)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
            raise HwsimError(f"{name} must be a number ({'GB/s' if name == 'kv_link_gbps' else 'microseconds'}), "
                             f"got {value!r}", arguments=(name,))
    if kv_link_gbps is not None and not (math.isfinite(kv_link_gbps) and kv_link_gbps > 0):
        raise HwsimError(f"kv_link_gbps, the KV link, must be positive GB/s, got {kv_link_gbps}",
                         arguments=("kv_link_gbps",))
    if kv_link_latency_us is not None and not (math.isfinite(kv_link_latency_us) and kv_link_latency_us >= 0):
        raise HwsimError(f"kv_link_latency_us, the KV link latency, must be microseconds >= 0, got "
                         f"{kv_link_latency_us}", arguments=("kv_link_latency_us",))
    for name, given in (("pool", pool), ("decode_pool", decode_pool)):
        if not isinstance(given, Pool) and not (name == "decode_pool" and given is None):
            raise HwsimError(f"{name} must be a Pool (sim.serving.Pool / api.Pool: model, system, mapping, ...), got "
                             f"{type(given).__name__}")
    requests = validate(requests)
    slo = parse_slo(slo)
    if decode_pool is not None:
        pool = replace(pool, role="prefill")
        decode_pool = replace(decode_pool, role="decode")
    reps, cap, groups = build_engines(pool)
    decode_reps, dcap, dgroups = build_engines(decode_pool, len(reps)) if decode_pool is not None else \
        ([], None, None)
    link_gbps, link_us = kv_link_gbps, kv_link_latency_us
    if decode_pool is not None and link_gbps is None:
        link_gbps, link_us = _default_kv_link(pool, decode_pool)
    route = make_router(router, seed)
    droute = make_router(decode_router, seed) if decode_reps else None
    cluster = Cluster(reps, EngineRouter(route, groups) if groups else route, decode_reps,
                      EngineRouter(droute, dgroups) if dgroups else droute, link_gbps, link_us or 0.0, fast_forward)
    reqs = make_requests(requests)
    cluster.run(reqs, progress)
    replicas = reps + decode_reps
    df = request_table(reqs, replicas)
    summary = summarize(df, replicas, reqs, slo)
    summary["stack"] = pool.profile
    if decode_pool is not None:
        summary["decode_stack"] = decode_pool.profile
    caps = {"prefill" if decode_pool is not None else "replica": dict(cap.summary(), virtual_engines=len(
        groups[0].engines) if groups else 1)}
    if dcap is not None:
        caps["decode"] = dict(dcap.summary(), virtual_engines=len(dgroups[0].engines) if dgroups else 1)
        summary["kv_transfer_s_mean"] = float(df.kv_transfer_s[df.finish_s.notna()].mean())
    return ServeResult(summary, df, caps, [pool] + ([decode_pool] if decode_pool else []), cluster.transfers,
                       replicas)


def _default_kv_link(prefill: Pool, decode: Pool):
    """The link KV crosses between pools: within one system preset, its device link (NVLink); between systems,
    400 Gb/s per GPU (an InfiniBand NDR / ConnectX-7 port, 50 GB/s, 2 us: NVIDIA ConnectX-7 datasheet)."""
    from hw_models.systems import load_system
    tp = max(min(_tp(prefill.mapping), _tp(decode.mapping)), 1)
    base_p, _, group_p = prefill.system.partition(":")
    base_d, _, group_d = decode.system.partition(":")
    if base_p == base_d:
        system = load_system(base_p)
        gp = group_p or next(iter(system.devices))
        gd = group_d or next(iter(system.devices))
        if gp == gd:
            link = system.link_within(gp, system.devices[gp].count)
        else:       # the link joining the two groups (e.g. RoCE between an H100 and an H20 node), one NIC per GPU
            link = next((l for l in system.links.values() if sorted(l.connects) == sorted([gp, gd])), None)
        if link is not None:
            return link.bandwidth_gbps * link.efficiency * tp, link.latency_us
    return 50.0 * tp, 2.0


def _tp(mapping: str) -> int:
    for part in mapping.split(","):
        name, _, degree = part.partition(":")
        if name.strip() == "tp" and degree:
            return int(degree)
    return 1
