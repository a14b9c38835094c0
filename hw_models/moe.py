"""Cost of one MoE FFN layer on a GPU, by implementation: router, token permutation, experts, un-permutation.

The layer is the kernels a PyTorch implementation runs (benchmarks/gpu/measure_stack.py's moe part, HF style),
each priced by the GPU model (GEMMs by GPUModel's tile model, everything else bytes over the bandwidth of its
operand class, as a traced step prices the same op (hw_models/eager_access.py: the grouped layer's SiLU and product
read halves of one gate|up output, class 1; the gate-weight product broadcasts, class 2; index_add_ at the device's
atomic rate), plus the kernel floor). Routing enters only through `counts`, the rows each expert receives:
  loop     one expert after another: per expert with rows, an index_select of its rows, gate, up and down GEMMs
           (m = its rows), SiLU, product, the gate-weight product and an index_add_ back. Its time is the sum over
           the experts, so every active expert pays its kernels' floors and reads its weights.
  grouped  torch._grouped_mm style: one gather of all T k rows, one grouped GEMM per projection (gate|up, down),
           each launched after its setup kernel (prepare_grouped_gemm_data: the groups' pointers and sizes),
           SiLU x up over all rows, one gate-weight product and one index_add_. The grouped GEMM's CTA tiles are
           each expert's own tiles (its rows padded to the tile height) pooled over the SMs: load imbalance costs
           the padding of the experts' last tiles and the weights of every expert that got a row, not the most
           loaded expert's time (`grouped_rule="max"` prices the other hypothesis, every expert padded to the most
           loaded one, for benchmarks/gpu/fit_stack.py to compare). Its attained compute and weight-stream
           fractions are the device's `grouped_mm_eff` / `grouped_bw_eff` (fitted where measured; else the plain
           GEMM's `mm_eff` / `bw_eff`).
Host: in a CUDA graph (the measured runs, serving stacks) the host is off the path. A host-issued stack
(`Stack.host_queue`) issues every kernel; the loop needs the counts on the host first (one sync, which drains the
queue: the router's work is exposed), then issues each expert's kernels while the GPU runs them (two queues).
The grouped layer keeps its offsets on the device: no sync.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from workloads.graph import Op

from .eager_access import eager_kernel_eff
from .gemm_tiles import TILES

IMPLS = ("loop", "grouped")
_TILE_ARRAYS = tuple(np.array(x, dtype=float) for x in zip(*TILES))


@dataclass(frozen=True)
class MoELayer:
    tokens: int
    hidden: int
    ffn: int                  # one expert's intermediate width
    top_k: int
    counts: tuple             # rows per expert (len = experts)

    @property
    def experts(self) -> int:
        return len(self.counts)


@dataclass(frozen=True)
class Kernel:
    part: str                 # router | permute | experts | unpermute
    aten: str                 # for the host's issue cost
    gpu_s: float
    sync: bool = False        # the host waits for the GPU to finish everything before it (counts to the host)


def _gemm_s(model, m, n, k, clock_mhz) -> float:
    op = Op(0, "mm", "matmul", None, 1, (), (), "bf16", 2 * m * n * k,
            {"weight": n * k * 2, "activation": m * k * 2 + m * n * 2}, attrs=dict(m=m, n=n, k=k, batch=1))
    return model.cost(op, clock_mhz).time_s


def _eltwise_s(model, nbytes, floor_us=None, access=None, atomic=False) -> float:
    """One eager elementwise/indexing kernel: bytes over the eager bandwidth plus the kernel floor (`floor_us`: another
    floor, e.g. the loop's in-graph one). access: the kernel's operand class as workloads/tracer.py `_access` gives
    it for the same op in a traced step (0 vectorized, 1 gapped operand, 2 broadcast or widening cast), priced by
    eager_access.eager_kernel_eff as the traced step prices it (`atomic`: an index_add_, at the device's atomic
    rate); None: the plain eager bandwidth (the router's top-k and sort)."""
    eff = model.p["eager_bw_eff"] if access is None else eager_kernel_eff(model.p, access, False, atomic=atomic)
    return model._stream(nbytes, eff) + (model.p["kernel_floor_us"] if floor_us is None else floor_us) * 1e-6


def _index_add_s(model, nbytes, floor_us=None) -> float:
    """index_add_ back into the tokens' rows (R x H source, 6 bytes an element: read, and an atomic read-modify-write
    of the destination): at the device's atomic rate `index_add_gbps` where measured (benchmarks/gpu/data/
    *-moe-grid-wide: the H100's indexFuncLargeIndex moves 0.70-0.73 TB/s of these bytes at 8k-33k rows, a fifth of
    its DRAM bandwidth), else as a vectorized kernel (eager_kernel_eff, as a traced index_add_); plus the floor."""
    return _eltwise_s(model, nbytes, floor_us, access=0, atomic=True)


def loop_floor_us(model) -> float:
    """The per-expert loop's kernel floor, us: `moe_loop_floor_us` where the device has it (the cost of one small
    kernel of the loop inside its CUDA graph, fitted on a measured loop grid: benchmarks/gpu/fit_stack.py), else
    the step floor `kernel_floor_us` (fit.py's)."""
    v = model.p.get("moe_loop_floor_us")
    return model.p["kernel_floor_us"] if v is None else v


def _loop_gemm_s(model, m, n, k, clock_mhz) -> float:
    """One expert GEMM of the per-expert loop: the plain GEMM model (its fixed cost mm_floor_us too), with the loop's
    kernel floor (`loop_floor_us`) and, where the device has it, the weights and activations of these few-row GEMMs
    streamed at `moe_loop_bw_eff` of DRAM bandwidth (else the plain GEMM's bw_eff); plus `_loop_rows_s`."""
    p = model.p
    bw = p.get("moe_loop_bw_eff")
    if p.get("moe_loop_floor_us") is None and bw is None:
        return _gemm_s(model, m, n, k, clock_mhz) + _loop_rows_s(model, m, n, k)
    op = Op(0, "mm", "matmul", None, 1, (), (), "bf16", 2 * m * n * k,
            {"weight": n * k * 2, "activation": m * k * 2 + m * n * 2}, attrs=dict(m=m, n=n, k=k, batch=1))
    c = model.cost(op, clock_mhz)
    memory = c.memory_s if bw is None else model._stream(sum(op.bytes.values()), bw)
    return max(c.compute_s, memory) + (loop_floor_us(model) + p["mm_floor_us"]) * 1e-6 + _loop_rows_s(model, m, n, k)


def _loop_rows_s(model, m, n, k) -> float:
    """The few-row cost of one loop GEMM, seconds: `moe_loop_row_us` for each row beyond the first where m <=
    `moe_loop_small_m` (0 where the device has neither: other GPUs unchanged; the 1-row GEMM is the plain model's).
    Why: on the H100's loop grid (benchmarks/gpu/data/h100-2026-12-06-moe-grid) the loop's time rises by 1.1-1.2 us
    per row per expert (its 3 GEMMs) from 1 to 16 rows at 2.9-5.8M weights per GEMM (14.7M: 1.2-1.3 up to 8 rows,
    more from 8 to 16), and falls back at 32 (cuBLAS's small-M kernel up to 16 rows, a tensor-core tile from 32); a
    re-read of the weights per row was tried and not taken (the grid fit puts it at 100-240 TB/s, i.e. nothing). Scoped to the loop's GEMMs: the dense
    decode GEMMs measured alike (torch.mm(x, w.t()): data/h100-2026-12-06-stack, -lease8-kernels and
    h100-sxm-2026-11-24 gemm.csv, 34 bf16 shapes of 4.2-525M weights, 1024x4096 and 3072x3072 as small as the
    experts') do not rise from 1 to 16 rows (-3.2..+1.6 us; the 128256-wide lm_head +10 us on 373 us): the preset's
    error on a shape moves -9..+13 points from 1 to 16 rows there, -30..-40 on the loop grid. docs/stack-accuracy.md,
    "MoE loop grid"."""
    p = model.p
    if m > p.get("moe_loop_small_m", 0):
        return 0.0
    return max(m - 1, 0) * p.get("moe_loop_row_us", 0.0) * 1e-6


_BASE_BYTES = {"fp8": 1.0, "int8": 1.0, "fp32": 4.0}


def operand_bytes(attrs: dict, dtype: str) -> tuple:
    """(weight, activation) bytes per element of a GEMM: the quantized bits where the op carries them
    (workloads/transforms.py weight_bits / act_bits: w4a16 streams half-byte weights), else its dtype's."""
    base = _BASE_BYTES.get(dtype, 2.0) * 8
    return attrs.get("weight_bits", base) / 8, attrs.get("act_bits", base) / 8


def grouped_parts(model, classes, n, k, clock_mhz, nbytes=None, dtype: str = "bf16", w_bytes: float = 2.0,
                  a_bytes: float = 2.0) -> tuple:
    """(compute, memory, overhead) seconds of one grouped GEMM whose groups come in classes [(rows, count)]: `count`
    groups of `rows` rows each multiply their rows x k by their own k x n weight (no split-K). Its CTA tiles (each
    group's rows padded to the tile height) run in waves over the SMs: compute is the waves at the tile's rate; a
    tile streams its k x tn weight slab and its rows at most `grouped_sm_gbps` per SM (so a GEMM of fewer tiles than
    SMs reaches only part of the DRAM bandwidth), the whole at most the DRAM rate x `grouped_bw_eff` (memory: the
    larger of the two); overhead: `grouped_tile_us` per wave (prologue, epilogue) and the GEMM's kernel floors. The
    best tile shape over TILES (least total). Numbers may be numpy arrays (one entry per case; the model stacked,
    its numbers [points, 1]): all broadcast. `dtype`: the tensor-core type (its peak). `nbytes`: the bytes the
    kernel moves where the caller has them (an op's own), else the weights of the groups with rows plus their rows
    in and out. `w_bytes` / `a_bytes`: bytes per weight / activation element (`operand_bytes`; 16-bit by default:
    the grouped kernels measured here), which the per-SM stream of a tile's slab and rows counts."""
    p = model.p
    classes = [(np.asarray(r, dtype=float), np.asarray(c, dtype=float)) for r, c in classes]
    counts = [np.where(r > 0, c, 0.0) for r, c in classes]
    peak = model._peak(dtype, clock_mhz) * p.get("grouped_mm_eff", p["mm_eff"])
    sm_bw = p.get("grouped_sm_gbps", 0.0) * 1e9
    if nbytes is None:
        nbytes = sum(c * n * k * w_bytes + c * r * (k + n) * a_bytes for (r, _), c in zip(classes, counts))
    dram = model._stream(nbytes, p.get("grouped_bw_eff", p["bw_eff"]))
    # the tile shapes on a first axis (the best one is then picked elementwise)
    tail = (1,) * max([np.ndim(x) for x in (n, k, dram, peak, sm_bw, model.sms)] +
                      [np.ndim(x) for r, c in classes for x in (r, c)])
    tm, tn, rel = (np.reshape(t, (-1,) + tail) for t in _TILE_ARRAYS)
    tiles = sum(c * np.ceil(r / tm) for (r, _), c in zip(classes, counts)) * np.ceil(np.divide(n, tn))
    waves = np.ceil(tiles / model.sms)
    compute = waves * model.sms * tm * tn * k * 2 / (peak * rel)
    stream = waves * (tn * w_bytes + tm * a_bytes) * k / np.where(np.greater(sm_bw, 0), sm_bw, 1.0) \
        * np.greater(sm_bw, 0)
    memory = np.maximum(stream, dram)
    over = waves * (p.get("grouped_tile_us", 0.0) * 1e-6)
    total = np.maximum(compute, memory) + over
    best = np.argmin(total, axis=0)[None]               # the first of equal totals, as a strict `<` scan picks
    compute, memory, over = (np.take_along_axis(np.broadcast_to(x, total.shape), best, axis=0)[0]
                             for x in (compute, memory, over))
    over = over + (p["kernel_floor_us"] + p["mm_floor_us"]) * 1e-6
    if all(np.ndim(x) == 0 for x in (compute, memory, over)):
        return float(compute), float(memory), float(over)
    return compute, memory, over


def grouped_gemm_s(model, rows, n, k, clock_mhz, rule="tiles") -> float:
    """One grouped GEMM (`grouped_parts`) of groups of `rows` rows each, in seconds; empty groups take no tile and
    read no weight. rule "max": every group with rows padded to the largest one."""
    rows = [r for r in rows if r > 0]
    if not rows:
        return 0.0
    classes = [(max(rows), len(rows))] if rule == "max" else [(r, 1) for r in rows]
    nbytes = len(rows) * n * k * 2 + sum(rows) * (k + n) * 2
    compute, memory, over = grouped_parts(model, classes, n, k, clock_mhz, nbytes)
    return max(compute, memory) + over


def _prepare_s(model) -> float:
    """torch._grouped_mm's setup kernel: before each CUTLASS grouped GEMM it launches prepare_grouped_gemm_data
    (aten/src/ATen/native/cuda/GroupMM.cu: one block, a thread per group, each writing its group's operand
    pointers, problem size and strides from the offsets; described, not copied), a kernel of no work: its floor."""
    return model.p["kernel_floor_us"] * 1e-6


def topk_s(model, rows, experts, top_k) -> float:
    """torch.topk over `rows` rows of `experts` float32 scores, seconds: a selection over each row (values and int64
    ids out: bytes over the eager bandwidth and the kernel floor), its own fixed cost (`moe_topk_us`) and a cost per
    row (`moe_topk_row_ns`: torch's top-k over many short rows). Where fitted on a grid of expert counts and top-k
    (benchmarks/gpu/fit_stack.py, a router grid): torch's gather top-k runs one block of round_up(E, 32) threads per
    row, a radix select whose block-wide counts and scans take every warp of the row's scores: a cost per warp of
    that block per call (`moe_topk_warp_us`: the block's latency) and per row (`moe_topk_warp_ns`); and with
    `moe_topk_sort` 1 the sort of the k results (torch.topk's sorted=True: one more kernel, a bitonic sort of each
    row's k values and ids; none for k = 1) as its own kernel (`sort_s`), `moe_sort_us` its fixed cost beyond the
    floor."""
    p = model.p
    warps = -(-experts // 32)
    return (_eltwise_s(model, rows * experts * 4 + rows * top_k * 12) + p.get("moe_topk_us", 0.0) * 1e-6
            + warps * p.get("moe_topk_warp_us", 0.0) * 1e-6
            + rows * (p.get("moe_topk_row_ns", 0.0) + warps * p.get("moe_topk_warp_ns", 0.0)) * 1e-9)


def sort_s(model, rows, top_k):
    """The sort of torch.topk's k results (`topk_s`), seconds, where `moe_topk_sort` prices it as its own kernel and
    k > 1; else None (no kernel)."""
    if not model.p.get("moe_topk_sort", 0) or top_k <= 1:
        return None
    return _eltwise_s(model, rows * top_k * 24) + model.p.get("moe_sort_us", 0.0) * 1e-6


def router_gemm_s(model, rows, experts, hidden, clock_mhz) -> float:
    """The router GEMM (rows x hidden by hidden x experts, bf16 out), seconds: the plain GEMM model; where a bf16 row
    of the output (2 x experts bytes) is not a multiple of 16 bytes (60 experts: 120 bytes), cuBLAS cannot take its
    16-byte-aligned kernels and the input streams at an extra `moe_router_unaligned_gbps` (0: not priced), as
    measured on the router grid (60 experts against 64, benchmarks/gpu/fit_stack.py)."""
    t = _gemm_s(model, rows, experts, hidden, clock_mhz)
    gbps = model.p.get("moe_router_unaligned_gbps", 0.0)
    if gbps and (2 * experts) % 16:
        t += rows * hidden * 2 / (gbps * 1e9)
    return t


def kernels(model, layer: MoELayer, impl: str, clock_mhz: float, rule: str = "tiles") -> list:
    """[Kernel] of one MoE layer under `impl` (loop | grouped), in issue order."""
    T, H, F, K, E = layer.tokens, layer.hidden, layer.ffn, layer.top_k, layer.experts
    out = [Kernel("router", "mm", router_gemm_s(model, T, E, H, clock_mhz)),
           Kernel("router", "_to_copy", _eltwise_s(model, T * E * (2 + 4), access=2)),     # widening cast
           Kernel("router", "_softmax", _eltwise_s(model, T * E * 8, access=0)),
           Kernel("router", "topk", topk_s(model, T, E, K))]
    if sort_s(model, T, K) is not None:
        out.append(Kernel("router", "sort", sort_s(model, T, K)))
    if impl == "loop":
        fl = loop_floor_us(model)
        out.append(Kernel("unpermute", "zeros", _eltwise_s(model, T * H * 2, fl, access=0)))
        first = True
        for m in layer.counts:
            if not m:
                continue
            # counts on the host: the first expert's slice waits for them (one sync, e.g. .tolist())
            out.append(Kernel("permute", "index_select", _eltwise_s(model, 2 * m * H * 2 + m * 8, fl, access=0),
                              sync=first))
            first = False
            out += [Kernel("experts", "mm", _loop_gemm_s(model, m, F, H, clock_mhz)),
                    Kernel("experts", "mm", _loop_gemm_s(model, m, F, H, clock_mhz)),
                    Kernel("experts", "silu", _eltwise_s(model, m * F * 4, fl, access=0)),
                    Kernel("experts", "mul", _eltwise_s(model, m * F * 6, fl, access=0)),
                    Kernel("experts", "mm", _loop_gemm_s(model, m, H, F, clock_mhz)),
                    Kernel("unpermute", "mul", _eltwise_s(model, m * H * 4 + m * 2, fl, access=2)),  # gate weight
                    Kernel("unpermute", "index_add", _index_add_s(model, m * H * 6 + m * 8, fl))]
        return out
    if impl != "grouped":
        raise ValueError(f"unknown MoE implementation '{impl}'; use {' or '.join(IMPLS)}")
    R = T * K
    out += [Kernel("permute", "index_select", _eltwise_s(model, 2 * R * H * 2 + R * 8, access=0)),
            Kernel("experts", "prepare", _prepare_s(model)),
            Kernel("experts", "_grouped_mm", grouped_gemm_s(model, layer.counts, 2 * F, H, clock_mhz, rule)),
            # SiLU of the gate half and its product with the up half: operands with gaps (class 1)
            Kernel("experts", "silu", _eltwise_s(model, R * F * 4, access=1)),
            Kernel("experts", "mul", _eltwise_s(model, R * F * 6, access=1)),
            Kernel("experts", "prepare", _prepare_s(model)),
            Kernel("experts", "_grouped_mm", grouped_gemm_s(model, layer.counts, H, F, clock_mhz, rule)),
            Kernel("unpermute", "zeros", _eltwise_s(model, T * H * 2, access=0)),
            Kernel("unpermute", "mul", _eltwise_s(model, R * H * 4 + R * 2, access=2)),     # gate weight
            Kernel("unpermute", "index_add", _index_add_s(model, R * H * 6 + R * 8))]
    return out


def layer_time(kern: list, host=None) -> dict:
    """{part: GPU seconds, 'host': seconds the GPU waits for the host, 'total': seconds}. host: a HostModel for a
    host-issued stack (two queues: the GPU starts a kernel once it is issued and the one before it is done; a sync
    kernel is issued only after the GPU drained), None for a CUDA graph (the sum of the kernels)."""
    parts = {}
    for k in kern:
        parts[k.part] = parts.get(k.part, 0.0) + k.gpu_s
    gpu_sum = sum(parts.values())
    if host is None:
        return {**parts, "host": 0.0, "total": gpu_sum}
    t_host = t_gpu = 0.0
    for k in kern:
        if k.sync:
            t_host = max(t_host, t_gpu) + host.sync_s
        t_host += host.kernel_s(k.aten)
        t_gpu = max(t_gpu, t_host) + k.gpu_s
    return {**parts, "host": t_gpu - gpu_sum, "total": t_gpu}


def moe_layer_time(model, layer: MoELayer, clock_mhz: float, impl: str = None, host=None, rule="tiles") -> dict:
    """One MoE layer's time under the model's stack (`Stack.moe_kernel` unless `impl` is given). `host` (a
    HostModel) only for host-issued stacks: see layer_time."""
    impl = impl or model.stack.moe_kernel
    return layer_time(kernels(model, layer, impl, clock_mhz, rule), host)


# --- the grouped layer on traced graphs ------------------------------------------------------------------------
# hwsim's MoE module traces its routed experts one by one: per expert with rows a gather (`mlp.gathers.E`), its
# projections and activation (`mlp.experts.E.*`) and a combine (`mlp.combines.E`); a class template
# (workloads/moe_template.py) stands for many identical experts by op (attrs["experts"]). Under a stack whose
# `moe_kernel` is grouped the layer runs one kernel per projection over all routed rows: `group_experts` marks each
# routed expert op with what its layer's grouped kernel needs, and the GPU model (GPUModel._device_cost) prices the
# op as its share of that kernel, so that the layer's ops together cost `grouped_parts` of each projection and each
# elementwise role's kernel floors once. Every cost path that prices ops (predict, sweeps, serving, the linear fast
# path: hw_models/gpu_table.py) therefore prices the grouped layer alike, and its time enters the power solve as
# the ops' compute, memory and overhead parts do.
#   GEMMs: the expert's GEMMs of one input width k (gate and up, or their merged GEMM; down) form one grouped GEMM of
#     the sum of their widths n over all classes of experts with rows; each op is 1 / (experts x GEMMs of the
#     group per expert) of it (`grouped_classes`, `grouped_n`, `grouped_share`).
#   Other expert ops (gather, activation, combine): their bytes as traced (the grouped layer moves the same rows),
#     their kernel floors paid once per layer: `grouped_share` = 1 / experts.
import re as _re

_EXPERT = _re.compile(r"^(?P<pre>.*?)mlp\.(?:experts\.(?P<e>\d+)\.|gathers\.(?P<g>\d+)$|combines\.(?P<c>\d+)$)")


def expert_of(name: str):
    """(layer prefix, expert number) of a routed expert op of hwsim's MoE module, else None."""
    m = _EXPERT.match(name)
    if m is None:
        return None
    return m.group("pre"), int(m.group("e") or m.group("g") or m.group("c"))


def group_experts(graph, share=1.0):
    """`graph` with its routed expert ops marked for the grouped layer (see above); unchanged (the same object)
    where it has none. `share`: the part of each class of experts one device holds (expert parallelism over the
    graph of the whole layer, sim/serving/step_cost.py: each expert op's runs are scaled by it there), so that the
    grouped GEMM is tiled over that device's experts."""
    layers = {}
    for op in graph.ops:
        who = expert_of(op.name)
        if who is not None:
            layers.setdefault((who[0], op.group), {}).setdefault(who[1], []).append(op)
    if not layers:
        return graph
    marks = {}
    for experts in layers.values():
        classes, count = [], 0.0
        for ops in experts.values():
            mm = [op for op in ops if op.kind == "matmul" and "m" in op.attrs]
            if not mm:
                continue
            c = op_count(mm[0]) * share
            classes.append((mm[0].attrs["m"], c))
            count = count + c
        if not classes:
            continue
        share = 1.0 / np.where(np.greater(count, 0), count, 1.0)
        if np.ndim(share) == 0:
            share = float(share)
        classes = tuple(classes)
        for ops in experts.values():
            mm = [op for op in ops if op.kind == "matmul" and "m" in op.attrs]
            by_k = {}
            for op in mm:
                by_k.setdefault(_key(op.attrs["k"]), []).append(op)
            ids = {id(op) for op in mm}
            for op in ops:
                if id(op) in ids:
                    sib = by_k[_key(op.attrs["k"])]
                    marks[op.index] = dict(grouped_classes=classes, grouped_n=sum(s.attrs["n"] for s in sib),
                                           grouped_share=share / len(sib))
                else:
                    marks[op.index] = dict(grouped_share=share)
    import copy
    out = copy.copy(graph)
    out.ops = [op.scaled(attrs=dict(op.attrs, **marks[op.index])) if op.index in marks else op for op in graph.ops]
    return out


def op_count(op):
    """How many identical experts an expert op stands for (a class template's attrs["experts"]; traced: 1)."""
    return op.attrs.get("experts", 1.0)


def _key(k):
    return k.tobytes() if isinstance(k, np.ndarray) else k
