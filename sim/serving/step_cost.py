"""The one door from the serving simulator into hwsim's cost models: an iteration's batch -> time, energy, power.

Every call the serving code makes into workloads/, mapping/, hw_models/ and sim/ goes through this module,
so that moving to `sim/api.py` (issue 8) is a one-file change.

What a step is. One iteration of a replica runs, in one forward pass, prefill chunks (n_i new tokens after
c_i cached ones: fresh prompts have c_i = 0; prefix-cache hits and earlier chunks make c_i > 0) and decode
sequences (one new token after c_j cached ones). `Batch` carries exactly the sums the cost needs:

- token-wise ops (projections, MLP, norms, RoPE, KV writes, embeddings, TP all-reduces) see the T = sum(n_i) + D
  tokens of the step stacked into one matrix, as serving stacks run them: they are costed at T tokens;
- the LM head runs on the L rows that sample a token (decodes and prompt-completing chunks);
- decode attention is one paged kernel over all D sequences: its FLOPs and KV bytes are linear in the
  summed context sum(c_j + 1), so it is costed as the traced decode-attention op at batch D and mean context
  sum(c_j + 1) / D (exact in FLOPs and bytes; the cost model then sees one kernel);
- prefill attention is costed per chunk (a varlen FlashAttention kernel does each sequence's tiles) and summed.
  Causal masking skips the tiles above the diagonal, so a chunk does n * (c + n/2) query-key pairs, not the
  traced n * (c + n): the chunk's FLOPs are scaled to that and handed to the cost model as not-causal (for
  c = 0 this is exactly the cost model's own causal halving; for c > 0 it is cheaper than the plain cost model's
  `chunked_prefill`, which halves only square attention).

How it is costed (the fast path). The model's graph templates (`workloads/template.py`: every op's FLOPs, bytes
and shapes as exact polynomials of batch, new tokens and cached tokens) are instantiated as arrays over grids
and run through the device's cost model once per grid block (the array form `sim/sweep.py:predict_many` uses).
Transforms and the mapping are applied op by op as the ratio they make at a reference step (tensor
parallelism, precision and quantization scale each op's numbers by a constant; checked at a second step). Each
grid point keeps its time at a ladder of clock stretches, the energy FLOPs and bytes, the time and energy of ops
longer than the power controller's window (those are capped on their own, as in `predict`) and the collectives'
time. A step adds the tables of its parts and solves the clock under the power cap on the sum, as `predict` does
for one graph. Tables: token-wise ops at every T up to 2,048 and at multiples of 64 beyond (T is rounded up: GEMM
tiles are 64-256 rows, so compute time is a staircase over 64-token steps); decode attention at every batch size
and a geometric grid of mean contexts (linear interpolation; its cost is linear in the context apart from
small-transfer effects); prefill attention on a grid of (chunk, context) (bilinear; the chunk grid holds every
multiple of the device's attn_causal_tile, where the causal-tile model's cost steps). Rows are built lazily, in
blocks, the first time a step needs them.

Tensor parallelism: `mapping.tensor_parallel` at the reference step gives the per-device op scaling and the
collectives (all-reduce after o_proj/down_proj at T tokens, all-gather of the logits at L rows), timed on the
system's link with the stack's all-reduce (`hw_models.collectives.link_collective_time`), devices idle at
static power meanwhile, as `sim/engine.py` runs a symmetric TP step. Pipeline parallelism (pp:N) is a documented
scaling: the stages run one after another with no micro-batches in flight (as `sim/pipeline.py` runs mb:1), so a
step is the TP step over all layers plus pp - 1 sends of the residual stream between stages, while pp - 1 stage
groups wait at static power; weights and KV split evenly over the stages. With N batches in flight (pp:N,mb:N,
vLLM's virtual engines: sim/serving/pipeline.py) a step's cost is the same one batch through every stage, without
the idle stages' power (the other engines keep them busy); `stage_times` splits it into the stages' shares. `exact()` is the slow path: the traced,
mapped step through `mapping.map_graph` and `sim.engine.simulate` (pipelines with mb:1), used by the tests.

MoE models: the templates are the MoE class templates (workloads/moe_template.py: routed experts as two classes
of identical experts, `Op.runs` = layers x experts); every token-wise row is instantiated at the step's T tokens,
so the experts are costed at the tokens routed in the iteration (under `routing`: uniform, or even as traced), and
a routed expert's TP all-reduce is timed at its own rows, once per expert that runs. Sliding-window models: the
attention ops of window layers (attrs["window"]) get tables of their own at the context clipped to the window
(decode: mean of min(c_j + 1, window); prefill chunks: the band's query-key pairs, `window_pairs`); where every
layer has the window the decode tables are keyed by the clipped context itself (`swa_mode` "all"), else the
global layers keep the whole context ("mixed").
The software stack (`hw_models/stacks.py`, default `fused`) decides the kernels (merged projections, the decode
attention kernel and its head-group sharing, the all-reduce) and adds its host costs: `step_overhead_us` to every
iteration (the devices wait at static power, like a collective) and `request_overhead_us` once per request
before it reaches the scheduler (`Cluster`: the request is routed that long after it arrives; TTFT counts it).
Expert parallelism (ep:N, as mapping/expert_parallel.py): attention data-parallel, so the token-wise and attention
tables are keyed by the busiest device's share of the iteration (`_ep_split`: chunks whole, decodes levelled), the
routed experts by the whole iteration's tokens at 1/N of the experts (`_expert_row`), plus two all-to-alls per MoE
layer at the busiest device's tokens; energy counts the N devices as that one.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from hw_models.collectives import link_collective_time
from hw_models.costs import cost_model
from hw_models.power import PowerModel, joins_window
from hw_models.power_solve import window_weights
from hw_models.stacks import request_host_s, stack
from hw_models.systems import as_system, load_system
from workloads.errors import HwsimError
from workloads.fusion import merge_sibling_matmuls
from workloads.moe_template import _class_of

from ..predict import grouped_layers

STRETCH = (1.0, 1.03, 1.06, 1.1, 1.14, 1.19, 1.25, 1.32, 1.4, 1.5, 1.65, 1.85, 2.1, 2.5, 3.0, 4.0, 6.0)
EXACT_T = 2048            # token-wise ops costed at every T up to this; beyond, at multiples of TOKEN_STEP
TOKEN_STEP = 64
BLOCK = 64                # table rows built per cost-model call


@dataclass
class Batch:
    """What one iteration runs. `chunks` holds (new tokens, cached tokens) per prefill chunk."""
    chunks: list = field(default_factory=list)
    decodes: int = 0                 # D sequences decoding one token each
    decode_context: int = 0          # sum over decodes of (cached tokens + 1): the KV each attention reads
    logits: int = None               # rows through the LM head (default: decodes + chunks)
    window_context: int = None       # sliding-window models: sum over decodes of min(cached + 1, window)
    #                                  (default: as if every decode had the mean context)

    @property
    def tokens(self) -> int:
        return sum(n for n, _ in self.chunks) + self.decodes


class StepTime(NamedTuple):
    time_s: float
    energy_j: float                  # all devices of the replica
    power_w: float                   # average over the step, all devices
    clock_mhz: float


def bracket_root(s0, s1, t0, t1, f0, f1, eb, head, e_flop):
    """The stretch s in [s0, s1] (two rungs of the ladder, the cap over at s0 and met at s1) where a step meets the
    cap when its energy per FLOP depends on the clock: head x t(s) = e_flop x fe(s) + eb, with the time t linear
    between the rungs (as the ladder interpolates it) and the FLOP energy fe(s) (FLOPs x stretch^-gamma, in FLOP
    units) geometric, fe = f0 (s / s0)^-g with g from the two rungs: exact where no op has a floor of its own. The
    gap is concave and increasing in s, so Newton's method from s0 climbs to the root. Returns (s, t, fe)."""
    import math
    if s1 <= s0:
        return s1, t1, f1
    slope = (t1 - t0) / (s1 - s0)
    g = -math.log(f1 / f0) / math.log(s1 / s0) if f0 > 0 and f1 > 0 else 0.0
    s = s0
    for _ in range(50):
        fe = f0 * (s / s0) ** -g if f0 > 0 else 0.0
        gap = head * (t0 + slope * (s - s0)) - e_flop * fe - eb
        d = head * slope + e_flop * g * fe / s
        if d <= 0:
            break
        ns = min(max(s - gap / d, s0), s1)
        if abs(ns - s) <= 1e-15 * ns:
            s = ns
            break
        s = ns
    fe = f0 * (s / s0) ** -g if f0 > 0 else 0.0
    return s, t0 + slope * (s - s0), fe


def _ratio(new, old):
    if old == 0:
        if new != 0:
            raise HwsimError("serving: a transform adds work the fast step cost cannot scale; use exact costing")
        return 0.0
    return new / old


class _Scaled:
    """Per-op scaling from the traced template graph to the transformed, mapped per-device graph (by op index: a
    step may run a subset of the reference step's ops)."""

    def __init__(self, plain, mapped):
        self.rows = {}
        for a, b in zip(plain.ops, mapped.ops):
            if a.index != b.index or a.name != b.name:
                raise HwsimError("serving: the mapping changed the op list; the fast step cost cannot follow it")
            num = {k: _ratio(b.attrs[k], v) for k, v in a.attrs.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and isinstance(b.attrs.get(k), (int, float))}
            fixed = {k: v for k, v in b.attrs.items() if k not in num}
            self.rows[a.index] = ((
                _ratio(b.flops, a.flops), {c: _ratio(b.bytes.get(c, 0), v) for c, v in a.bytes.items()},
                {c: _ratio(b.reads.get(c, 0), v) for c, v in a.reads.items()},
                [(_ratio(kb.flops, ka.flops), {c: _ratio(kb.bytes.get(c, 0), v) for c, v in ka.bytes.items()})
                 for ka, kb in zip(a.kernels, b.kernels)], num, fixed, b.dtype, b.repeat))

    def apply(self, graph):
        ops = []
        for op in graph.ops:
            rf, rb, rr, rk, ra, fixed, dtype, repeat = self.rows[op.index]
            attrs = {k: (v * ra[k] if k in ra else v) for k, v in op.attrs.items()}
            attrs.update(fixed)
            ops.append(replace(op, flops=op.flops * rf, dtype=dtype, repeat=repeat,
                               bytes={c: v * rb.get(c, 1.0) for c, v in op.bytes.items()},
                               reads={c: v * rr.get(c, 1.0) for c, v in op.reads.items()},
                               kernels=tuple(replace(k, flops=k.flops * kf, bytes={c: v * kb.get(c, 1.0)
                                                                                    for c, v in k.bytes.items()})
                                             for k, (kf, kb) in zip(op.kernels, rk)),
                               attrs=attrs))
        return graph.with_ops(ops)


# mappings a serving replica does not run, each refused in one line saying why and what to use instead
_MAPPING_REFUSAL = {
    "mb": "serving runs pp:N with one batch in flight (mb:1) or with N batches in flight, one per virtual engine "
          "(pp:N,mb:N, as vLLM does); '{mapping}' asks for mb:{n}",
    "dp": "serving replicas are the data-parallel copies ('{mapping}'): give replicas={n} with the mapping of one "
          "replica instead of dp:{n}",
    "other": "serving supports the mappings single, tp:N and pp:N (got '{mapping}'); offload and other mappings "
             "are not in its step cost",
}


def resolve_system(name: str):
    """A system preset, a device preset (one device), or `system:group` for one device group of a
    heterogeneous system (e.g. lamina-h100-h20:mem, its H20 node), with the links inside that group."""
    base, sep, group = name.partition(":")
    if not sep:
        return load_system(name)
    system = load_system(base)
    if group not in system.devices:
        raise HwsimError(f"system {base} has no device group '{group}'; its groups are {', '.join(system.devices)}")
    links = {k: v for k, v in system.links.items() if v.connects == [group, group]}
    return system.model_copy(update={"id": f"{system.id}:{group}", "devices": {group: system.devices[group]},
                                     "links": links})


def window_pairs(n, c, window):
    """Query-key pairs a chunk of n new tokens after c cached ones computes in a sliding-window layer (each query
    sees at most `window` keys, itself included), on the same footing as the whole-context layers' n (c + n/2):
    that figure times the discrete clipped/unclipped ratio (equal to it while c + n <= window)."""
    n, c = np.asarray(n, float), np.asarray(c, float)
    m = np.clip(window - c, 0.0, n)                 # queries whose whole causal context fits in the window
    clipped = m * (c + 1) + m * (m - 1) / 2 + (n - m) * window
    full = n * c + n * (n + 1) / 2
    return n * (c + n / 2) * clipped / full


def _both_classes(experts: int, top_k: int, start: int) -> int:
    """The smallest token count >= start at which the even routing runs both expert classes (more routed rows
    than experts, not a multiple of them)."""
    t = max(start, 1)
    while t * top_k <= experts or (t * top_k) % experts == 0:
        t += 1
    return t


def _close(a, b, rel=1e-6):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-30)


class StepCost:
    """Iteration costs of one replica: `model` on `system` with `mapping` (single, tp:N, pp:N, tp:T,pp:P or, for MoE
    models, ep:N) and a software stack."""

    def __init__(self, model: str, system, mapping: str = "single", profile: str = "fused", dtype: str = "bf16",
                 quant: str = "none", kv_dtype: str = None, max_tokens: int = 8192, max_seqs: int = 1024,
                 max_context: int = None, power_cap_w: float = None, routing: str = "uniform"):
        from mapping.registry import describe
        from workloads.moe_template import ROUTINGS
        from workloads.capture import load_spec
        import os

        from workloads.spec import ModelSpec
        if isinstance(model, os.PathLike):
            model = os.fspath(model)
        if not isinstance(model, (str, ModelSpec)):
            raise HwsimError(f"model must be a preset name (`hwsim models`), a config.json path or a ModelSpec, got "
                             f"{type(model).__name__}")
        self.spec = load_spec(model) if isinstance(model, str) else model
        self.model_arg = model
        self.model_name = self.spec.name
        self.system = resolve_system(system) if isinstance(system, str) else as_system(system)
        self.mapping = mapping
        self.profile = profile
        self.stack = stack(profile)
        if self.stack.host_queue:
            raise HwsimError(f"serving steps are costed for stacks that replay CUDA graphs (fused, eager, vllm, trtllm, "
                             f"sglang ...); profile '{profile}' issues every kernel from the host, which `hwsim predict` "
                             f"and `hwsim simulate` time as two queues (--profile {profile} --host ...)")
        # host time of the stack the GPU waits for: per iteration (scheduling, sampling, input preparation; the
        # devices idle at static power meanwhile) and per request before it is scheduled (tokenize, admit)
        self.step_overhead_s = self.stack.step_overhead_us * 1e-6
        self.dtype, self.quant, self.kv_dtype = dtype, quant, kv_dtype or dtype
        if routing not in ROUTINGS:
            raise HwsimError(f"unknown MoE routing '{routing}'; use {' or '.join(ROUTINGS)}")
        self.routing = routing            # MoE: how a step's tokens spread over the experts (workloads/moe_template.py)
        items = describe(mapping)
        self.tp, self.pp, self.ep = 1, 1, 1
        self.engines = 1                # pipelines: batches in flight, one per virtual engine (pp:N,mb:N)
        for name, degree in items:
            if name == "tp":
                self.tp = degree
            elif name == "pp":
                self.pp = degree
            elif name == "ep":
                self.ep = degree
            elif name == "mb":
                self.engines = degree
            elif name != "single":
                raise HwsimError(_MAPPING_REFUSAL.get(name, _MAPPING_REFUSAL["other"]).format(mapping=mapping, n=degree),
                                 arguments=("replicas=",))
        if self.engines > 1 and self.engines != self.pp:
            raise HwsimError(_MAPPING_REFUSAL["mb"].format(mapping=mapping, n=self.engines))
        if self.ep > 1:
            self._check_ep(mapping)
        self.devices = self.tp * self.pp * self.ep
        # per request before it is scheduled (tokenize, admit; per rank where the stack sets each rank up)
        self.request_overhead_s = request_host_s(profile, self.tp)
        self.lockstep = self.tp * self.ep      # devices that run each stage's ops together (energy counts them all)
        self.group = next(iter(self.system.devices))
        available = self.system.devices[self.group].count
        if self.devices > available:
            raise HwsimError(f"{mapping} needs {self.devices} devices but system {self.system.id} has {available}")
        self.device = self.system.device(self.group)
        if self.device.device_class != "gpu":       # the step tables are costed in arrays by the GPU model only
            raise HwsimError(f"serving costs its steps with the GPU model; {self.device.id} is a "
                             f"{self.device.device_class} device; serve on a GPU preset or system (`hwsim hardware "
                             f"--class gpu`, `hwsim systems`), or time its steps with `hwsim predict`/`hwsim simulate`")
        self.max_context = int(max_context or self.spec.max_positions)
        if self.max_context > self.spec.max_positions:
            raise HwsimError(f"max context {self.max_context} exceeds {self.spec.name}'s {self.spec.max_positions} positions")
        self.max_tokens = int(max_tokens)
        self.max_seqs = int(max_seqs)
        self.power = PowerModel(self.device)
        self.model = cost_model(self.device, profile)
        # the causal-tile attention's tail (hw_models/gpu.py causal_tail_s): a step's chunks share one varlen kernel
        # and its one longest CTA, so each chunk's tail is kept apart to be paid once (`_one_kernel`); None: no tail
        p = getattr(self.model, "p", {})
        self._untailed = cost_model(self.device, profile, {"attn_causal_tail": 0}) \
            if p.get("attn_causal_tile", 0) and p.get("attn_causal_tail", 0) else None
        self.f_max = float(self.power.f_max)
        self.stretch = [s for s in STRETCH if self.f_max / s >= self.power.f_min * (1 - 1e-9)]
        if self.stretch[-1] < self.f_max / self.power.f_min:
            self.stretch.append(self.f_max / self.power.f_min)
        self.K = len(self.stretch)
        self._S = np.array(self.stretch)
        self.window = self.power.p.get("cap_window_s", 0.0)
        self.per_op_cap = bool(self.power.p.get("cap_per_op"))
        self.sequence = bool(self.power.p.get("cap_sequence")) and bool(self.window) and not self.per_op_cap
        self.static_w = float(self.power.p["static_w"])
        self.e_flop = self.power.p["e_flop_pj"] * 1e-12
        self.e_byte = self.power.p["e_byte_pj"] * 1e-12
        self.gamma = float(self.power.p["gamma"])
        if power_cap_w is not None and not power_cap_w > 0:
            raise HwsimError(f"power_cap_w, the power cap per device, must be positive watts, got {power_cap_w}",
                             arguments=("power_cap_w",))
        if power_cap_w is not None and power_cap_w <= self.static_w:     # no clock meets it: it was taken and ignored
            raise HwsimError(f"the power cap {power_cap_w:g} W is not above {self.device.id}'s static power "
                             f"({self.static_w:g} W), which no clock lowers; give a cap above it")
        self.cap = float(power_cap_w) if power_cap_w else float(self.power.cap)   # per device
        self.power.cap = self.cap
        # pipeline stages run one after another (no micro-batches): while one stage group works, the other
        # pp - 1 wait at static power, as sim/pipeline.py runs a one-micro-batch step
        # with virtual engines (pp:N,mb:N) the other stages are busy with the other engines' batches: an iteration's
        # energy is its own stages' work (sim/serving/pipeline.py accounts the waits)
        self.idle_stage_w = self.static_w * self.tp * (self.pp - 1) if self.engines == 1 else 0.0
        # cap_sequence with clock-dependent energy (gamma != 0): a floored op's FLOP energy follows its own stretch,
        # max(s, floor)^-gamma, not the step's; K more columns hold the FLOP energy (in FLOP units) at each rung
        self.fe = self.sequence and self.gamma != 0.0
        self._Sg = self._S ** -self.gamma
        self.V = self.K + 5 + (self.K if self.fe else 0)   # [times at stretches..., flops, bytes, long time,
        #   long energy, collectives + host wait, (fe: FLOPs x stretch^-gamma at each stretch...)]
        self._templates()
        self._dense = {"decode": np.full((self.max_seqs + 1, self.V), np.nan),
                       "mixed": np.full((EXACT_T + 1, self.V), np.nan)}
        self._dense_big = {}
        self._lm = np.full((self.max_seqs + 1, self.V), np.nan)
        # sliding windows: None (no window shorter than the max context), "all" (every attention layer has the
        # window, Mistral-7B v0.1: the decode tables are keyed by the clipped context), "mixed" (Gemma-2: global
        # layers at the whole context, window layers at the clipped one, from a second decode table)
        self.swa_mode = None if not self.swa or self.swa >= self.max_context else \
            ("mixed" if self._global_attention else "all")
        win = self._window_ops
        if self.swa_mode == "mixed":
            self._dec_keep = lambda op: op.kind == "attention" and op.index not in win
        else:
            self._dec_keep = lambda op: op.kind == "attention"
        top = self.swa if self.swa_mode == "all" else self.max_context
        grid = np.unique(np.rint(np.geomspace(1, top, 56)))
        self.ctx_grid = grid.tolist()
        self._ctx = np.array(self.ctx_grid)
        self._attn_dec = np.full((self.max_seqs + 1, len(self.ctx_grid), self.V), np.nan)
        if self.swa_mode == "mixed":
            self.wctx_grid = np.unique(np.rint(np.geomspace(1, self.swa, 56))).tolist()
            self._attn_dec_w = np.full((self.max_seqs + 1, len(self.wctx_grid), self.V), np.nan)
        self._dec_only = {}
        self._dec_fast = {}
        self._dec_np = {}
        self._prefill_table()

    # --- templates, transforms and mapping ------------------------------------------------------------
    def _templates(self):
        from workloads.capture import _template, _template_reach, moe_template, trace
        windows = sorted({k.window for k in self.spec.layer_kinds if k.window})
        if len(windows) > 1:
            raise HwsimError(f"serving models one sliding-window length per model; {self.spec.name} has "
                             f"{', '.join(map(str, windows))}")
        self.swa = windows[0] if windows else 0
        if self.swa and self.swa < _template_reach():
            raise HwsimError(f"serving's step cost needs a sliding window of at least {_template_reach()} tokens "
                             f"(its graph templates are fitted on steps that long); {self.spec.name} has {self.swa}")
        self.moe = self.spec.moe
        self.tpl = {}
        self.scale = {}
        refs = {"decode": ((2, 1, 24), (3, 1, 40)), "chunked_prefill": ((1, 24, 16), (1, 40, 8))}
        if self.moe is not None:
            # reference steps in which both expert classes run (so the scalar graph has every op of the array one)
            t1 = _both_classes(self.moe.num_experts, self.moe.top_k, 2)
            t2 = _both_classes(self.moe.num_experts, self.moe.top_k, t1 + 1)
            refs = {"decode": ((t1, 1, 24), (t2, 1, 40)), "chunked_prefill": ((1, t1, 16), (1, t2, 8))}
        for phase, (ref, check) in refs.items():
            if self.moe is not None:
                tpl = moe_template(self.spec, phase)
            else:
                trace(self.spec, phase, ref[0], ref[1] if phase != "decode" else ref[2],
                      ref[2] if phase != "decode" else 0)
                tpl = _template(self.spec, phase)
            if tpl is None:
                what = "MoE graph template" if self.moe is not None else "graph template"
                raise HwsimError(f"no {what} for {self.spec.name} ({phase}): its traced step is not polynomial in the "
                                 f"step's size, and serving's fast step cost needs one; this model cannot be served yet")
            self.tpl[phase] = tpl
            plain = tpl.instantiate(*ref)
            mapped, self.mapped_meta, colls, self.kv_share = self._transform(plain)
            self.scale[phase] = _Scaled(plain, mapped)
            # the scaling must reproduce the transformed graph at another step
            plain2 = tpl.instantiate(*check)
            mine = self.scale[phase].apply(plain2)
            theirs = self._transform(plain2)[0]
            for a, b in zip(mine.ops, theirs.ops):
                if not (_close(a.flops, b.flops) and all(_close(v, b.bytes.get(c, 0)) for c, v in a.bytes.items())):
                    raise HwsimError(f"serving: the transforms of {self.spec.name} do not scale op by op "
                                     f"({a.name}); use exact costing")
            if phase == "decode":
                self.colls = colls
                self._ref_tokens = ref[0]
        # pipeline stages split the layers (and their weights and KV) evenly; the embedding and the LM head stay
        # whole on the first and last stage and are spread here (a documented approximation)
        self.weight_bytes = float(self.mapped_meta["weight_storage_bytes"]) / self.pp
        self.kv_share /= self.pp
        self.kv_bytes_per_token = float(self.mapped_meta["kv_bytes_per_token"])      # whole model, all devices
        ref_graph = self.tpl["decode"].instantiate(self._ref_tokens, 1, 24)
        self._repeat = {op.index: op.repeat for op in ref_graph.ops}
        # one stage hands the next the residual stream: hidden x its dtype per token, read from the transformed,
        # mapped graph (as mapping/pipeline.py's send is), so an fp8 or fp32 run sends fp8- or fp32-sized activations
        sent = self.scale["decode"].apply(ref_graph)
        hidden = next((op for op in sent.ops if op.name == "residual_mlp"), None)
        self._send_bytes_per_token = 0.0
        if hidden is not None:
            self._send_bytes_per_token = (hidden.bytes.get("activation", 0) - hidden.reads.get("activation", 0)) \
                / self._ref_tokens
        self._lm_ops = {op.index for op in ref_graph.ops if op.name.startswith("lm_head")}
        # routed-expert ops (MoE): op index -> expert class (0 or 1), and the rows of each class at the reference
        self._expert_class = {}
        self._ref_rows = (1.0, 1.0)
        if self.moe is not None:
            from workloads.moe_template import expert_classes
            self._expert_class = {i: k for i, (k, _) in self.tpl["decode"]._class_ops().items() if k is not None}
            (ra, _), (rb, _) = expert_classes(self._ref_tokens, self.moe.top_k, self.moe.num_experts, "even")
            self._ref_rows = (float(ra), float(rb))
        # attention ops of sliding-window layers (their context is clipped to the window)
        self._window_ops = {op.index for op in ref_graph.ops if op.kind == "attention" and op.attrs.get("window")}
        self._global_attention = any(op.kind == "attention" and not op.attrs.get("window") for op in ref_graph.ops)
        if self.ep > 1:
            self._setup_ep(ref_graph)

    # --- expert parallelism ---------------------------------------------------------------------------------
    def _check_ep(self, mapping):
        n, moe = self.ep, self.spec.moe
        if self.tp > 1 or self.pp > 1:
            raise HwsimError(f"serving runs ep:N on its own ('{mapping}'): the execution layer's expert parallelism "
                             f"spreads attention data-parallel over the same N devices and does not combine with tp "
                             f"or pp; use ep:{n}")
        if moe is None:
            raise HwsimError(f"ep:{n} needs a mixture-of-experts model; {self.spec.name} has no experts; use tp:{n}")
        if moe.num_experts % n:
            raise HwsimError(f"ep:{n} does not divide the {moe.num_experts} experts of {self.spec.name}; use a "
                             f"divisor of {moe.num_experts}")
        if any(k.window for k in self.spec.layer_kinds):
            raise HwsimError(f"serving does not model ep:{n} with sliding-window layers ({self.spec.name}); use tp:N")

    def _setup_ep(self, ref_graph):
        """Weights per device (the routed experts split over the N devices, everything else replicated, as
        mapping/expert_parallel.py), KV held by the device of its sequence, and the all-to-all's bytes per token."""
        n, moe, spec = self.ep, self.moe, self.spec
        meta = self.mapped_meta
        moe_layers = sum(1 for kind in spec.layer_kinds if kind.moe)
        expert_params = 3 * spec.hidden * moe.expert_intermediate * moe.num_experts * moe_layers
        per_param = meta["weight_storage_bytes"] / meta["params"]
        self.weight_bytes = (meta["params"] - expert_params * (1 - 1 / n)) * per_param
        self.kv_share /= n
        scaled = self.scale["decode"].apply(ref_graph)
        router = [op for op in scaled.ops if op.name == "mlp.router_proj" and op.group is not None]
        # tokens leaving one device per MoE layer x top-k x the hidden state's bytes, twice (dispatch, combine)
        self._a2a_bytes_per_token = router[0].reads.get("activation", 0) / self._ref_tokens * moe.top_k
        self._a2a_count = 2 * sum(op.repeat for op in router)
        self._a2a_link = self.system.link_within(self.group, n)
        if self._a2a_link is None:
            raise HwsimError(f"system {self.system.id} has no link between its '{self.group}' devices; ep:{n} needs one")
        self._expert = {"decode": np.full((self.max_seqs + 1, self.V), np.nan),
                        "mixed": np.full((EXACT_T + 1, self.V), np.nan)}
        self._expert_big = {}

    def _ep_all_to_all(self, tokens):
        """Seconds of the all-to-alls of a step whose busiest device holds `tokens` tokens (array)."""
        return np.array([self._a2a_count * link_collective_time("all_to_all", x * self._a2a_bytes_per_token, self.ep,
                                                                self._a2a_link) if x > 0 else 0.0 for x in tokens])

    def _expert_row(self, kind, t):
        """The routed experts of a step of t tokens (all devices' tokens: the router sends each token to its experts
        wherever they are) on one device: its E / N experts, i.e. the classes' expert counts / N (`share`); kind
        'decode' for decode-only steps (the decode template), 'mixed' otherwise."""
        return self._table_row(kind, t, self._expert_big, self._expert, self._build_expert)

    @staticmethod
    def _table_row(kind, n, big, tables, build):
        """Row n of a lazily built cost table (`tables[kind]`, NaN rows built a BLOCK at a time by `build`); mixed
        steps past EXACT_T tokens are rounded up to TOKEN_STEP and kept in `big`."""
        if kind == "mixed" and n > EXACT_T:
            q = -(-n // TOKEN_STEP)
            row = big.get(q)
            if row is None:
                base = (q // BLOCK) * BLOCK
                qs = np.arange(max(base, 1), base + BLOCK)
                for qq, r in zip(qs.tolist(), build("mixed", qs * TOKEN_STEP)):
                    big[qq] = r
                row = big[q]
            return row
        table = tables[kind]
        if n >= len(table):
            raise HwsimError(f"serving: a step of {n} {'sequences' if kind == 'decode' else 'tokens'} is past the "
                             f"cost table's {len(table) - 1}; raise max_seqs/max_tokens")
        row = table[n]
        if math.isnan(row[0]):
            lo, hi = max(1, (n // BLOCK) * BLOCK), min(len(table), (n // BLOCK + 1) * BLOCK)
            table[lo:hi] = build(kind, np.arange(lo, hi))
            row = table[n]
        return row

    def _build_expert(self, kind, values):
        values = np.asarray(values, float)
        experts = lambda op: _class_of(op.name) is not None     # by name: op indices differ between templates
        share = 1.0 / self.ep
        if kind == "decode":
            return self._points("decode", values, np.ones_like(values), np.full_like(values, 8), experts, share=share)
        rows = np.zeros((len(values), self.V))
        one = values == 1
        if one.any():
            k = int(one.sum())
            rows[one] = self._points("decode", np.ones(k), np.ones(k), np.full(k, 8), experts, share=share)
        if (~one).any():
            v = values[~one]
            rows[~one] = self._points("chunked_prefill", np.ones_like(v), v, np.full_like(v, 8), experts, share=share)
        return rows

    def _ep_split(self, batch):
        """The busiest device of an iteration under expert parallelism: each sequence's attention runs on one device
        (data-parallel attention); prefill chunks go longest first to the device with the fewest tokens, then the
        decodes fill the devices level. Returns (its tokens, its chunks, its decodes)."""
        n = self.ep
        loads, mine = [0] * n, [[] for _ in range(n)]
        for chunk in sorted(batch.chunks, reverse=True):
            j = loads.index(min(loads))
            loads[j] += chunk[0]
            mine[j].append(chunk)
        d = batch.decodes
        order = sorted(range(n), key=lambda j: loads[j])
        k, level = n, 0.0
        for i in range(1, n + 1):                       # water level over the i least-loaded devices
            level = (d + sum(loads[j] for j in order[:i])) / i
            if i == n or level <= loads[order[i]]:
                k = i
                break
        low = order[:k]
        base = int(math.floor(level))
        extra = d + sum(loads[j] for j in low) - base * k      # devices at base + 1
        decs = [0] * n
        for r, j in enumerate(sorted(low, key=lambda j: -loads[j])):
            decs[j] = base + (1 if r < extra else 0) - loads[j]
        total = [loads[j] + decs[j] for j in range(n)]
        top = max(total)
        j = max((j for j in range(n) if total[j] == top), key=lambda j: (loads[j], decs[j]))
        return top, mine[j], decs[j]

    def _vector_ep(self, batch):
        d = batch.decodes
        tokens, chunks, dj = self._ep_split(batch)
        if not batch.chunks:
            logits = batch.logits if batch.logits is not None else d
            vec = self._dense_row("decode", dj) + self._attn_decode(dj, batch.decode_context * dj / d) + \
                self._expert_row("decode", d)
            lj = min(dj, logits)
            return vec - self._lm_row(dj) + (self._lm_row(lj) if lj else 0.0)
        logits = batch.logits if batch.logits is not None else d + len(batch.chunks)
        lj = dj + max(0, min(len(chunks), logits - d))
        vec = self._dense_row("mixed", tokens) + self._expert_row("mixed", batch.tokens)
        if lj:
            vec = vec + self._lm_row(lj)
        if dj:
            vec = vec + self._attn_decode(dj, batch.decode_context * dj / d)
        for n, c in chunks:
            vec = vec + self._chunk_attention(n, c)
        return self._one_kernel(vec, [self._chunk_fixed(n, c) for n, c in chunks if n > 1], self._tails(chunks))

    def _one_kernel(self, vec, fixed, tails=None):
        """The step's prefill chunks (several tokens each) share one attention kernel a layer, as the serving
        stacks' varlen kernels run them (FlashAttention varlen in vLLM and SGLang, TensorRT-LLM's packed context
        FMHA): the per-chunk tables each carry a kernel's fixed cost, which the step pays once, the largest
        (priced apart, 32 chunks of 16 tokens cost 58% more than predict's one batched kernel on the H200).
        `fixed`: each multi-token chunk's fixed seconds (`_attn_pre_fixed`, all layers); `tails`: their causal
        tails' seconds at the top clock (`_attn_pre_tail`, compute: stretched with each rung), of which the kernel
        pays the largest chunk's once too."""
        if len(fixed) > 1:
            if tails:
                shared = np.asarray(fixed)[:, None] + np.asarray(tails)[:, None] * self._S[None, :]
                vec[:self.K] -= shared.sum(axis=0) - shared.max(axis=0)
            else:
                vec[:self.K] -= sum(fixed) - max(fixed)       # `vec` is the step's own sum (np.dot or a new array)
        return vec

    def _tails(self, chunks):
        """Each multi-token chunk's causal tail seconds (`_attn_pre_tail`), or None where the device has none."""
        if self._attn_pre_tail is None:
            return None
        out = []
        for n, c in chunks:
            if n > 1:
                ci, cw = self._locate(self.c_grid, c)
                ni, nw = self._locate(self.n_grid, n)
                w4 = ((1 - nw) * (1 - cw), (1 - nw) * cw, nw * (1 - cw), nw * cw)
                r0, r1 = self._attn_pre_tail[ni], self._attn_pre_tail[ni + 1]
                out.append(w4[0] * r0[ci] + w4[1] * r0[ci + 1] + w4[2] * r1[ci] + w4[3] * r1[ci + 1])
        return out

    def _chunk_fixed(self, n, c):
        ci, cw = self._locate(self.c_grid, c)
        ni, nw = self._locate(self.n_grid, n)
        return self._fixed_at(ni, ci, ((1 - nw) * (1 - cw), (1 - nw) * cw, nw * (1 - cw), nw * cw))

    def _fixed_at(self, ni, ci, w4):
        """A chunk's attention fixed seconds from `_attn_pre_fixed`, at the grid cell and bilinear weights its
        table rows were read with."""
        r0, r1 = self._attn_pre_fixed[ni], self._attn_pre_fixed[ni + 1]
        return w4[0] * r0[ci] + w4[1] * r0[ci + 1] + w4[2] * r1[ci] + w4[3] * r1[ci + 1]

    def _chunk_attention(self, n, c):
        if c + n > self.max_context:
            raise HwsimError(f"serving: a chunk reaches {c + n} positions, past the max context {self.max_context}")
        ci, cw = self._locate(self.c_grid, c)
        if n == 1:
            return self._attn_one[ci] * (1 - cw) + self._attn_one[ci + 1] * cw
        ni, nw = self._locate(self.n_grid, n)
        t = self._attn_pre
        return (t[ni, ci] * (1 - nw) * (1 - cw) + t[ni, ci + 1] * (1 - nw) * cw + t[ni + 1, ci] * nw * (1 - cw)
                + t[ni + 1, ci + 1] * nw * cw)

    def _transform(self, graph):
        """Precision/quantization then the mapping, on a scalar graph (as the CLI's recipe does)."""
        from mapping import map_graph
        from workloads.transforms import apply_precision
        # a template's step carries no spec; the TP shard needs it to refuse splits the heads or the MLP do not take
        # (tp:3 of 32 heads) and to keep KV heads whole where there are fewer than devices (MQA/GQA)
        graph.spec = graph.spec or self.spec
        g = apply_precision(graph, self.dtype, self.quant, self.kv_dtype)
        mapped = map_graph(g, self.system, f"tp:{self.tp}" if self.tp > 1 else "single")
        share = mapped.graph.meta["kv_cache_storage_bytes"] / g.meta["kv_cache_storage_bytes"]
        return mapped.graph, dict(mapped.graph.meta, kv_bytes_per_token=g.meta["kv_bytes_per_token"]), \
            list(mapped.collectives), share

    def _instantiate(self, phase, b, n, c):
        tpl = self.tpl[phase]
        b, n, c = (np.asarray(x, float) for x in (b, n, c))
        graph = tpl.instantiate_many(b, n, c, routing=self.routing) if self.moe is not None else \
            tpl.instantiate_many(b, n, c)
        return self.scale[phase].apply(graph)

    def _blocks(self, phase, b, n, c):
        """Per step, the code of the graph block it instantiates in (templates keep per-block kernel flags: one
        row or several, one token or several, and for MoE one expert row or several per class)."""
        if self.moe is None:
            return (b > 1) * 2 + (n > 1)
        code = self.tpl[phase].block(b, n, c, self.routing)
        if (code < 0).any():
            t = int((b * n)[code < 0][0])
            raise HwsimError(f"serving: the MoE graph template of {self.spec.name} does not cover a {phase} step of "
                             f"{t} tokens (an expert would take every row); use exact costing")
        return code

    def _points(self, phase, b, n, c, keep, causal_scale=None, collectives=None, share=1.0, square_causal=False,
                fixed_out=None, tail_out=None):
        """[points, V] for steps (b, n, c) of a phase's template, one cost-model call per regime
        (templates keep per-regime kernel flags: one row or several, one token or several). `fixed_out` ([points]):
        filled with the attention ops' fixed seconds per step that sit in the time columns (`_vectors`); `tail_out`
        likewise with their causal tails' seconds at the top clock."""
        b, n, c = (np.atleast_1d(np.asarray(x, float)) for x in (b, n, c))
        out = np.zeros((len(b), self.V))
        regime = self._blocks(phase, b, n, c)
        for r in np.unique(regime):
            sel = regime == r
            g = self._instantiate(phase, b[sel], n[sel], c[sel])
            scale = None if causal_scale is None else np.asarray(causal_scale)[sel]
            coll = None if collectives is None else np.asarray(collectives)[sel]
            fixed = None if fixed_out is None else np.zeros(int(sel.sum()))
            tail = None if tail_out is None else np.zeros(int(sel.sum()))
            out[sel] = self._vectors(g, keep, int(sel.sum()), scale, coll, share, square_causal, fixed, tail)
            if fixed_out is not None:
                fixed_out[sel] = fixed
            if tail_out is not None:
                tail_out[sel] = tail
        return out

    # --- costing arrays of steps --------------------------------------------------------------------------
    def _vectors(self, graph, keep, points: int, causal_scale=None, collectives=None, share=1.0,
                 square_causal=False, fixed_out=None, tail_out=None):
        """[points, V]: the ops of `graph` that `keep` selects, costed at every point (routed experts' runs times
        `share`: one device's part of them under expert parallelism). `fixed_out` ([points], optional): adds the
        attention ops' fixed (per-kernel) seconds that went into the time columns, so that a step can pay them once
        for all its chunks (`vector`: one varlen attention kernel a layer); `tail_out` ([points], optional) adds their
        causal tails' compute seconds at the top clock (`_untailed`), paid once too."""
        if self.stack.merge_projections:
            graph = merge_sibling_matmuls(graph)[0]
        # a grouped MoE layer (the stack's moe_kernel): the expert ops priced as their share of it; under expert
        # parallelism the grouped kernel of one device's experts (`share` of each class)
        graph = grouped_layers(graph, self.model, share)
        out = np.zeros((points, self.V))
        S = self._S[:, None]
        seq_ops = []
        for op in graph.ops:
            if not keep(op):
                continue
            if causal_scale is not None and op.kind == "attention":
                # the query-key pairs are counted here (causal, and clipped to a sliding window): the cost model
                # must not narrow them again; a chunk with no cached tokens (`square_causal`: sq = sk, no window)
                # stays causal self-attention, which the cost model prices as predict does (causal tiles where the
                # device sets attn_causal_tile)
                if square_causal:
                    sq, sk = np.asarray(op.attrs["sq"], float), np.asarray(op.attrs["sk"], float)
                    square = (sq == sk) & (sq > 1)
                    op = replace(op, flops=op.flops * np.where(square, 1.0, causal_scale),
                                 attrs=dict(op.attrs, causal=True, window=0))
                else:
                    op = replace(op, flops=op.flops * causal_scale, attrs=dict(op.attrs, causal=False, window=0))
            # energy counts the FLOPs the kernels execute, as `predict` does (attention: those its time takes)
            energy_flops = self.model.energy_flops(op)
            c = self.model.cost(op, self.f_max)
            shape = (points,)
            compute = np.broadcast_to(np.asarray(c.compute_s, float), shape)
            memory = np.broadcast_to(np.asarray(c.memory_s, float), shape)
            fixed = np.broadcast_to(np.asarray(c.overhead_s, float), shape)
            flops = np.broadcast_to(np.asarray(energy_flops, float), shape)
            nbytes = np.broadcast_to(np.asarray(c.bytes, float), shape)
            reps = np.broadcast_to(np.asarray(op.runs, float), shape)     # layers x identical experts (MoE)
            if share != 1.0 and _class_of(op.name) is not None:
                reps = reps * share
            top = np.maximum(compute, memory) + fixed
            tail = 0.0
            if tail_out is not None and op.kind == "attention" and self._untailed is not None:
                tail = compute - np.broadcast_to(np.asarray(self._untailed.cost(op, self.f_max).compute_s, float), shape)
            if self.sequence:         # cap_sequence: priced after the loop, window by window
                seq_ops.append((compute, memory, fixed, flops, nbytes, reps, top, joins_window(op)))
                if fixed_out is not None and op.kind == "attention":
                    fixed_out += reps * fixed
                if tail_out is not None:
                    tail_out += reps * tail
                continue
            long = np.ones(shape, bool) if self.per_op_cap else (top > self.window if self.window else np.zeros(shape, bool))
            short = ~long
            if fixed_out is not None and op.kind == "attention":
                fixed_out += reps * short * fixed
            if tail_out is not None:
                tail_out += reps * short * tail
            out[:, :self.K] += (reps * short)[:, None] * (np.maximum(compute[None, :] * S, memory[None, :]) + fixed[None, :]).T
            out[:, self.K] += reps * short * flops
            out[:, self.K + 1] += reps * short * nbytes
            if self.fe:
                out[:, self.K + 5:] += (reps * short * flops)[:, None] * self._Sg[None, :]
            if long.any():
                def op_time(f):
                    return np.maximum(compute * (self.f_max / f), memory) + fixed
                t = op_time(np.full(shape, self.f_max))
                capped = self.power.energy(t, flops, nbytes, self.f_max) > self.cap * t
                f = np.where(capped, self._clock_under_cap(op_time, flops, nbytes, shape, 30), self.f_max)
                t = np.maximum(compute * (self.f_max / f), memory) + fixed
                out[:, self.K + 2] += reps * long * t
                out[:, self.K + 3] += reps * long * self.power.energy(t, flops, nbytes, f)
        if seq_ops:
            self._sequence_windows(out, seq_ops, points)
        if collectives is not None:
            out[:, self.K + 4] += collectives
        return out

    def _clock_under_cap(self, time_at, flops, nbytes, n, iterations):
        """The highest clock (bisected between f_min and f_max) at which work taking `time_at(clock)` with these
        FLOPs and bytes stays under the cap, for n entries at once."""
        lo, hi = np.full(n, float(self.power.f_min)), np.full(n, self.f_max)
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            t = time_at(mid)
            over = self.power.energy(t, flops, nbytes, mid) > self.cap * t
            hi = np.where(over, mid, hi)
            lo = np.where(over, lo, mid)
        return lo

    def _sequence_windows(self, out, ops, points):
        """`cap_sequence` (hw_models.power_solve.window_stretch): a joined op (`joins_window`) whose window is over
        the cap at the top clock runs no faster than the stretch that brings its window under it (bisected); that
        floor folds into its time at every stretch of the ladder, max(c s, c floor, m), so the step's own solve
        (and a lower cap or a clock cap on it, sim/cluster) works on it as on any op. The joined ops of a step are
        all in one part (the token-wise rows), so their windows are the whole step's."""
        C, M, O, F_, B, R, T = (np.stack([np.broadcast_to(o[k], (points,)) for o in ops], axis=1) for k in range(7))
        J = np.array([o[7] for o in ops], dtype=bool)
        Wt = window_weights(np.where(R > 0, T, 0.0), J, self.window)
        Eop = self.power.energy(np.zeros_like(T), F_, B, self.f_max)          # dynamic energy of one run
        Tw = np.einsum("pij,pj->pi", Wt, T)
        Kw = np.einsum("pij,pj->pi", Wt, Eop)
        own = (T > 0) & (self.static_w * T + Eop > self.cap * T)          # as power_solve.window_hot
        hot = own & J[None, :] & (R > 0) & (Tw > 0) & (self.static_w * Tw + Kw > self.cap * Tw)
        M2 = M
        floor = np.ones_like(C)
        if hot.any():
            pr, oi = np.nonzero(hot)
            wt, c, m, o = Wt[pr, oi], C[pr], M[pr], O[pr]
            wflops, wbytes = (wt * F_[pr]).sum(axis=1), (wt * B[pr]).sum(axis=1)

            def window_time(f):
                return (wt * (np.maximum(c * (self.f_max / f)[:, None], m) + o)).sum(axis=1)
            lo = self._clock_under_cap(window_time, wflops, wbytes, len(pr), 40)
            M2 = M.copy()
            M2[pr, oi] = np.maximum(M[pr, oi], C[pr, oi] * (self.f_max / lo))
            floor[pr, oi] = self.f_max / lo
        Sx = self._S[None, :, None]
        out[:, :self.K] += (R[:, None, :] * (np.maximum(C[:, None, :] * Sx, M2[:, None, :]) + O[:, None, :])).sum(axis=2)
        out[:, self.K] += (R * F_).sum(axis=1)
        out[:, self.K + 1] += (R * B).sum(axis=1)
        if self.fe:              # each op's FLOPs at max(rung, its floor)^-gamma (a floor: C x floor folded in M2)
            Sx = np.maximum(self._S[None, :, None], floor[:, None, :])
            out[:, self.K + 5:] += (R[:, None, :] * F_[:, None, :] * Sx ** -self.gamma).sum(axis=2)

    def _collective_times(self, tokens, rows):
        """Seconds of TP collectives per step at `tokens` tokens and `rows` logit rows (arrays), and of the
        pipeline's stage-to-stage sends (latency + bytes over the link, as sim/pipeline.py)."""
        tokens = np.asarray(tokens, float)
        sends = np.zeros(len(tokens))
        if self.pp > 1:
            link = self.system.link_within(self.group, self.devices)
            if link is not None:
                sends = np.where(tokens > 0, (self.pp - 1) * (link.latency_us * 1e-6 + tokens
                                 * self._send_bytes_per_token / (link.bandwidth_gbps * 1e9)), 0.0)
        if self.ep > 1:
            sends = sends + self._ep_all_to_all(tokens)
        if self.tp == 1 or not self.colls:
            return sends
        link = self.system.links[self.colls[0].link]
        host = 0.0             # CUDA-graph stacks: collectives replay inside the graph (host-issued stacks refused)
        repeat, lm = self._repeat, self._lm_ops
        total = np.zeros(len(tokens))
        classes = None
        for col in self.colls:
            k = self._expert_class.get(col.after)
            if k is not None:
                # a routed expert's row-parallel projection ends in an all-reduce of its own rows, once per expert
                # that runs (as the traced step's expert ops each have theirs)
                if classes is None:
                    from workloads.moe_template import expert_classes
                    classes = expert_classes(np.maximum(tokens, 1), self.moe.top_k, self.moe.num_experts, self.routing)
                rows_k, count_k = classes[k]
                per = col.bytes / self._ref_rows[k]
                times = [count * link_collective_time(col.kind, per * r, col.participants, link,
                                                      self.stack.custom_all_reduce) if count > 0 and x > 0 else 0.0
                         for x, r, count in zip(tokens, np.broadcast_to(rows_k, tokens.shape),
                                                np.broadcast_to(count_k, tokens.shape))]
                total += repeat.get(col.after, 1) * np.array(times)
                continue
            per = col.bytes / self._ref_tokens
            scale = rows if col.after in lm else tokens
            times = [max(link_collective_time(col.kind, per * x, col.participants, link, self.stack.custom_all_reduce),
                         host) if x > 0 else 0.0 for x in scale]
            total += repeat.get(col.after, 1) * np.array(times)
        return total + sends

    def stage_times(self, time_s: float, tokens: int, logits: int = 0):
        """A pipelined iteration of `time_s` (all stages one after another, `tokens` tokens, `logits` rows through
        the LM head) as ([seconds of each stage], seconds per send between stages): the LM head (and its
        collective) on the last stage, the layers' work split evenly over the stages (as their weights and KV are),
        the pp - 1 sends of the residual stream as `_collective_times` counts them."""
        send = 0.0
        if self.pp > 1:
            link = self.system.link_within(self.group, self.devices)
            if link is not None and tokens > 0:
                send = link.latency_us * 1e-6 + tokens * self._send_bytes_per_token / (link.bandwidth_gbps * 1e9)
        head = 0.0
        if logits:
            row = self._lm_row(min(int(logits), len(self._lm) - 1))
            head = float(row[0] + row[self.K + 2] + row[self.K + 4])
        layers = max(time_s - (self.pp - 1) * send - head, 0.0)
        head = min(head, time_s - (self.pp - 1) * send) if time_s > (self.pp - 1) * send else 0.0
        stages = [layers / self.pp] * self.pp
        stages[-1] += head
        return stages, send

    def _build_dense(self, kind, values):
        """Rows of token-wise ops (kind 'decode': decode steps of D = value, LM head included;
        'mixed': T = value tokens with a prefill among them, LM head excluded)."""
        values = np.asarray(values, float)
        if self.ep > 1:            # expert parallel: the routed experts are costed apart (`_expert_row`)
            not_attn = lambda op: op.kind != "attention" and _class_of(op.name) is None
        else:
            not_attn = lambda op: op.kind != "attention"
        if kind == "decode":
            return self._points("decode", values, np.ones_like(values), np.full_like(values, 8), not_attn,
                                collectives=self._collective_times(values, values) + self.step_overhead_s)
        rows = np.zeros((len(values), self.V))
        body = lambda op: not_attn(op) and not op.name.startswith("lm_head")
        one = values == 1
        if one.any():      # a one-token chunk and nothing else: a decode-shaped step without its LM head
            k = int(one.sum())
            rows[one] = self._points("decode", np.ones(k), np.ones(k), np.full(k, 8), body,
                                     collectives=self._collective_times(values[one], np.zeros(k)) + self.step_overhead_s)
        many = ~one
        if many.any():
            v = values[many]
            rows[many] = self._points("chunked_prefill", np.ones_like(v), v, np.full_like(v, 8), body,
                                      collectives=self._collective_times(v, np.zeros(len(v))) + self.step_overhead_s)
        return rows

    def _dense_row(self, kind, n):
        return self._table_row(kind, n, self._dense_big, self._dense, self._build_dense)

    def _lm_row(self, rows):
        row = self._lm[rows]
        if math.isnan(row[0]):
            lo = max(1, (rows // BLOCK) * BLOCK)
            hi = min(len(self._lm), (rows // BLOCK + 1) * BLOCK)
            v = np.arange(lo, hi, dtype=float)
            coll = self._collective_times(np.zeros(len(v)), v)
            self._lm[lo:hi] = self._points("decode", v, np.ones_like(v), np.full_like(v, 8),
                                           lambda op: op.name.startswith("lm_head"), collectives=coll)
            row = self._lm[rows]
        return row

    def _attn_decode_rows(self, d, window: bool = False):
        """Decode attention rows of batch sizes around d at every context of the grid (`window`: the window layers
        of a mixed model, on the grid up to the window)."""
        block = 16
        lo, hi = max(1, (d // block) * block), min(self.max_seqs + 1, (d // block + 1) * block)
        grid = np.array(self.wctx_grid) if window else self._ctx
        ds = np.repeat(np.arange(lo, hi, dtype=float), len(grid))
        ctx = np.tile(grid, hi - lo)
        keep = (lambda op: op.index in self._window_ops) if window else self._dec_keep
        vec = self._points("decode", ds, np.ones_like(ds), ctx - 1, keep)
        (self._attn_dec_w if window else self._attn_dec)[lo:hi] = vec.reshape(hi - lo, len(grid), self.V)

    def _prefill_table(self):
        """Prefill attention per chunk on a (new tokens, cached tokens) grid: the layers at the whole context
        (`_attn_pre`, `_attn_one` for one-token chunks) and, with a sliding window, the window layers at the
        clipped one (`_attn_pre_w`, `_attn_one_w`)."""
        top = max(self.max_tokens, self.max_context)
        extra = [self.swa - 1, self.swa] if self.swa_mode else []
        # the causal-tile model (attn_causal_tile) prices a fresh chunk's attention as a staircase in its query tiles:
        # every tile multiple and the length after it are grid points, so a chunk of whole tiles (128, 512, ...) is
        # priced exactly and no interval spans a step's rise
        tile = int(getattr(self.model, "p", {}).get("attn_causal_tile", 0) or 0)
        steps = np.arange(tile, top + 1, tile) if tile > 0 else np.zeros(0)
        n = np.unique(np.concatenate([np.arange(2, 33), np.rint(np.geomspace(32, top, 72)), extra, steps,
                                      steps[steps < top] + 1])).astype(float)
        c = np.unique(np.concatenate([[0.0], np.rint(np.geomspace(1, self.max_context, 48)), extra]))
        self.n_grid, self.c_grid = n.tolist(), c.tolist()
        nn, cc = np.meshgrid(n, c, indexing="ij")
        nn, cc = nn.ravel(), cc.ravel()
        win = self._window_ops if self.swa_mode else set()
        # each chunk's attention kernels' fixed seconds (all layers), on the same grid: a step's chunks of several
        # tokens share one kernel a layer and pay them once (`vector`)
        fixed = np.zeros(len(nn))
        tail = np.zeros(len(nn)) if self._untailed is not None else None     # their causal tails (`_untailed`)
        if self.swa_mode == "all":           # no layer attends to the whole context
            self._attn_pre = np.zeros((len(n), len(c), self.V))
            self._attn_one = np.zeros((len(c), self.V))
        else:
            keep = lambda op: op.kind == "attention" and op.index not in win
            scale = (cc + nn / 2) / (cc + nn)
            self._attn_pre = self._points("chunked_prefill", np.ones_like(nn), nn, cc, keep, causal_scale=scale,
                                          square_causal=True, fixed_out=fixed,
                                          tail_out=tail).reshape(len(n), len(c), self.V)
            self._attn_one = self._points("decode", np.ones(len(c)), np.ones(len(c)), c, keep)   # one-token chunks
        if self.swa_mode:
            keep = lambda op: op.index in win
            clipped = np.minimum(cc, self.swa - 1)
            fixed_w = np.zeros(len(nn))
            tail_w = None if tail is None else np.zeros(len(nn))
            self._attn_pre_w = self._points("chunked_prefill", np.ones_like(nn), nn, clipped, keep,
                                            causal_scale=window_pairs(nn, cc, self.swa) / (nn * (clipped + nn)),
                                            fixed_out=fixed_w, tail_out=tail_w).reshape(len(n), len(c), self.V)
            fixed = fixed + fixed_w
            tail = None if tail is None else tail + tail_w
            self._attn_one_w = self._points("decode", np.ones(len(c)), np.ones(len(c)),
                                            np.minimum(c, self.swa - 1), keep)
        self._attn_pre_fixed = fixed.reshape(len(n), len(c)).tolist()     # nested lists: fast scalar reads
        self._attn_pre_tail = None if tail is None else tail.reshape(len(n), len(c)).tolist()

    # --- lookups -------------------------------------------------------------------------------------------
    @staticmethod
    def _locate(grid, x):
        i = bisect.bisect_right(grid, x) - 1
        if i < 0:
            return 0, 0.0
        if i >= len(grid) - 1:
            return len(grid) - 2, 1.0 if x >= grid[-1] else 0.0
        return i, (x - grid[i]) / (grid[i + 1] - grid[i])

    def _attn_decode(self, d, ctx_sum):
        if d > self.max_seqs:
            raise HwsimError(f"serving: {d} decoding sequences are past the cost table's {self.max_seqs}; raise max_seqs",
                             arguments=("max_seqs",))
        row = self._attn_dec[d]
        if row[0, 0] != row[0, 0]:          # NaN: not built yet
            self._attn_decode_rows(d)
            row = self._attn_dec[d]
        i, w = self._locate(self.ctx_grid, ctx_sum / d)
        return row[i] + (row[i + 1] - row[i]) * w

    def _decode_table(self, d):
        """Token-wise ops plus decode attention at every context of the grid, for decode-only steps of d."""
        rows = self._dec_only.get(d)
        if rows is None:
            if d > self.max_seqs:
                raise HwsimError(f"serving: {d} decoding sequences are past the cost table's {self.max_seqs}; "
                                 f"raise max_seqs", arguments=("max_seqs",))
            if self.ep > 1:             # the busiest device's sequences; the experts of all the step's tokens
                dj = -(-d // self.ep)
                if self._attn_dec[dj, 0, 0] != self._attn_dec[dj, 0, 0]:
                    self._attn_decode_rows(dj)
                rows = self._attn_dec[dj] + self._dense_row("decode", dj) + self._expert_row("decode", d)
            else:
                if self._attn_dec[d, 0, 0] != self._attn_dec[d, 0, 0]:
                    self._attn_decode_rows(d)
                rows = self._attn_dec[d] + self._dense_row("decode", d)
            self._dec_only[d] = rows
        return rows

    def _decode_fast(self, d):
        """Per context grid point of decode-only steps of d: (top-clock time of the clock-following ops, their
        dynamic energy, clock-independent time, its energy) as plain floats, for the uncapped common case."""
        fast = self._dec_fast.get(d)
        if fast is None:
            rows = self._decode_table(d)
            K = self.K
            t0 = rows[:, 0]
            dyn = rows[:, K + 5 if self.fe else K] * self.e_flop + rows[:, K + 1] * self.e_byte
            fixed_t = rows[:, K + 2] + rows[:, K + 4]
            fixed_e = rows[:, K + 3] + self.static_w * rows[:, K + 4]
            fast = (t0.tolist(), dyn.tolist(), fixed_t.tolist(), fixed_e.tolist())
            self._dec_fast[d] = fast
        return fast

    def decode_arrays(self, d):
        """`_decode_fast(d)` as numpy arrays (for vectorised runs of decode steps)."""
        arrays = self._dec_np.get(d)
        if arrays is None:
            arrays = tuple(np.asarray(v) for v in (self._dec_fast.get(d) or self._decode_fast(d)))
            self._dec_np[d] = arrays
        return arrays

    def _window_sum(self, d, ctx_sum, window_sum):
        """The decodes' summed context clipped to the window (given, or as if every decode had the mean context)."""
        return window_sum if window_sum is not None else d * min(ctx_sum / d, self.swa)

    def decode_step(self, d: int, ctx_sum: float, window_sum: float = None) -> StepTime:
        """The common step, fast: d sequences decoding with summed context ctx_sum (cached + 1 each); with a
        sliding window, window_sum sums min(cached + 1, window) over them."""
        if self.swa_mode == "mixed":
            return self.solve(self.vector(Batch([], d, ctx_sum, window_context=window_sum)))
        if self.swa_mode == "all":             # the tables are keyed by the clipped context
            ctx_sum = self._window_sum(d, ctx_sum, window_sum)
        fast = self._dec_fast.get(d) or self._decode_fast(d)
        x = ctx_sum / d
        grid = self.ctx_grid
        i = bisect.bisect_right(grid, x) - 1
        if i < 0:
            i, w = 0, 0.0
        elif i >= len(grid) - 1:
            i, w = len(grid) - 2, 1.0
        else:
            w = (x - grid[i]) / (grid[i + 1] - grid[i])
        t0s, dyns, fts, fes = fast
        t0 = t0s[i] + (t0s[i + 1] - t0s[i]) * w
        dyn = dyns[i] + (dyns[i + 1] - dyns[i]) * w
        if t0 > 0 and self.static_w + dyn / t0 > self.cap:
            rows = self._decode_table(d)
            return self.solve(rows[i] + (rows[i + 1] - rows[i]) * w)
        ft = fts[i] + (fts[i + 1] - fts[i]) * w
        total = t0 + ft
        energy = (self.static_w * t0 + dyn + (fes[i] + (fes[i + 1] - fes[i]) * w)) * self.lockstep + \
            self.idle_stage_w * total
        return StepTime(total, energy, energy / total, self.f_max)

    def vector(self, batch: Batch) -> np.ndarray:
        """The step's table vector (sum of its parts)."""
        if self.ep > 1:
            return self._vector_ep(batch)
        d = batch.decodes
        if not batch.chunks:
            if d == 0:
                raise HwsimError("serving: an empty step has no cost")
            vec = self._dense_row("decode", d) + self._decode_attention(d, batch)
            logits = batch.logits if batch.logits is not None else d
            if logits != d:
                vec = vec - self._lm_row(d) + (self._lm_row(logits) if logits else 0.0)
            return vec
        tokens = batch.tokens
        logits = batch.logits if batch.logits is not None else d + len(batch.chunks)
        rows = [self._dense_row("mixed", tokens)]
        weights = [1.0]
        if logits:
            rows.append(self._lm_row(logits))
            weights.append(1.0)
        if d:
            if self.swa_mode:
                rows.append(self._decode_attention(d, batch))
                weights.append(1.0)
            else:
                table = self._attn_dec[d]
                if table[0, 0] != table[0, 0]:
                    self._attn_decode_rows(d)
                i, w = self._locate(self.ctx_grid, batch.decode_context / d)
                rows += (table[i], table[i + 1])
                weights += (1.0 - w, w)
        fixed = []                # each multi-token chunk's attention kernels' fixed seconds (`_one_kernel`)
        if not self.swa_mode:
            for n, c in batch.chunks:
                if c + n > self.max_context:
                    raise HwsimError(f"serving: a chunk reaches {c + n} positions, past the max context "
                                     f"{self.max_context}")
                ci, cw = self._locate(self.c_grid, c)
                if n == 1:
                    rows += (self._attn_one[ci], self._attn_one[ci + 1])
                    weights += (1.0 - cw, cw)
                    continue
                ni, nw = self._locate(self.n_grid, n)
                t = self._attn_pre
                rows += (t[ni, ci], t[ni, ci + 1], t[ni + 1, ci], t[ni + 1, ci + 1])
                w4 = ((1 - nw) * (1 - cw), (1 - nw) * cw, nw * (1 - cw), nw * cw)
                weights += w4
                fixed.append(self._fixed_at(ni, ci, w4))
            return self._one_kernel(np.dot(weights, rows), fixed, self._tails(batch.chunks))
        one, pre = (self._attn_one, self._attn_one_w), (self._attn_pre, self._attn_pre_w)
        for n, c in batch.chunks:
            if c + n > self.max_context:
                raise HwsimError(f"serving: a chunk reaches {c + n} positions, past the max context {self.max_context}")
            ci, cw = self._locate(self.c_grid, c)
            if n == 1:
                for t in one:
                    rows += (t[ci], t[ci + 1])
                    weights += (1.0 - cw, cw)
                continue
            ni, nw = self._locate(self.n_grid, n)
            w4 = ((1 - nw) * (1 - cw), (1 - nw) * cw, nw * (1 - cw), nw * cw)
            for t in pre:
                rows += (t[ni, ci], t[ni, ci + 1], t[ni + 1, ci], t[ni + 1, ci + 1])
                weights += w4
            fixed.append(self._fixed_at(ni, ci, w4))
        return self._one_kernel(np.dot(weights, rows), fixed, self._tails(batch.chunks))

    def _decode_attention(self, d, batch):
        """Decode attention of the batch's d decodes: the layers at the whole context (clipped where every layer has
        the window), plus the window layers of a mixed model at the clipped context."""
        if self.swa_mode == "all":
            return self._attn_decode(d, self._window_sum(d, batch.decode_context, batch.window_context))
        vec = self._attn_decode(d, batch.decode_context)
        if self.swa_mode == "mixed":
            table = self._attn_dec_w[d]
            if table[0, 0] != table[0, 0]:
                self._attn_decode_rows(d, window=True)
            i, w = self._locate(self.wctx_grid, self._window_sum(d, batch.decode_context, batch.window_context) / d)
            vec = vec + table[i] + (table[i + 1] - table[i]) * w
        return vec

    def solve(self, vec) -> StepTime:
        """Clock under the power cap for the summed vector, as `predict` solves one graph's."""
        K = self.K
        v = vec.tolist()
        F, B, tl, el, tc = v[K:K + 5]
        t = v[0]
        s = 1.0
        FE = v[K + 5:] if self.fe else None
        dyn = (FE[0] if FE else F) * self.e_flop + B * self.e_byte
        if t > 0 and self.static_w + dyn / t > self.cap:
            stretch, gamma, cap, static = self.stretch, self.gamma, self.cap, self.static_w
            if FE:
                def watts(k):
                    return static + (FE[k] * self.e_flop + B * self.e_byte) / v[k]
                k = 1
                while k < K and watts(k) > cap:
                    k += 1
            elif gamma == 0.0:
                # power = static + dyn / t(s): the cap holds where t(s) = dyn / (cap - static); t rises with s
                target = dyn / (cap - static)
                k = bisect.bisect_left(v, target, 1, K)
            else:
                def watts(k):
                    return static + (F * self.e_flop * (1.0 / stretch[k]) ** gamma + B * self.e_byte) / v[k]
                k = 1
                while k < K and watts(k) > cap:
                    k += 1
            if k >= K:
                s, t = stretch[-1], v[K - 1]
                dyn = ((FE[K - 1] if FE else F * stretch[-1] ** -gamma) * self.e_flop + B * self.e_byte)
            elif gamma == 0.0:
                w = (target - v[k - 1]) / (v[k] - v[k - 1]) if v[k] != v[k - 1] else 1.0
                s = stretch[k - 1] + w * (stretch[k] - stretch[k - 1])
                t = v[k - 1] + w * (v[k] - v[k - 1])
                dyn = F * self.e_flop + B * self.e_byte
            else:
                f0, f1 = (FE[k - 1], FE[k]) if FE else (F * stretch[k - 1] ** -gamma, F * stretch[k] ** -gamma)
                s, t, fe = bracket_root(stretch[k - 1], stretch[k], v[k - 1], v[k], f0, f1,
                                        B * self.e_byte, cap - static, self.e_flop)
                dyn = fe * self.e_flop + B * self.e_byte
        total = t + tl + tc
        energy = (self.static_w * (t + tc) + dyn + el) * self.lockstep + self.idle_stage_w * total
        clock = (self.f_max / s * t + self.f_max * tl) / (t + tl) if (t + tl) > 0 else self.f_max
        return StepTime(total, energy, energy / total if total else 0.0, clock)

    def cost(self, batch: Batch) -> StepTime:
        if not batch.chunks and batch.decodes and (batch.logits is None or batch.logits == batch.decodes):
            return self.decode_step(batch.decodes, batch.decode_context, batch.window_context)
        return self.solve(self.vector(batch))

    # --- memory ---------------------------------------------------------------------------------------------
    def activation_peak_bytes(self, tokens: int) -> float:
        """The largest op's activation bytes at `tokens` tokens (per device): vLLM's profiling run takes a
        forward pass at the full token budget and reserves its peak."""
        t = float(min(max(tokens, 2), self.max_context))
        g = self._instantiate("chunked_prefill", [1.0], [t], [0.0])
        lm = self._instantiate("decode", [float(self.max_seqs)], [1.0], [8.0])
        peak = max(float(np.max(op.bytes.get("activation", 0.0))) for op in g.ops)
        return max(peak, max(float(np.max(op.bytes.get("activation", 0.0))) for op in lm.ops))

    # --- the slow path -----------------------------------------------------------------------------------------
    def exact(self, phase: str, batch: int, seq_len: int, context: int = 0) -> StepTime:
        """A uniform step traced, transformed, mapped (`mapping.map_graph`) and run by `sim.engine.simulate`."""
        from mapping import map_graph
        from sim.engine import simulate
        from workloads.recipe import build_workload
        graph = build_workload(self.model_arg, phase, batch, seq_len, context, self.dtype, self.quant, self.kv_dtype)
        # one iteration is one batch through every stage (mb:1), also where virtual engines overlap iterations
        mapping = ",".join(p for p in self.mapping.split(",") if not p.strip().startswith("mb:")) + \
            (",mb:1" if self.pp > 1 else "")
        result = simulate(map_graph(graph, self.system, mapping), self.system, self.profile)
        return StepTime(result.latency_s, result.energy_j, result.avg_power_w, result.prediction.clock_mhz)
