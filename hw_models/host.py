"""The host as hardware: the CPU (and its Python/PyTorch/driver stack) that issues an eager step's work.

An eager stack (PyTorch without CUDA graphs, Hugging Face `generate()`) runs two queues: the host walks the model's
Python code and issues kernels; the GPU runs what is queued. The host's time per unit of work is a property of
the machine (CPU, Python, torch, driver), measured by `hwsim probe-host` and kept in a host file:

    view          a view/metadata aten op (reshape, transpose, slicing): dispatched on the host, no kernel
    launch        an aten op that launches one kernel (elementwise, reductions, copies); a few cost several on the host
                  (a CUB sort, histc, cumsum, an out-of-place masked_fill, a row gather: EXTRA_LAUNCHES, measured)
    library       a library call that launches a kernel: GEMMs (cuBLAS), attention (SDPA/flash), convolutions
    collective    a collective launched through NCCL
    module        one nn.Module call (hooks, forward dispatch)
    sync          a host-device synchronization once the device is done (`.item()`, `nonzero`, stopping checks)
    graph_launch  one CUDA graph replay (CUDA-graph stacks)
    step          per `generate()` step, the host's own work outside the model (logits processing, cache and
                  stopping-criteria bookkeeping in Python)
    py_op         (optional, 0 when absent) the Python and dispatcher work model code adds to each kernel it
                  issues beyond the bare launch above (`launch` is one pre-allocated `torch.add(out=)`; a model's op
                  also allocates its output, promotes types and runs its module's Python): measured by
                  `hwsim probe-host` on a tiny Hugging Face Llama forward on the machine's GPU
    py_call       (optional) the same work per Python call of Hugging Face model code (a function or method of
                  transformers; the tracer counts them per op, attrs `host_py`): `hwsim probe-host` divides the same
                  residual by the tiny Llama's model-code calls instead of its kernels. HF graphs (--impl hf) are
                  priced per call, other graphs per kernel (py_op): HF's decode step spends its host time in Python
                  frames (mask, rotary, cache and output bookkeeping outside the layers; many cheap kernels per frame
                  in gemma-2, more Python per kernel in the MoE), not per kernel. A host file without py_call gets
                  py_op x PROBE_KERNELS / PROBE_CALLS (the probe's Llama layer, see there)

    cudnn_new_shape  (optional; default CUDNN_NEW_SHAPE_US below) a first pass only (`predict(..., first_pass=True)`,
                  `hwsim predict --first-pass`): the host time torch's cuDNN SDPA path spends building a cuDNN graph
                  for an attention shape this process has not run (aten/src/ATen/native/cudnn/MHA.cpp: one graph per
                  shape key, kept for the process's life). A decode step reaching a new KV length builds one per
                  distinct shape among its cuDNN SDPA calls (the tracer's attrs `cudnn`; workloads/sdpa_backend.py
                  `cudnn_path`): its first layer pays, the others find it. Only on GPUs where torch prefers cuDNN
                  SDPA (sm90/sm10x: CUDNN_SDPA_DEVICES). Default off: a warm process, whose lengths were all run.

A host-issued stack may scale the model code's costs (view, launch, library, module, py_op) of a probed host by its
`host_op_scale` (hw_models/stacks.py): `hwsim probe-host` times each of them in a tight loop or a bare forward, and
a stack's real steps may pay more per op than that (hf-generate: 1.0 -- with HF code priced per Python call
nothing is left to scale; a factor of 1.15 fitted before that made held-out TPOT worse and was dropped,
benchmarks/host/fit_host_op_scale.py). A host whose launch cost was fitted to whole steps (its source does not
name `probe-host`) already includes it and is not scaled.

Host files live in hw_models/presets/hosts/*.yaml (every number `{value, source}`), or anywhere as a path.
`speed` scales every cost (2.0: a host twice as fast): the axis a study sweeps to ask what a faster CPU buys.
"""
from __future__ import annotations

import difflib
import json
import math
import warnings
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import yaml

from workloads.errors import HwsimError, HwsimWarning

from .sourced import resolve

HOST_DIR = Path(__file__).with_name("presets") / "hosts"
HOST_KEYS = ("id", "name", "sources", "source", "machine", "costs_us", "speed", "variants")   # top-level keys
COSTS = ("view", "launch", "library", "collective", "module", "sync", "graph_launch", "step")
# torch's cuDNN SDPA graph build at a new shape, host time, measured without a profiler
# (benchmarks/host/fit_cudnn_build.py): HF generate()'s first-pass decode steps over the case's first three, per shape
# built, median over lease5's calibration architectures (10 cases, 33.5-35.0 ms): 34.3 ms. Held out: lease5's other
# architectures 33.8, the quiet leases 30.5-35.3 (lease4, 10, 11, the first), the slow ones 40-51 (lease8, 2, 6).
# It was 43.6 ms, from the one profiled first pass of lease8-slow-steps (aten::_cudnn_attention_forward's self CPU
# less the found-in-cache calls, over 12 new lengths): the profiler's own cost was in it.
CUDNN_NEW_SHAPE_US = 34_300.0
CUDNN_NEW_SHAPE_SOURCE = ("benchmarks/host/fit_cudnn_build.py: lease5's calibration architectures, first-pass decode "
                          "steps over warm ones per shape built, median of 10 (benchmarks/gpu/data/"
                          "h100-2026-12-06-lease5-hf-generate)")
# devices whose torch puts cuDNN first among SDPA backends (sdp_utils.cpp check_prefer_cudnn_attention: sm90, sm10x)
CUDNN_SDPA_DEVICES = ("h100-sxm-80gb", "h200-141gb", "h20-96gb", "b200")
OPTIONAL_COSTS = {"py_op": 0.0, "py_call": 0.0,     # cost name -> value when a host file does not give it
                  "cudnn_new_shape": CUDNN_NEW_SHAPE_US}
# The layer of `hwsim probe-host`'s tiny Llama (hidden 256, one token, no cache), traced by hwsim with transformers
# 5.17.0: 38 kernels and 22 model-code Python calls. A host file that gives py_op (per kernel) but not py_call was
# probed before py_call existed: its residual per layer is py_op x 38, so py_call = py_op x 38 / 22.
PROBE_KERNELS, PROBE_CALLS = 38, 22
SCALED = ("view", "launch", "library", "module", "py_op", "py_call")
CPU_SPREAD = 1.25     # probe-host --scan-cpus: slowest over fastest CPU past which a probe file warns on load
# the probe's method, written into every host file (machine.probe_version; sim/probe_host.py writes it): a stack's
# host_op_scale is fitted per method (hw_models/stacks.py host_op_scale_by_probe), so bump it when a change moves what
# the same machine reads. 1: files without it (transformers imported first, per-op loops after it); 2: the CPU and
# CUDA loops first, transformers in a thread within the budget, py_call the lower quartile of interleaved rounds
# (lease9 on). A file naming a method past this one was written by a newer hwsim: refused on load (one line), since
# its numbers would be scaled as method 1's
PROBE_VERSION = 2
# kernels that are library calls (cuBLAS GEMMs, attention, convolutions) rather than plain launches
LIBRARY = {"mm", "addmm", "bmm", "baddbmm", "_grouped_mm", "convolution", "_scaled_mm", "attention",
           "scaled_dot_product_attention", "_scaled_dot_product_flash_attention",
           "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention", "_flash_attention_forward"}
# aten ops whose host call costs more than one allocating launch, in launches (library calls: in cuBLAS calls) beyond
# what the probe prices: measured here on a GPU host, benchmarks/host/moe_dispatch_count.py --op-costs
# (data/h100-2026-12-07-lease22-moe-op-costs, 128 tokens): us per call over the bare launch (5.54 us) less the 1.42
# launches an allocating one-kernel op costs there (ge, topk, floor_divide, arange, index_put_, masked_fill_, a 1-D
# index: 7.2-8.6 us), which the probe's model-code residual (py_op / py_call) already carries; _grouped_mm over the
# probe's cuBLAS call (13.4 us). sort 29.5 us (CUB radix sort), an out-of-place masked_fill 15.3 (a copy and the
# fill), histc 12.7, cumsum 12.3, _grouped_mm 20.1. Ratios, so each host's own probed launch scales them.
EXTRA_LAUNCHES = {"sort": 29.48 / 5.54 - 1.42, "masked_fill": 15.27 / 5.54 - 1.42, "histc": 12.66 / 5.54 - 1.42,
                  "cumsum": 12.30 / 5.54 - 1.42}
EXTRA_LIBRARY = {"_grouped_mm": 20.12 / 13.4 - 1.0}
# an `index` gathering rows of a 2-D (or larger) tensor, 17.6 us, where a 1-D index costs 8.6 (an allocating op's)
EXTRA_ROW_GATHER = 17.59 / 5.54 - 1.42
# kernels whose output size or value the host must read back: the host waits for the device to drain its queue
SYNCS = {"nonzero", "_local_scalar_dense", "masked_select", "unique", "_unique", "_unique2", "unique_consecutive",
         "unique_dim", "item", "repeat_interleave_sync", "equal", "is_nonzero"}


@dataclass(frozen=True)
class HostSpec:
    id: str
    name: str
    costs_us: dict                           # cost name -> microseconds
    provenance: dict = field(default_factory=dict)
    speed: float = 1.0
    machine: dict = field(default_factory=dict)   # what was probed: cpu, python, torch, gpu ...
    variants: dict = field(default_factory=dict)  # code -> host preset/file fitted to that code on this machine

    @property
    def probed(self) -> bool:
        """Its launch cost was measured by `hwsim probe-host` (a micro-benchmark), not fitted to whole steps."""
        return "probe-host" in str(self.provenance.get("costs_us.launch", ""))

    @property
    def probe_version(self):
        """Which `hwsim probe-host` method wrote it (sim/probe_host.py PROBE_VERSION; files without one: 1), None
        where it was not probed: a stack's host_op_scale is fitted per probe method, since a method that times the
        same cost differently (the second one reads launches ~20% lower) needs its own factor."""
        return int(self.machine.get("probe_version", 1) or 1) if self.probed else None

    def with_speed(self, speed: float) -> "HostSpec":
        check_speed(speed, "host speed")
        scaled = self.speed * float(speed)
        if not all(math.isfinite(v / scaled) for v in self.costs_us.values()):
            raise HwsimError(f"host speed {speed!r} scales {self.id}'s costs past what a float holds; use a speed "
                             f"between 1e-6 and 1e6")
        return replace(self, speed=scaled)


def check_speed(speed, what: str = "host speed") -> float:
    """A host speed factor: a positive finite number (not text, not a bool), else one line."""
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not math.isfinite(speed) or speed <= 0:
        raise HwsimError(f"{what} must be positive and finite (2.0: a host twice as fast), got {speed!r}")
    return float(speed)


def _files() -> dict:
    return {p.stem: p for p in sorted(HOST_DIR.glob("*.yaml"))}


def host_ids() -> list:
    return sorted(_files())


def load_host(name) -> HostSpec:
    """A host preset id (`hwsim hosts`), a path to a host file (`hwsim probe-host --out FILE`), or a HostSpec."""
    import os
    if isinstance(name, HostSpec):
        return name
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise HwsimError(f"host must be a host preset id (`hwsim hosts`), a host file from `hwsim probe-host` or a "
                         f"HostSpec, got {type(name).__name__}")
    if not name.strip():
        raise HwsimError("no host given; pass a host preset (see `hwsim hosts`) or a host file from `hwsim probe-host`")
    path = Path(name)
    if name.endswith((".yaml", ".yml")) or "/" in name:
        if path.is_dir():
            raise HwsimError(f"host file '{name}' is a folder; give the host file in it (from `hwsim probe-host "
                             f"--out FILE`)")
        if not path.is_file():
            raise HwsimError(f"host file '{name}' not found; write one with `hwsim probe-host --out {name}`")
        return _load(str(path.resolve()), path.stat().st_mtime)
    files = _files()
    if name not in files and path.is_file():     # a host file named without .yaml (probe-host --out myhost)
        return _load(str(path.resolve()), path.stat().st_mtime)
    if name not in files:
        close = difflib.get_close_matches(name, list(files), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise HwsimError(f"unknown host '{name}'; {hint}run `hwsim hosts` for the list, or pass a file from "
                         f"`hwsim probe-host`")
    return _load(str(files[name]), files[name].stat().st_mtime)


@lru_cache(maxsize=32)
def _load(path: str, mtime: float) -> HostSpec:
    where = Path(path).name
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError:
        raise HwsimError(f"{where}: not valid YAML; fix the file or write it again with `hwsim probe-host`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HwsimError(f"cannot read {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise HwsimError(f"{where}: a host file must be a YAML mapping")
    unknown = sorted(str(k) for k in raw if k not in HOST_KEYS)
    if unknown:
        raise HwsimError(f"{where}: unknown key(s) {', '.join(unknown)}; a host file takes {', '.join(HOST_KEYS)} "
                         f"(write it with `hwsim probe-host --out FILE`)")
    sources = raw.pop("sources", {}) or {}
    machine = raw.pop("machine", {}) or {}
    if not isinstance(machine, dict):
        raise HwsimError(f"{where}: machine must be a mapping of what was probed (cpu, python, torch ...), got "
                         f"{type(machine).__name__}; fix the file or write it again with `hwsim probe-host`")
    version = machine.get("probe_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= PROBE_VERSION:
        raise HwsimError(f"{where}: machine.probe_version {version!r} is not a probe method this hwsim knows (1 to "
                         f"{PROBE_VERSION}); write the file again with this hwsim's `hwsim probe-host`")
    speed = raw.pop("speed", 1.0)              # a setting (a study's axis), not a measured number
    variants = raw.pop("variants", {}) or {}     # e.g. {hf: h200-lent-host-hf}: the same machine fitted to HF's code
    if not isinstance(variants, dict) or not all(isinstance(k, str) and isinstance(v, str) and v
                                                 for k, v in variants.items()):
        raise HwsimError(f"{where}: variants must map a code (e.g. hf) to a host preset id or host file")
    tree, provenance = resolve(raw, sources, where)
    costs = tree.get("costs_us")
    if not isinstance(costs, dict):
        raise HwsimError(f"{where}: needs a 'costs_us' mapping with {', '.join(COSTS)}")
    missing = [c for c in COSTS if c not in costs]
    unknown = sorted(set(costs) - set(COSTS) - set(OPTIONAL_COSTS))
    if missing or unknown:
        raise HwsimError(f"{where}: costs_us " + (f"lacks {', '.join(missing)}" if missing else
                                                 f"has unknown cost(s) {', '.join(unknown)}") +
                         f"; it takes {', '.join(COSTS)} (and optionally {', '.join(OPTIONAL_COSTS)})")
    for k, v in costs.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise HwsimError(f"{where}: costs_us.{k} must be a non-negative finite number of microseconds, got {v!r}")
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not math.isfinite(speed) or speed <= 0:
        raise HwsimError(f"{where}: speed must be a positive finite number, got {speed!r}")
    for key in ("id", "name"):
        if not isinstance(tree.get(key), str) or not tree[key]:
            raise HwsimError(f"{where}: needs a text '{key}'")
    steadiness = str(machine.get("steadiness", "steady"))
    if steadiness.startswith("unsteady"):
        # read once per file and process (_load is cached): the numbers describe one moment of a host whose speed
        # moved while it was probed (hwsim probe-host, machine.spread_p90_p10)
        warnings.warn(HwsimWarning(f"host file {where} was probed on an {steadiness} host: its costs describe one "
                                   f"moment, and steps on it can vary as much; probe it again when it is quieter, "
                                   f"or combine probes (hwsim probe-host --combine)"), stacklevel=2)
    spread = machine.get("cpu_speed_spread")
    if isinstance(spread, (int, float)) and spread > CPU_SPREAD and machine.get("pinned_cpu") is None:
        # hwsim probe-host --scan-cpus found CPUs of different speeds and the probe was not pinned: it describes
        # whichever CPU it ran on, at that moment (the lent VMs' vCPUs ran Python 1.75-2x apart, and which of them
        # were slow changed within minutes: data/h100-2026-12-07-lease21-hf-generate-pinned)
        warnings.warn(HwsimWarning(f"host file {where}: this machine's CPUs ran Python {spread:.2f}x apart when "
                                   f"probed, so host-bound times on it can be off by as much; its costs describe the "
                                   f"CPU the probe ran on at that moment (probe before and after the runs you "
                                   f"predict, and compare them)"), stacklevel=2)
    return HostSpec(tree["id"], tree["name"], {k: float(v) for k, v in costs.items()}, provenance, float(speed),
                    dict(machine), dict(variants))


def default_host(device, impl: str = None) -> HostSpec:
    """The host a device preset names (its `host:` key); one line if it names none. With `impl` (the code the
    host issues: "hf" for Hugging Face transformers' modules), the host preset's variant for that code when it
    names one (`variants: {hf: ...}`: the same machine with its launch cost fitted to that code), else the host."""
    name = getattr(device, "host", None)
    if not name:
        raise HwsimError(f"{device.id} names no default host; pass --host NAME (see `hwsim hosts`) or a file "
                         f"from `hwsim probe-host`")
    spec = load_host(name)
    if impl and impl in spec.variants:
        return load_host(spec.variants[impl])
    return spec


class HostModel:
    """Seconds of host time for the work an eager step issues."""

    def __init__(self, host: HostSpec, op_scale: float = 1.0, per_call: bool = False):
        """`op_scale`: the stack's `host_op_scale`, applied to the model code's costs (SCALED) of a probed host.
        `per_call`: price model code per Python call (HF graphs: py_call x the op's host_py) instead of per kernel
        (py_op)."""
        self.host = host
        self.op_scale = float(op_scale) if host.probed else 1.0
        costs = {**OPTIONAL_COSTS, **host.costs_us}
        if "py_call" not in host.costs_us:
            costs["py_call"] = costs["py_op"] * PROBE_KERNELS / PROBE_CALLS
        self.py_call_derived = "py_call" not in host.costs_us and "py_op" in host.costs_us
        self.per_call = per_call
        self.s = {k: v * 1e-6 / host.speed * (self.op_scale if k in SCALED else 1.0) for k, v in costs.items()}
        self._py_op = 0.0 if per_call else self.s["py_op"]

    def kernel_s(self, aten: str) -> float:
        """One kernel issued by model code: its launch (or library call) plus, priced per kernel, the model code's
        own work per op."""
        if aten in LIBRARY:
            return self.s["library"] * (1.0 + EXTRA_LIBRARY.get(aten, 0.0)) + self._py_op
        return self.s["launch"] * (1.0 + EXTRA_LAUNCHES.get(aten, 0.0)) + self._py_op

    def issue_s(self, op) -> float:
        """Host time to issue one op: its kernels (plain launches or library calls), the factory kernels, views and
        allocations and the module calls the tracer counted with it (`attrs` host_launches / host_views /
        host_calls), and priced per call its model-code Python calls (host_py)."""
        t = sum(self.kernel_s(k.aten) for k in op.kernels) if op.kernels else self.s["launch"] + self._py_op
        if op.input_shapes and len(op.input_shapes[0]) >= 2 and any(k.aten == "index" for k in op.kernels):
            t += self.s["launch"] * EXTRA_ROW_GATHER
        a = op.attrs
        t += a.get("host_launches", 0) * self.kernel_s("fill")          # a factory's kernel: a plain launch
        t += a.get("host_views", 0) * self.s["view"] + a.get("host_calls", 0) * self.s["module"]
        return t + a.get("host_py", 0) * self.s["py_call"] if self.per_call else t

    def new_shapes(self, ops, order, device_id: str, kv_len: int = 0) -> dict:
        """A first pass (see `cudnn_new_shape`): {position in `order`'s first visit: host seconds} for the cuDNN
        graphs a step builds, one per distinct shape key among its cuDNN SDPA calls whose keys span the step's
        whole KV length `kv_len` (a sliding-window cache past its window keeps fewer keys, the same number every
        step: a shape the process ran at its first such step), charged where the step first issues that shape.
        {} on a device whose torch does not prefer cuDNN SDPA."""
        if device_id not in CUDNN_SDPA_DEVICES:
            return {}
        out, seen = {}, set()
        for i in order:
            a = ops[i].attrs
            if not a.get("cudnn") or a.get("sk", 0) < kv_len:
                continue
            key = cudnn_key(a)
            if key not in seen:
                seen.add(key)
                out[i] = out.get(i, 0.0) + self.s["cudnn_new_shape"]
        return out

    @staticmethod
    def forces_sync(op) -> bool:
        return any(k.aten in SYNCS for k in op.kernels)

    @property
    def sync_s(self) -> float:
        return self.s["sync"]

    @property
    def step_s(self) -> float:
        return self.s["step"]

    @property
    def collective_s(self) -> float:
        return self.s["collective"]

    @property
    def graph_launch_s(self) -> float:
        return self.s["graph_launch"]


def cudnn_key(attrs) -> tuple:
    """The part of torch's cuDNN graph key (MHA.cpp `MHAParams`) a traced attention op's attrs give: batch, query
    and key/value heads, query and key lengths, head dims, causal, a mask or none (dtype and the contiguous layouts
    HF passes are the same for every call of one model)."""
    return tuple(attrs.get(k) for k in ("b", "hq", "hkv", "sq", "sk", "d", "dv", "causal", "mask"))


def write_host_file(path: str, host_id: str, name: str, costs_us: dict, sources: dict, machine: dict) -> str:
    """A host file in the preset format: every cost `{value, source}` (source keys into `sources`)."""
    shown = " ".join(str(path).splitlines())               # a comment line stays one line
    lines = [f"# written by `hwsim probe-host` ({machine.get('date', '')}); load it with --host {shown}",
             f"id: {json.dumps(host_id)}", f"name: {json.dumps(name)}",
             "sources:"]
    for k, v in sources.items():
        lines.append(f"  {k}: {json.dumps(v)}")          # JSON scalars are YAML
    lines.append("machine:")
    for k, v in machine.items():
        lines.append(f"  {k}: {json.dumps(v)}")
    lines.append("costs_us:")
    for k in COSTS + tuple(k for k in OPTIONAL_COSTS if k in costs_us):
        value, source = costs_us[k]
        lines.append(f"  {k}: {{value: {value:.4g}, source: {source}}}")
    lines.append("speed: 1.0")
    return "\n".join(lines) + "\n"
