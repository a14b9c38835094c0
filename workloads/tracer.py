"""Dispatch-level tracing: run the torch module on meta tensors and record every aten kernel.

A `TorchDispatchMode` sees each kernel after autograd and decomposition, i.e. what eager
PyTorch really launches. Module hooks say which leaf module (logical op) and which decoder
layer group is running. Tensors carry two tags: their byte class (weight / activation /
kv_cache, inherited through views) and the op that produced them (for graph edges).
"""
from __future__ import annotations

import math
from typing import Optional

import networkx as nx
import torch
from torch._prims_common import suggest_memory_format
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

from .graph import Kernel, Op, OpGraph

aten = torch.ops.aten
_FREE = {aten._unsafe_view.default, aten.alias.default, aten.detach.default, aten.lift_fresh.default}
_PURE_WRITES = {aten.copy_.default, aten.fill_.Scalar, aten.zero_.default, aten.index_copy_.default}
# read only the selected rows (`t[idx]` is aten.index: HF's batched_mm experts gather the routed experts' weights so)
_GATHERS = {aten.embedding.default, aten.index_select.default, aten.index.Tensor}
_SCATTERS = {aten.index_add_.default}                              # touch only the indexed rows
_STANDALONE_KIND = {"mm": "matmul", "addmm": "matmul", "bmm": "matmul", "_softmax": "softmax",
                    "native_layer_norm": "norm", "embedding": "embedding", "cat": "memcpy", "clone": "memcpy",
                    "_to_copy": "memcpy", "copy_": "memcpy", "index_select": "memcpy"}
_DATA_MOVES = {"copy_", "cat", "clone", "_to_copy", "index_select", "embedding", "zeros_like", "fill_", "zero_",
               "index_copy_", "topk"}
_NO_KERNEL = {"empty", "empty_strided", "empty_like", "new_empty", "new_empty_strided", "lift_fresh"}
# views whose schema does not say so: unsafe_split/unsafe_chunk return views without alias tracking (LSTM/GRU cells
# split their gates with them); in-place views (transpose_, t_, squeeze_, unsqueeze_, as_strided_) restride a tensor
_VIEWS_UNTAGGED = {"unsafe_split", "unsafe_split_with_sizes", "unsafe_chunk"}


def is_view(func) -> bool:
    """A view or metadata op: no kernel on a GPU, host work only."""
    return func.is_view or torch.Tag.inplace_view in func.tags or func.overloadpacket.__name__ in _VIEWS_UNTAGGED
_DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32", torch.int64: "int64"}


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _dense(t: torch.Tensor) -> bool:
    """True when the elements fill one gap-free block in some dimension order (contiguous or permuted); a tensor
    without elements has no gaps (e.g. the empty `q[..., rotary_dim:]` a full-rotary RoPE cats back on)."""
    if t.numel() == 0:
        return True
    expected = 1
    for stride, size in sorted((st, sz) for sz, st in zip(t.shape, t.stride()) if sz != 1):
        if stride != expected:
            return False
        expected *= size
    return True


# kernels whose operands' layout decides between PyTorch's vectorized and its unrolled/strided kernels: the
# elementwise ones and these data moves (a gather, scatter or fill keeps the gapped/dense flag alone)
_LAYOUT_MOVES = {"copy_", "cat", "clone", "_to_copy"}
_NARROWING = {(torch.float32, torch.bfloat16), (torch.float32, torch.float16)}


def _layout_key(t: torch.Tensor) -> tuple:
    return tuple(st for sz, st in zip(t.shape, t.stride()) if sz != 1)


_INT32_MAX = 2 ** 31 - 1


def _index32(t: torch.Tensor) -> bool:
    """at::cuda::detail::canUse32BitIndexMath: fewer elements and a smaller furthest offset than INT32_MAX."""
    return t.numel() < _INT32_MAX and sum((n - 1) * st for n, st in zip(t.shape, t.stride()) if n) < _INT32_MAX


# torch's CUDA cat: aten/src/ATen/native/cuda/Shape.cu `cat_out_cuda` and `parallel_cat`, with the flags of
# aten/src/ATen/native/TensorShape.cpp `TORCH_PRECOMPUTE_META_FUNC(cat)` (kernel names as profiled on the H100/H200).
def _cat_access(inputs: list, outputs: list) -> int:
    """0 where torch runs `CatArrayBatchedCopy_vectorized` (16-byte loads and stores): every part contiguous and
    none skipped (a 1-D empty tensor, HF DynamicCache's start, clears all_contiguous: a prefill's KV append runs the
    strided `CatArrayBatchedCopy`, as profiled for falcon-7b's and deepseek-v2-lite's dense K/V), every data pointer
    16-byte aligned, each part's slice past the cat dim and the output's stride before it whole 16 bytes. Else 2:
    the strided kernel, or for misaligned contiguous parts `_alignedK_contig`/`_contig` (per-element stores), whose
    speed no set here measures. One input, > 4 dims, mixed dtypes or 64-bit indexing: torch copies part by part
    (not modelled: 0 when all are contiguous, else 2, as before)."""
    out = max(outputs, key=lambda t: t.numel())
    parts = [t for t in inputs if not (t.dim() == 1 and t.numel() == 0)]       # cat_should_skip_tensor
    if len(inputs) < 2 or out.dim() > 4 or not all(_index32(t) for t in inputs + [out]) or \
            any(t.dtype != out.dtype for t in inputs):
        return 2 if any(not t.is_contiguous() for t in inputs + outputs if t.numel() > 1) else 0
    # cat_compute_output_memory_format: contiguous unless every input suggests channels-last
    if len(parts) < len(inputs) or not any(suggest_memory_format(t) == torch.contiguous_format for t in inputs) \
            or any(not t.is_contiguous() for t in parts):
        return 2                                   # CatArrayBatchedCopy: per-element strided offsets
    size = out.element_size()
    dim = next((d for d in range(out.dim()) if out.shape[d] == sum(t.shape[d] for t in parts)), 0)
    if any(t.storage_offset() * size % 16 for t in inputs + [out]):
        return 2                                   # a data pointer off 16 bytes (CUDA allocations are aligned)
    if dim and math.prod(out.shape[dim:]) * size % 16:
        return 2                                   # the output's stride before the cat dim
    for t in parts:
        if t.numel():
            sl = t.numel() if dim == 0 else t.stride(dim - 1) if t.shape[dim - 1] != 1 else math.prod(t.shape[dim:])
            if sl * size % 16:
                return 2                           # a part's slice past the cat dim
    return 0


def _access(func, inputs: list, outputs: list) -> int:
    """How a kernel reaches its operands (Kernel.strided): 0 every operand one contiguous block in one layout (torch's
    vectorized elementwise kernels: 16-byte loads); 1 an operand with gaps (e.g. one half of a fused projection's
    output); 2 gap-free but not vectorizable: an operand broadcast against the output (x * rsqrt(mean) over rows, a
    norm's weight, RoPE's cos/sin over heads), operands of the same shape in different layouts (a transposed
    [b, s, h, d] view against a [b, h, s, d] tensor), a cat torch does not vectorize (`_cat_access`), or a dtype
    change other than the fp32 -> bf16/fp16 copy (torch's bf16 -> fp32 `.to()` runs `unrolled_elementwise_kernel`).
    Measured kernel by kernel on the H200 (benchmarks/gpu/data/h200-2026-12-06-stack/kernels.csv): classes 0 at
    0.8-0.93 of the datasheet bandwidth, 2 at 0.3-0.55, cats of class 2 at ~0.19."""
    if any(t.dim() > 1 and not _dense(t) for t in inputs + outputs):
        return 1
    name = func.overloadpacket.__name__
    if not outputs or not (name in _LAYOUT_MOVES or torch.Tag.pointwise in func.tags):
        return 0                                   # a row kernel (LayerNorm, softmax), gather, fill, GEMM
    tensors = [t for t in inputs + outputs if t.numel() > 1]
    if name == "cat":
        return _cat_access(inputs, outputs)
    out = max(outputs, key=lambda t: t.numel())
    if any(t.numel() > out.numel() for t in inputs):
        return 0                                   # a reduction: torch's reduce kernels, not the elementwise ones
    if any(t.numel() < out.numel() for t in tensors):
        return 2                                   # broadcast operand
    if len({_layout_key(t) for t in tensors}) > 1:
        return 2                                   # same shape, different layouts
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) > 1:
        src = [t.dtype for t in inputs if t.numel() > 1]
        if not (name in ("_to_copy", "copy_", "clone") and len(dtypes) == 2 and
                (src[-1], out.dtype) in _NARROWING):
            return 2
    return 0


def _cls(t: torch.Tensor) -> str:
    return getattr(t, "hwsim_class", "activation")


class _Record:
    def __init__(self, index, name, kind, group):
        self.index, self.name, self.kind, self.group = index, name, kind, group
        self.kernels: list = []
        self.reads: dict = {}        # id -> (class, bytes, shape, dtype) of external inputs
        self.writes: dict = {}       # id -> (class, bytes) of in-place writes to external tensors
        self.outputs: list = []      # (class, bytes, shape)
        self.deps: set = set()
        self.attrs: dict = {}


class _Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.records: list = []
        self.stack: list = []        # open leaf records
        self.group: Optional[int] = None
        self.path: list = []         # module names, innermost last
        self.keep: list = []         # keep tensors alive so ids stay unique
        self.pending: dict = {}      # host work (module calls, views) waiting for the next op

    # --- module scope -------------------------------------------------------------------
    def enter(self, module, name):
        self.path.append(name)
        self._host("host_calls")
        if hasattr(module, "hwsim_group"):
            self.group = module.hwsim_group
        if hasattr(module, "hwsim_kind"):
            self.stack.append(self._new_record(self._local(name), module.hwsim_kind))

    def leave(self, module, output):
        self.path.pop()
        if hasattr(module, "hwsim_group"):
            self.group = None
        if hasattr(module, "hwsim_kind"):
            record = self.stack.pop()
            for t in tree_flatten(output)[0]:
                if isinstance(t, torch.Tensor) and id(t) not in record.writes:
                    record.outputs.append((_cls(t), _nbytes(t), tuple(t.shape)))

    def _local(self, name):
        parts = name.split(".")
        if self.group is not None and len(parts) > 2 and parts[0] == "layers":
            return ".".join(parts[2:])
        return name

    def _new_record(self, name, kind):
        record = _Record(len(self.records), name, kind, self.group)
        self.records.append(record)
        for key, n in self.pending.items():          # host work seen since the last op goes with this one
            if n:
                record.attrs[key] = record.attrs.get(key, 0) + n
        self.pending = {}
        return record

    def _host(self, key: str, n: int = 1):
        """Host work the engine's host model costs (hw_models/host.py): module calls, views and factory launches,
        counted on the open leaf op or on the next op recorded."""
        if self.stack:
            self.stack[-1].attrs[key] = self.stack[-1].attrs.get(key, 0) + n
        else:
            self.pending[key] = self.pending.get(key, 0) + n

    # --- kernels ------------------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
        outputs = [o for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor)]
        self.keep.extend(outputs)
        no_kernel = func.overloadpacket.__name__ in _NO_KERNEL
        view = is_view(func)
        if func in _FREE or view or not inputs or no_kernel:
            if no_kernel or view or func in _FREE:
                self._host("host_views")           # metadata or an allocation (empty, new_empty): host work only
            else:
                self._host("host_launches")        # a factory that fills memory: one kernel launch
            for o in outputs:        # views and fresh tensors inherit the tags of their source
                if inputs:
                    o.hwsim_class = _cls(inputs[0])
                    if hasattr(inputs[0], "_hwsim_src"):
                        o._hwsim_src = inputs[0]._hwsim_src
            return out
        record = self.stack[-1] if self.stack else None
        standalone = record is None
        if standalone:
            aten_name = func.overloadpacket.__name__
            scope = self._local(self.path[-1]) if self.path and self.path[-1] else ""
            record = self._new_record(f"{scope}.{aten_name}" if scope else aten_name, self._standalone_kind(aten_name))
        self._account(func, args, kwargs, inputs, outputs, out, record, standalone)
        return out

    def _account(self, func, args, kwargs, inputs, outputs, out, record, standalone):
        written = set()
        for arg, schema in zip(args, func._schema.arguments):
            if isinstance(arg, torch.Tensor) and schema.alias_info is not None and schema.alias_info.is_write:
                written.add(id(arg))
        kbytes = {}

        def add(cls, n):
            kbytes[cls] = kbytes.get(cls, 0) + n

        out_bytes = sum(_nbytes(o) for o in outputs if id(o) not in written)
        seen = set()
        for i, t in enumerate(inputs):
            if id(t) in seen:
                continue
            seen.add(id(t))
            n = _nbytes(t)
            if func in _GATHERS and i == 0:
                n = out_bytes
            if func in _SCATTERS and id(t) in written:
                n = _nbytes(inputs[-1])
            n = self._input_bytes(func, i, t, n, inputs, outputs)
            src = getattr(t, "_hwsim_src", None)
            if id(t) in written:
                times = 1 if func in _PURE_WRITES else 2
                add(_cls(t), n * times)
                record.writes[id(t)] = (_cls(t), n * times)
                t._hwsim_src = record.index
                base = t._base if t._base is not None else None
                if base is not None:
                    base._hwsim_src = record.index
                continue
            add(_cls(t), n)
            if src != record.index:
                record.reads.setdefault(id(t), (_cls(t), n, tuple(t.shape), t.dtype))
                if src is not None:
                    record.deps.add(src)
        out_cls = self._out_class(func, inputs)
        for o in outputs:
            if id(o) in written:
                continue
            add(out_cls, _nbytes(o))
            o._hwsim_src = record.index
            if out_cls != "activation":
                o.hwsim_class = out_cls
        if standalone:
            record.outputs.extend((out_cls, _nbytes(o), tuple(o.shape)) for o in outputs if id(o) not in written)
        flop_fn = self._flop_formula(func)
        if flop_fn:
            flops = int(flop_fn(*args, **kwargs, out_val=out))
        elif func.overloadpacket.__name__ in _DATA_MOVES or record.kind in ("matmul", "attention"):
            flops = 0
        else:   # vector op: one operation per element of its largest operand (reductions read more than they write)
            flops = max([o.numel() for o in outputs] + [t.numel() for t in inputs if _cls(t) != "weight"])
        strided = _access(func, inputs, outputs)
        record.kernels.append(Kernel(func.overloadpacket.__name__, flops, kbytes, strided))
        self._attrs(func, args, record)

    # --- hooks for other recorders (workloads/module_trace.py) --------------------------------
    def _input_bytes(self, func, i, t, n, inputs, outputs):
        """Bytes a kernel reads of its i-th tensor input (default: what the tracer's rules above give)."""
        return n

    def _out_class(self, func, inputs) -> str:
        """Byte class of a kernel's fresh outputs."""
        return "activation"

    def _standalone_kind(self, aten_name: str) -> str:
        """Op kind of a kernel run outside any leaf module."""
        return _STANDALONE_KIND.get(aten_name, "elementwise")

    def _flop_formula(self, func):
        return flop_registry.get(func.overloadpacket)

    @staticmethod
    def _attrs(func, args, record):
        name = func.overloadpacket.__name__
        if name in ("mm", "addmm", "bmm"):
            a, b = (args[1], args[2]) if name == "addmm" else (args[0], args[1])
            record.attrs.update(m=a.shape[-2], k=a.shape[-1], n=b.shape[-1], batch=a.shape[0] if name == "bmm" else 1,
                                weight_operand=_cls(b) == "weight")
        elif name == "attention":
            q, k = args[0], args[1]
            record.attrs.update(b=q.shape[0], hq=q.shape[1], hkv=k.shape[1], sq=q.shape[2], sk=k.shape[2],
                                d=q.shape[3], dv=args[3], causal=args[4], window=args[5])


def trace_module(model, step, unique: bool = True, last_token_logits: bool = True):
    """Run `model(step)` on meta tensors; return the op records and the layer groups."""
    for p in model.parameters():
        p.hwsim_class = "weight"
    recorder = _Recorder()
    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(lambda m, a, n=name: recorder.enter(m, n)))
        handles.append(module.register_forward_hook(lambda m, a, o: recorder.leave(m, o)))
    try:
        with torch.no_grad(), recorder:
            model(step, unique=unique, last_token_logits=last_token_logits)
    finally:
        for h in handles:
            h.remove()
    return recorder.records


def records_to_graph(records, layer_groups: dict, meta: dict) -> OpGraph:
    graph = nx.DiGraph()
    ops = []
    for r in records:
        if not r.kernels:
            continue
        reads, fused = {}, {}
        for cls, n, *_ in r.reads.values():
            reads[cls] = reads.get(cls, 0) + n
        for cls, n in list(reads.items()) + list(r.writes.values()) + [(c, n) for c, n, _ in r.outputs]:
            fused[cls] = fused.get(cls, 0) + n
        dtypes = [d for *_, d in r.reads.values() if d.is_floating_point]
        op = Op(index=r.index, name=r.name, kind=r.kind, group=r.group,
                repeat=len(layer_groups[r.group]) if r.group is not None else 1,
                input_shapes=tuple(s for _, _, s, _ in r.reads.values()),
                output_shapes=tuple(s for *_, s in r.outputs),
                dtype=_DTYPE_NAMES.get(dtypes[0], str(dtypes[0])) if dtypes else "bf16",
                flops=sum(k.flops for k in r.kernels), bytes=fused, reads=reads, kernels=tuple(r.kernels), attrs=dict(r.attrs))
        ops.append(op)
        graph.add_node(op.index, op=op)
        for dep in r.deps:
            if dep in graph:
                graph.add_edge(dep, op.index)
    return OpGraph(ops=ops, graph=graph, layer_groups={g: tuple(v) for g, v in layer_groups.items()}, meta=meta)
