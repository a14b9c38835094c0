"""hwsim's Python API: what the CLI, the serving simulator, sweeps and notebooks call.

    from sim import api
    r = api.predict("llama-3.1-8b", "h100", phase="decode", batch=8, seq_len=2048)
    r.latency_s, r.to_row()                          # typed result, one pandas-ready row
    s = api.simulate("llama-3.1-70b", "dgx-h100", mapping="tp:8", phase="decode", batch=8, seq_len=2048)
    api.frame([r, ...])                              # a pandas DataFrame of results

`model` is a preset name, a path to a Hugging Face config.json (or its folder) or a ModelSpec; `hardware` a
device preset name, path or DeviceSpec; `system` a system or device preset name or path. Workload options are
those of `workloads.build_workload` (dtype, quant, kv_dtype, group_size, sparsity, drop_layer_ids,
drop_attention_ids, prefix, expert_tokens, impl: "hwsim" or "hf" for the Hugging Face transformers implementation). Bad input raises `HwsimError` with one line saying what to fix.

Any torch module: `g = api.trace_module(module, *args, **kwargs)` traces one forward call (workloads.module_trace);
`api.predict(g, "h100")` and `api.simulate(g, "dgx-h100", mapping="dp:8")` take the graph in place of a model, and
`api.predict_module(module, args, hardware="h100")` does both.

Serving: `api.step_cost(model, system, mapping, chunks=[(new, cached), ...], decodes=D, decode_context=...)` is one
iteration of a serving replica (mixed prefill chunks and decodes, the stack's host cost included) from the cached
step tables `hwsim serve` uses; `api.serve(requests, api.Pool(...))` runs a whole serving simulation (docs/serving.md).

`predict` takes the one-case fast path (`sim.fastpath`: a compiled workload, per-op costs memoized) where the
workload allows it and the full path otherwise; both give the same figures. `detail=True` always takes the full
path and adds the per-op rows (`ops`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

from hw_models import load_device
from hw_models.stacks import STACKS, require_host_issued
from hw_models.systems import as_system
from mapping import check_fit, map_graph
from workloads.capture import load_spec
from workloads.errors import HwsimError, check_switches, not_applicable
from workloads.graph import OpGraph
from workloads.module_trace import trace_module
from workloads.recipe import Workload
from workloads.step import PHASES

from .engine import StepResult, simulate as _run
from .fastpath import CompiledStep, Unsupported
from .predict import predict as _predict

__all__ = ["predict", "simulate", "workload", "place", "frame", "trace_module", "predict_module", "PredictResult",
           "StepResult", "step_cost", "serve", "Pool"]


@dataclass(frozen=True)
class PredictResult:
    """One step on one device."""
    model: str
    hardware: str
    phase: str
    batch: int
    seq_len: int
    context: int
    profile: str
    latency_s: float
    energy_j: float
    avg_power_w: float
    peak_power_w: float
    clock_mhz: float
    power_capped: bool
    bound: str
    fits: bool
    memory_needed_bytes: float
    memory_capacity_bytes: float
    flops: float
    bytes: float
    tokens_per_s: float
    ops: Optional[list] = field(default=None, repr=False)     # per-op rows (detail=True)
    host: str = ""                  # host-issued profiles (eager-launch, hf-generate): the host model used
    host_busy_s: float = 0.0        # ... its issuing and per-step work
    device_idle_s: float = 0.0      # ... the device waiting for it

    def to_row(self) -> dict:
        """The scalar fields, for a pandas row."""
        return {k: v for k, v in asdict(self).items() if k != "ops"}

    def ops_frame(self):
        import pandas as pd
        if self.ops is None:
            raise HwsimError("per-op rows come with predict(..., detail=True)")
        return pd.DataFrame(self.ops)


_FIELD_NAMES = tuple(PredictResult.__dataclass_fields__)


def _result(values: tuple) -> PredictResult:
    """A PredictResult from all its fields in order, without the frozen dataclass's per-field __init__ (the
    one-case path's values are already checked numbers)."""
    r = object.__new__(PredictResult)
    r.__dict__.update(zip(_FIELD_NAMES, values))
    return r


def _sizes(phase, batch, seq_len, context) -> tuple:
    """batch, seq_len, context as ints: a numpy integer is its whole number; anything else not an int (a float, a
    bool, None, text) gets the step's one-line error, before any memo could match it to an equal int."""
    import numbers
    sizes = tuple(int(v) if isinstance(v, numbers.Integral) and not isinstance(v, bool) else v
                  for v in (batch, seq_len, context))
    if any(type(v) is not int for v in sizes):
        from workloads.step import Phase
        Phase(phase, *sizes)                  # raises the one-line error
    return sizes


def _recipe(model, phase, batch, seq_len, context, options) -> Workload:
    import os

    from workloads.spec import ModelSpec
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if not isinstance(model, (str, ModelSpec)):
        raise HwsimError(f"model must be a preset name, a config.json path, a ModelSpec or a traced OpGraph, got "
                         f"{type(model).__name__}")
    spec = load_spec(model, options.get("impl", "hwsim")) if isinstance(model, str) else model
    known = set(Workload.__dataclass_fields__) - {"spec", "phase", "batch", "seq_len", "context"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise HwsimError(f"unknown workload option(s) {', '.join(unknown)}; use {', '.join(sorted(known))}")
    clean = {k: (tuple(v) if isinstance(v, list) else v) for k, v in options.items()}
    if type(batch) is not int or type(seq_len) is not int or type(context) is not int:
        batch, seq_len, context = _sizes(phase, batch, seq_len, context)
    return Workload(spec, phase, batch, seq_len, context, **clean)


def _device(hardware):
    import os

    from hw_models.spec import DeviceSpec
    if isinstance(hardware, os.PathLike):
        hardware = os.fspath(hardware)
    if not isinstance(hardware, (str, DeviceSpec)):
        raise HwsimError(f"hardware must be a device preset id, a preset .yaml path or a DeviceSpec, got "
                         f"{type(hardware).__name__}")
    return load_device(hardware) if isinstance(hardware, str) else hardware


def _hosting(profile: str, host, host_speed) -> None:
    """host/host_speed only exist on a host-issued stack's path: one line where the profile replays CUDA graphs
    (as the CLI's --host and a study's host axes), and a bad speed before any work."""
    if host is None and host_speed is None:
        return
    if profile in STACKS and not STACKS[profile].host_queue:
        raise HwsimError(f"host/host_speed apply to host-issued profiles (eager-launch, hf-generate), not "
                         f"'{profile}', which replays CUDA graphs")
    if host_speed is not None:
        from hw_models.host import check_speed
        check_speed(host_speed)


_STEP_DEFAULTS = {"phase": "prefill", "batch": 1, "seq_len": 128, "context": 0}


def _graph_step(phase, batch, seq_len, context) -> None:
    """A traced graph is one step already: a phase or size given with it would be silently ignored."""
    given = [k for k, v in (("phase", phase), ("batch", batch), ("seq_len", seq_len), ("context", context))
             if v != _STEP_DEFAULTS[k]]
    if given:
        raise not_applicable(given, "to a traced graph (its step is the one traced)",
                             "trace the module with the inputs you mean instead")


def _profile(profile: str) -> str:
    if profile not in STACKS:
        raise HwsimError(f"unknown software profile '{profile}'; use one of {', '.join(STACKS)}")
    return profile


_COMPILED: dict = {}  # (recipe, device key, profile) -> compiled step or None; a DeviceSpec object is keyed by id


def _compiled(recipe: Workload, device_key, profile: str):
    key = (recipe, device_key if isinstance(device_key, str) else id(device_key), profile)
    if key not in _COMPILED:
        if len(_COMPILED) > 256:
            _COMPILED.clear()
        try:
            step = CompiledStep(recipe, _device(device_key), profile)
        except Unsupported:
            step = None
        _COMPILED[key] = step if isinstance(device_key, str) else (step, device_key)   # keep the object alive
    entry = _COMPILED[key]
    return entry[0] if isinstance(entry, tuple) else entry


def workload(model, phase: str = "prefill", batch: int = 1, seq_len: int = 128, context: int = 0, **options):
    """The traced, transformed step (an OpGraph carrying its ModelSpec and recipe)."""
    return _recipe(model, phase, batch, seq_len, context, options).build()


_WARM: dict = {}      # (model, hardware, phase, profile, options) as given -> (spec, device, compiled step or None)


def _warm(model, hardware, phase, profile, options):
    """What a repeated call needs, looked up by its arguments as given (no preset or config re-read)."""
    if not options:                        # the common call: keyed by the raw arguments, no normalisation
        try:
            hit = _WARM.get((model, hardware, phase, profile, ()))
        except TypeError:
            hit = None
        if hit is not None:
            return hit
    try:
        key = (model, hardware, phase, profile, tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                                                               for k, v in options.items())))
        hash(key)
    except TypeError:                      # unhashable arguments: nothing is kept
        key = None
    if key is not None and key in _WARM:
        return _WARM[key]
    if not isinstance(phase, str) or phase not in PHASES:
        raise HwsimError(f"unknown phase {phase!r}; use one of {', '.join(PHASES)}")
    recipe = _recipe(model, phase, 1, 1, 0, options)
    device = _device(hardware)
    entry = (recipe, device, _compiled(recipe, hardware if isinstance(hardware, str) else device, _profile(profile)))
    if key is not None:
        _WARM[key] = entry
    return entry


def predict(model, hardware, phase: str = "prefill", batch: int = 1, seq_len: int = 128, context: int = 0,
            profile: str = "eager", detail: bool = False, check_memory: bool = False, host=None,
            host_speed: Optional[float] = None, first_pass: bool = False, **options) -> PredictResult:
    """One step on one device. `check_memory` raises when the step does not fit the device's memory.
    `model` may also be a traced graph (an OpGraph, e.g. from `trace_module`): its own step is predicted.
    Host-issued profiles (eager-launch, hf-generate) take `host` (a preset id, a `hwsim probe-host` file or a
    HostSpec; default: the device's) and `host_speed` (2.0: a host twice as fast), and `first_pass`: the step as
    a fresh process runs it at attention shapes it has not run before (default False: a warm process). On H100/H200
    torch's cuDNN SDPA then builds a graph per new shape on the host (hw_models/host.py `cudnn_new_shape`): in HF
    generate() every decode step past the lengths the process ran (docs/tracing-and-host.md, first-seen lengths)."""
    if detail.__class__ is not bool or check_memory.__class__ is not bool or first_pass.__class__ is not bool:
        _flags(detail=detail, check_memory=check_memory, first_pass=first_pass)
    if first_pass:
        require_host_issued(profile)
    _hosting(profile, host, host_speed)
    if isinstance(model, OpGraph):
        _graph_step(phase, batch, seq_len, context)
        return _predict_graph(model, hardware, profile, detail, check_memory, options, host, host_speed, first_pass)
    base, device, compiled = _warm(model, hardware, phase, profile, options)
    if type(batch) is not int or type(seq_len) is not int or type(context) is not int:
        batch, seq_len, context = _sizes(phase, batch, seq_len, context)   # before the memo: 8.0 == 8 there
    if compiled is not None and not detail and not first_pass:
        try:
            f = compiled(batch, seq_len, context)
        except Unsupported:
            f = None
        if f is not None:
            tokens = batch * (1 if phase == "decode" else seq_len)
            r = _result((base.spec.name, device.id, phase, batch, seq_len, context, profile) + f +
                        (tokens / f[0] if f[0] else 0.0, None, "", 0.0, 0.0))
            if check_memory and not r.fits:
                _too_big(r, phase, device)
            return r
    recipe = base.replace(batch=batch, seq_len=seq_len, context=context)
    p = _predict(recipe.build(), device, profile, host=host, host_speed=host_speed, first_pass=first_pass)
    tokens = batch * (1 if phase == "decode" else seq_len)
    r = PredictResult(base.spec.name, device.id, phase, batch, seq_len, context, profile, p.latency_s,
                      p.energy_j, p.avg_power_w, p.peak_power_w, p.clock_mhz, p.power_capped, p.bound, p.fits,
                      p.memory_needed_bytes, p.memory_capacity_bytes, p.flops, p.bytes,
                      tokens / p.latency_s if p.latency_s else 0.0, p.ops if detail else None, p.host,
                      p.host_busy_s, p.device_idle_s)
    if check_memory and not r.fits:
        _too_big(r, phase, device)
    return r


_flags = check_switches      # a string such as "no" was taken as on


def _too_big(r, phase, device):
    raise HwsimError(f"{r.model} {phase} needs {r.memory_needed_bytes / 1e9:.1f} GB of memory but {device.id} has "
                     f"{r.memory_capacity_bytes / 1e9:.1f} GB; use a larger device, --quant, or a smaller "
                     f"batch/context")


def _predict_graph(graph, hardware, profile, detail, check_memory, options, host=None, host_speed=None,
                   first_pass=False):
    if options:
        raise HwsimError(f"workload option(s) {', '.join(sorted(options))} apply to a model, not to a traced graph")
    device = _device(hardware)
    p = _predict(graph, device, _profile(profile), host=host, host_speed=host_speed, first_pass=first_pass)
    m = graph.meta
    tokens = m.get("batch", 1) * m.get("new_tokens", 1)
    r = PredictResult(m["model"], device.id, m["phase"], m.get("batch", 1), m.get("seq_len", 0), m.get("context", 0),
                      profile, p.latency_s, p.energy_j, p.avg_power_w, p.peak_power_w, p.clock_mhz, p.power_capped,
                      p.bound, p.fits, p.memory_needed_bytes, p.memory_capacity_bytes, p.flops, p.bytes,
                      tokens / p.latency_s if p.latency_s else 0.0, p.ops if detail else None, p.host,
                      p.host_busy_s, p.device_idle_s)
    if check_memory and not r.fits:
        raise HwsimError(f"{r.model} needs {r.memory_needed_bytes / 1e9:.1f} GB of memory but {device.id} has "
                         f"{r.memory_capacity_bytes / 1e9:.1f} GB; use a larger device or smaller inputs")
    return r


def predict_module(module, args=(), kwargs=None, hardware="h100", profile: str = "eager", detail: bool = False,
                   check_memory: bool = False, host=None, host_speed: Optional[float] = None,
                   first_pass: bool = False) -> PredictResult:
    """Trace one forward call `module(*args, **kwargs)` and predict it on a device (`host`, `host_speed`,
    `first_pass` as in `predict`, for the host-issued profiles)."""
    _flags(detail=detail, check_memory=check_memory, first_pass=first_pass)
    if kwargs is not None and not isinstance(kwargs, dict):
        raise HwsimError(f"kwargs must be a dict of the forward call's keyword arguments, got {type(kwargs).__name__}")
    _profile(profile)
    _hosting(profile, host, host_speed)
    _device(hardware)                      # a bad device before the trace
    graph = trace_module(module, *(args if isinstance(args, (tuple, list)) else (args,)), **(kwargs or {}))
    return predict(graph, hardware, profile=profile, detail=detail, check_memory=check_memory, host=host,
                   host_speed=host_speed, first_pass=first_pass)


def place(graph, system, mapping: str = "single"):
    """The placed task graph of a traced step on a system (a preset name, path or SystemSpec)."""
    if not isinstance(graph, OpGraph):
        raise HwsimError(f"place needs a traced step (an OpGraph from api.workload or api.trace_module) as graph, "
                         f"got {type(graph).__name__}")
    system = as_system(system)
    return map_graph(graph, system, mapping)


def simulate(model, system, mapping: str = "single", phase: str = "prefill", batch: int = 1, seq_len: int = 128,
             context: int = 0, profile: str = "eager", trace: bool = False, check_memory: bool = True, host=None,
             host_speed: Optional[float] = None, **options) -> StepResult:
    """A step mapped onto a multi-device system and run by the engine. `check_memory` refuses (one line) a
    placement whose devices cannot hold what it puts on them."""
    _flags(trace=trace, check_memory=check_memory)
    system = as_system(system)
    _hosting(profile, host, host_speed)
    if isinstance(model, OpGraph):
        _graph_step(phase, batch, seq_len, context)
        if options:
            raise HwsimError(f"workload option(s) {', '.join(sorted(options))} apply to a model, not to a traced graph")
        graph = model
    else:
        graph = workload(model, phase, batch, seq_len, context, **options)
    tg = map_graph(graph, system, mapping)
    if check_memory:
        check_fit(tg, system)
    return _run(tg, system, _profile(profile), trace=trace, host=host, host_speed=host_speed)


def frame(results):
    """A pandas DataFrame with one row per result (PredictResult or StepResult)."""
    import pandas as pd
    if hasattr(results, "to_row"):
        raise HwsimError("frame takes a list of results (PredictResult or StepResult); for one result pass [r]")
    try:
        items = list(results)
    except TypeError:
        items = None
    if items is None or not all(callable(getattr(r, "to_row", None)) for r in items):
        kind = type(results).__name__ if items is None else \
            next(type(r).__name__ for r in items if not callable(getattr(r, "to_row", None)))
        raise HwsimError(f"frame takes a list of results (PredictResult or StepResult from predict/simulate), got "
                         f"{kind}")
    return pd.DataFrame([r.to_row() for r in items])


_STEP_COSTS: dict = {}


def step_cost(model, system, mapping: str = "single", chunks=(), decodes: int = 0, decode_context: int = None,
              logits: int = None, profile: str = "fused", dtype: str = "bf16", quant: str = "none",
              kv_dtype: str = None, max_seqs: int = 1024, max_tokens: int = 8192, max_context: int = None,
              power_cap_w: float = None, window_context: int = None, routing: str = "uniform"):
    """One serving iteration on a replica (`model` on `mapping` of `system`, software stack `profile`): prefill
    `chunks` as (new tokens, cached tokens) pairs and `decodes` sequences decoding one token each, whose contexts
    (cached tokens + 1) sum to `decode_context` (default decodes x 1). Returns a StepTime (time_s, energy_j of all
    the replica's devices, power_w, clock_mhz) from the step tables `hwsim serve` uses (docs/serving.md); the
    tables are kept per (model, system, mapping, stack, precision, sizes) across calls. Sliding-window models:
    `window_context` sums min(cached + 1, window) over the decodes (default: as if each had the mean context).
    MoE models: `routing` spreads the step's tokens over the experts (uniform or even, workloads/moe_template.py)."""
    import os

    from .serving.step_cost import Batch, StepCost
    model, system = (os.fspath(x) if isinstance(x, os.PathLike) else x for x in (model, system))  # cache by path
    chunks = _chunks(chunks)
    decodes = _whole("decodes", decodes, 0, "a number of decoding sequences")
    for name, value in (("max_seqs", max_seqs), ("max_tokens", max_tokens)):
        _whole(name, value, 1, "the step tables' bound")
    if max_context is not None:
        _whole("max_context", max_context, 1, "the longest context the tables cover (None: the model's)")
    if decodes + len(chunks) > max_seqs:
        raise HwsimError(f"step_cost: {decodes} decodes and {len(chunks)} chunk(s) are past max_seqs {max_seqs}; "
                         f"raise max_seqs")
    if logits is not None:
        _whole("logits", logits, 0, "the rows through the LM head")
        if logits > decodes + len(chunks):
            raise HwsimError(f"step_cost: logits counts the rows through the LM head, at most decodes + chunks "
                             f"({decodes + len(chunks)}); got {logits}")
    if decode_context is not None:
        _whole("decode_context", decode_context, 0, "the sum of (cached + 1) over the decodes")
    if window_context is not None:
        _whole("window_context", window_context, 0, "the sum of min(cached + 1, window) over the decodes")
    key = (model if isinstance(model, str) else id(model), system if isinstance(system, str) else id(system), mapping,
           profile, dtype, quant, kv_dtype, max_seqs, max_tokens, max_context, power_cap_w, routing)
    try:
        cost = _STEP_COSTS.get(key)
    except TypeError:                      # an unhashable argument: refused below, in one line, by StepCost
        cost, key = None, None
    if cost is None:
        cost = StepCost(model, system, mapping, profile, dtype, quant, kv_dtype, max_tokens=max_tokens,
                        max_seqs=max_seqs, max_context=max_context, power_cap_w=power_cap_w, routing=routing)
        if key is not None:
            _STEP_COSTS[key] = cost
    if any(n < 1 or c < 0 for n, c in chunks):
        raise HwsimError("step_cost: each chunk is (new tokens >= 1, cached tokens >= 0)")
    if decodes < 0 or (not chunks and decodes == 0):
        raise HwsimError("step_cost: give at least one prefill chunk or decodes >= 1")
    ctx = decodes if decode_context is None else int(decode_context)
    if decodes and ctx < decodes:
        raise HwsimError(f"step_cost: decode_context sums (cached + 1) over the decodes, so it is at least "
                         f"{decodes}; got {ctx}")
    if window_context is not None and decodes and not decodes <= window_context <= ctx:
        raise HwsimError(f"step_cost: window_context sums min(cached + 1, window) over the decodes, so it lies "
                         f"between {decodes} and decode_context {ctx}; got {window_context}")
    return cost.cost(Batch(chunks, int(decodes), ctx if decodes else 0, logits,
                           int(window_context) if window_context is not None and decodes else None))


def _whole(name: str, value, low: int, what: str) -> int:
    """A whole number >= low (numpy integers too), or one line naming the argument."""
    import numbers
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise HwsimError(f"step_cost: {name} must be a whole number >= {low} ({what}), got {value!r}")
    return int(value)


def _chunks(chunks) -> list:
    """step_cost's prefill chunks: (new tokens, cached tokens) pairs of whole numbers."""
    import numbers
    try:
        pairs = [tuple(c) for c in chunks]
    except TypeError:
        pairs = None
    if pairs is None or any(len(p) != 2 or any(isinstance(x, bool) or not isinstance(x, numbers.Integral) for x in p)
                            for p in pairs):
        raise HwsimError(f"step_cost: chunks must be a list of (new tokens, cached tokens) pairs of whole numbers, "
                         f"e.g. [(512, 0), (256, 1024)]; got {chunks!r}")
    return [(int(n), int(c)) for n, c in pairs]


def serve(requests, pool, **kwargs):
    """A serving simulation (sim.serving.serve): `requests` from workloads.requests, `pool` an api.Pool."""
    from .serving import serve as _serve
    return _serve(requests, pool, **kwargs)


def __getattr__(name):
    if name == "Pool":
        from .serving import Pool
        return Pool
    raise AttributeError(name)
