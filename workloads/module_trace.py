"""Trace any torch module: one forward call -> `OpGraph`.

    from workloads import trace_module
    graph = trace_module(model, x)                 # model and x on the meta device (or small enough for CPU)

The same dispatch-level recorder as hwsim's own decoders (workloads/tracer.py), on a module it did not build:
- every aten kernel of the forward call is recorded with its shapes; parameters and buffers are weights, tensors
  the caller tags `hwsim_class = "kv_cache"` (and what `cat` grows from them) are KV cache, the rest activations;
- a leaf module (one without children: `nn.Linear`, a conv, a norm, an activation ...) is one op holding its
  kernels; a kernel called directly in a non-leaf module's `forward` (a residual add, a reshape copy) is an op of
  its own; `F.scaled_dot_product_attention` is one attention op (one fused kernel, as on a GPU; on the meta device
  torch would run its unfused math path), with the FLOPs `FlopCounterMode` counts for it;
- repeated blocks are found automatically: the children of an `nn.ModuleList`/`nn.Sequential` that are equal in
  structure (classes, parameter shapes, settings) and called with equal input shapes are traced until two in a row
  record the same ops, then the rest are replayed (their outputs made from the first one's shapes, nothing run);
  all of them become one layer group with a repeat count, so a 126-block model costs about two blocks;
- a kernel with no cost rule (no FLOP formula, not elementwise, not a known reduction or data move) is costed as
  memory-bound (its bytes, no FLOPs) and listed in one `UnknownOpsWarning` (and in `graph.meta["unknown_ops"]`).

FLOPs of matmuls, convolutions and attention come from `torch.utils.flop_counter`'s formulas, so the graph's
counted FLOPs equal `FlopCounterMode`'s on the same call (tests/test_module_trace.py); vector ops count one
operation per element. `torch._grouped_mm` (MoE experts run batched) has no formula there; it is counted here
as 2 x rows x K x N.
"""
from __future__ import annotations

import warnings
from collections import Counter
from typing import Optional

from .errors import HwsimError, HwsimWarning, check_switches
from .graph import Kernel, OpGraph


class UnknownOpsWarning(HwsimWarning):
    """Some aten kernels had no cost rule and were costed as memory-bound."""


# kernels that are known to be costed right without a FLOP formula (besides pointwise-tagged ones)
_KNOWN = {
    # data movement and factories
    "copy_", "cat", "stack", "clone", "_to_copy", "index_select", "embedding", "zeros_like", "ones_like", "empty_like",
    "full_like", "fill_", "zero_", "index_copy_", "index_copy", "slice_scatter", "select_scatter", "constant_pad_nd",
    "repeat", "repeat_interleave", "expand_copy", "gather", "scatter", "scatter_add", "scatter_", "index",
    "index_put", "index_put_", "index_add", "index_add_", "masked_fill", "masked_fill_", "masked_scatter", "tril",
    "triu", "flip", "roll", "one_hot", "new_zeros", "new_ones", "new_empty", "new_full", "empty", "zeros", "ones",
    "full", "arange", "scalar_tensor", "empty_strided", "empty_like", "lift_fresh_copy", "contiguous", "split_with_sizes_copy",
    # reductions, norms, softmax, sorting
    "sum", "mean", "amax", "amin", "max", "min", "argmax", "argmin", "var", "var_mean", "std", "std_mean", "prod", "any",
    "all", "_softmax", "_log_softmax", "_safe_softmax", "native_layer_norm", "native_group_norm", "native_batch_norm",
    "_native_batch_norm_legit", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit_functional",
    "_fused_rms_norm", "rms_norm", "linalg_vector_norm", "norm", "cumsum", "cumprod", "logsumexp", "topk", "sort",
    "argsort", "histc", "bincount", "_local_scalar_dense", "equal", "is_nonzero", "floor_divide", "remainder", "fmod", "polar", "complex", "nonzero", "count_nonzero", "unique_consecutive", "_unique2", "searchsorted",
    # resampling and pooling
    "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "upsample_bilinear2d", "upsample_bicubic2d",
    "_upsample_nearest_exact2d", "upsample_linear1d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "max_pool2d_with_indices", "max_pool3d_with_indices", "adaptive_avg_pool2d", "_adaptive_avg_pool2d",
    "adaptive_max_pool2d", "_adaptive_avg_pool3d", "im2col", "col2im", "pixel_shuffle", "pixel_unshuffle",
    # random numbers (dropout in train mode, sampling)
    "bernoulli", "bernoulli_", "uniform_", "normal_", "rand", "randn", "randint", "rand_like", "randn_like",
    "multinomial", "exponential_", "native_dropout",
}
_TORCH_NAMESPACES = {"aten", "prims"}   # ops whose kernels are torch's own code (not model code: see py_hook)
_GEMMS = {"mm", "addmm", "bmm", "baddbmm", "convolution", "_grouped_mm"}
_FREE_NAMES = {"_unsafe_view", "alias", "detach", "lift_fresh"}
_STANDALONE_KINDS = {"convolution": "matmul", "_grouped_mm": "matmul", "baddbmm": "matmul", "native_group_norm": "norm",
                     "native_batch_norm": "norm", "_native_batch_norm_legit_no_training": "norm", "_fused_rms_norm": "norm",
                     "_safe_softmax": "softmax", "_log_softmax": "softmax"}
_LEAF_KINDS = (("Linear", "matmul"), ("Conv", "matmul"), ("Embedding", "embedding"), ("Norm", "norm"),
               ("Softmax", "softmax"))


def _leaf_kind(module) -> str:
    """The op kind of a leaf module, by its class (and its parents' class names)."""
    for cls in type(module).__mro__:
        name = cls.__name__
        if "Rotary" in name:
            return "elementwise"
        for word, kind in _LEAF_KINDS:
            if word in name and not (word == "Linear" and "Bilinear" in name):
                return kind
    return "elementwise"


def _dims(module):
    import torch
    return tuple((n, tuple(p.shape), str(p.dtype)) for n, p in module.named_parameters(recurse=False)) + \
        tuple((n, tuple(b.shape), str(b.dtype)) for n, b in module.named_buffers(recurse=False) if isinstance(b, torch.Tensor))


_DYNAMIC_ATTRS = ("idx", "index", "layer_id", "layer_number", "layer_num", "block_id")


def _settings(module) -> tuple:
    """A module's plain settings (numbers, strings, flags), leaving out its own position in a stack."""
    out = []
    for k, v in sorted(vars(module).items()):
        if k in ("training",) or any(d in k.lower() for d in _DYNAMIC_ATTRS):
            continue
        if v is None or isinstance(v, (bool, int, float, str)):
            out.append((k, v))
        elif isinstance(v, tuple) and all(x is None or isinstance(x, (bool, int, float, str)) for x in v):
            out.append((k, v))
    return tuple(out)


def structure(module) -> tuple:
    """What makes two blocks the same computation: classes, parameter/buffer shapes and settings of every
    submodule (relative names), not their position in the model."""
    return tuple((name, type(m).__qualname__, _dims(m), _settings(m)) for name, m in module.named_modules())


def _tensor_sig(x):
    import torch
    if isinstance(x, torch.Tensor):
        return ("T", tuple(x.shape), tuple(x.stride()), str(x.dtype), x.device.type, getattr(x, "hwsim_class", "activation"))
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, (tuple, list)):
        return (type(x).__name__,) + tuple(_tensor_sig(v) for v in x)
    if isinstance(x, dict):
        return ("dict",) + tuple((k, _tensor_sig(v)) for k, v in sorted(x.items(), key=lambda kv: str(kv[0])))
    return ("obj", type(x).__qualname__)


def _content(records, first: int, root: str) -> tuple:
    """What a block instance recorded, position-free (to check that two instances are the same)."""
    out = []
    for r in records:
        out.append((r.name, r.kind, tuple((k.aten, k.flops, tuple(sorted(k.bytes.items())), k.strided) for k in r.kernels),
                    tuple(sorted((c, n) for c, n, *_ in r.reads.values())), tuple(sorted(r.writes.values())),
                    tuple(r.outputs), tuple(sorted((k, v) for k, v in r.attrs.items()))))
    return tuple(out)


def _hit_share(rows: int, draws: int, k: Optional[int] = None) -> float:
    """The expected share of `rows` that `draws` ids spread uniformly at random over them touch (experts that get
    tokens under uniform routing). With `k`, the ids are top-k routing: each of draws / k tokens picks k distinct
    experts, 1 - (1 - k/rows)^(draws/k), the count hwsim's own MoE template takes (moe_template.py); without it,
    ids drawn independently, 1 - (1 - 1/rows)^draws (fewer: one token's k picks may repeat there)."""
    if k and 1 < k < rows and draws % k == 0:
        return 1.0 - (1.0 - k / rows) ** (draws // k)
    return 1.0 - (1.0 - 1.0 / rows) ** draws


def _make_recorder():
    """The module recorder class (built on first use: torch is imported lazily)."""
    import sys

    import torch
    from torch.overrides import TorchFunctionMode
    from torch.utils._pytree import tree_flatten

    from . import sdpa_backend
    from .tracer import _Recorder, _cls, _nbytes, is_view

    aten = torch.ops.aten
    sdpa_fn = torch.nn.functional.scaled_dot_product_attention

    def is_grouped(func):
        return func.overloadpacket.__name__ == "_grouped_mm"

    class ModuleRecorder(_Recorder):
        def __init__(self, leaves: dict, blocks: dict):
            super().__init__()
            self.leaves = leaves              # id(module) -> kind
            self.blocks = blocks              # id(module) -> structure signature
            self.block: Optional[int] = None  # current block instance (outermost)
            self.root: Optional[str] = None   # its module path
            self.instances: list = []         # [instance id, structure, input signature, replayed from | None,
            #                                    first record, (end record, once left)]
            self.roots: list = []             # module path of each instance
            self.unknown: Counter = Counter()
            self.sdpa_backends: Counter = Counter()   # SDPA calls by the backend a CUDA GPU picks
            self.opaque = 0
            self.py_hook = None               # the profile function counting model code's calls, while set
            self.route: tuple = (0, 0)        # the last topk's (k, ids it returned): the router's picks

        # blocks and leaves -----------------------------------------------------------------------------------
        def enter(self, module, name):
            self.path.append(name)
            if self.block is None and id(module) in self.blocks:
                self.block, self.root = len(self.instances), name
                self.group = self.block
                self.instances.append([self.block, self.blocks[id(module)], None, None, len(self.records)])
                self.roots.append(name)
                # host work counted before the block goes with the first op after it, not into the block
                self.outside, self.pending = self.pending, {}
            if not self.opaque:
                self._host("host_calls")
            if id(module) in self.leaves and not self.opaque:
                self.stack.append(self._new_record(self._local(name), self.leaves[id(module)]))

        def leave(self, module, output):
            name = self.path.pop()
            if id(module) in self.leaves and not self.opaque:
                record = self.stack.pop()
                if record.kind == "elementwise" and "m" in record.attrs:   # a leaf that is really a projection
                    record.kind = "matmul"          # (an MoE router, a custom linear): FLOPs of its GEMMs only,
                    record.kernels = [k if k.aten in _GEMMS else Kernel(k.aten, 0, k.bytes, k.strided)
                                      for k in record.kernels]                  # as for every matmul op
                for t in tree_flatten(output)[0]:
                    if isinstance(t, torch.Tensor) and id(t) not in record.writes:
                        record.outputs.append((_cls(t), _nbytes(t), tuple(t.shape)))
            if self.block is not None and name == self.root:
                inst = self.instances[self.block]
                self.close_block()
                self.pending, self.outside = getattr(self, "outside", {}) or {}, {}   # replayed: its first's
                inst.append(len(self.records))
                self.block = self.root = self.group = None

        def close_block(self):
            """A traced block's trailing host work (views, calls after its last op) is its own."""
            inst = self.instances[self.block]
            if len(self.records) > inst[4]:
                for key, n in self.pending.items():
                    self.records[-1].attrs[key] = self.records[-1].attrs.get(key, 0) + n
                self.pending = {}

        def _local(self, name):
            if self.root is not None and name.startswith(self.root + "."):
                return name[len(self.root) + 1:]
            if self.root is not None and name == self.root:
                return ""
            return name

        # kernels ----------------------------------------------------------------------------------------------
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            hook = self.py_hook
            if hook is None or func.namespace not in _TORCH_NAMESPACES:
                return self._dispatch(func, types, args, kwargs)
            sys.setprofile(None)        # torch's own meta kernels: no model code to count, and Python runs
            try:                        # about twice as fast without a profile function
                return self._dispatch(func, types, args, kwargs)
            finally:
                sys.setprofile(hook)

        def _dispatch(self, func, types, args=(), kwargs=None):
            if self.opaque:        # inside an op recorded as one kernel (attention): run, do not record
                out = func(*args, **(kwargs or {}))
                self.keep.extend(o for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor))
                return out
            name = func.overloadpacket.__name__
            unknown = not (is_view(func) or name in _KNOWN or name in _FREE_NAMES or torch.Tag.pointwise in func.tags
                           or self._flop_formula(func) is not None)
            record = self.stack[-1] if self.stack else None
            before = (len(self.records), len(record.kernels) if record is not None else 0)
            out = super().__torch_dispatch__(func, types, args, kwargs)
            if name == "topk" and isinstance(out, tuple) and len(args) > 1 and isinstance(args[1], int):
                self.route = (args[1], out[1].numel())
            if name == "_safe_softmax":
                target = record if record is not None else self.records[-1]
                target.kernels[-1:] = _safe_softmax_kernels(args[0], out)
            if name in _BATCH_NORMS and _batch_stats(func, args, kwargs):
                target = record if record is not None else self.records[-1]
                target.kernels[-1] = _batch_stats_kernel(target.kernels[-1], args[0])
                if id(args[0]) in target.reads:           # the op's own view too: the statistics pass reads it again
                    c, n, shape, dtype = target.reads[id(args[0])]
                    target.reads[id(args[0])] = (c, n + _nbytes_of(args[0]), shape, dtype)
            if name == "masked_fill" and isinstance(out, torch.Tensor) and isinstance(args[0], torch.Tensor):
                target = record if record is not None else self.records[-1]
                target.kernels[-1:] = _masked_fill_kernels(args[0], out, target.kernels[-1])
            if unknown:
                target = record if record is not None else (self.records[-1] if len(self.records) > before[0] else None)
                if target is not None and len(target.kernels) > (before[1] if target is record else 0):
                    self.unknown[f"{func.namespace}.{name}"] += 1
                    k = target.kernels[-1]
                    target.kernels[-1] = Kernel(k.aten, 0, k.bytes, k.strided)     # memory-bound: bytes, no FLOPs
            return out

        def _standalone_kind(self, aten_name):
            return _STANDALONE_KINDS.get(aten_name) or _Recorder._standalone_kind(self, aten_name)

        def _flop_formula(self, func):
            if is_grouped(func):
                return _grouped_mm_flops
            return super()._flop_formula(func)

        def _input_bytes(self, func, i, t, n, inputs, outputs):
            if is_grouped(func) and i == 1 and t.dim() == 3:
                # experts without routed rows are skipped by the kernel: with top-k rows spread at random over E
                # experts, E (1 - (1 - k/E)^(rows/k)) of them are read (_hit_share)
                experts, rows = t.shape[0], inputs[0].shape[0]
                return int(n * _hit_share(experts, rows, self._route_k(rows))) if experts else n
            if func is aten.index.Tensor and i == 0 and _cls(t) == "weight" and t.dim() >= 2 and t.shape[0] > 1 \
                    and len(inputs) == 2 and inputs[1].dim() == 1 and inputs[1].numel() > 1:
                # a weight gather by routed ids (transformers' batched_mm experts, `W[idx]`): each *distinct* row
                # is read from DRAM once, repeats come from L2, whatever the ids' order. Measured on an H100 with
                # L2 flushed, 1-235 MB slices, 4-256 pairs (data/h100-2026-12-07-lease26-expert-gather): time =
                # (distinct + pairs) slices at 0.92-0.96 of a copy's rate; priced so, hwsim's gathers are 7.7% off
                # (19.5% counting every pair's read; fit_expert_gather.py --hwsim). A single pair runs 1.5-3.4x
                # a copy's time (too few blocks): not priced; no decode step of a top-k >= 2 model has one.
                # The distinct count: one token's k picks never repeat (top-k), so as _hit_share with k.
                pairs = inputs[1].numel()
                return int(_nbytes(t) * _hit_share(t.shape[0], pairs, self._route_k(pairs)))
            return n

        def _route_k(self, pairs):
            """k of the top-k routing that picked these `pairs` ids (the last topk returned as many), else None."""
            k, ids = self.route
            return k if k and ids == pairs else None

        def _out_class(self, func, inputs):
            if func is aten.cat.default and any(_cls(t) == "kv_cache" for t in inputs):
                return "kv_cache"      # a cache grown by concatenation (Hugging Face DynamicCache)
            return "activation"

        def _attrs(self, func, args, record):
            if func.overloadpacket.__name__ == "convolution":
                _conv_attrs(args, record)
                return
            if func.overloadpacket.__name__ == "baddbmm":
                a, b = args[1], args[2]
                record.attrs.update(m=a.shape[-2], k=a.shape[-1], n=b.shape[-1], batch=a.shape[0],
                                    weight_operand=_cls(b) == "weight")
                return
            if func.overloadpacket.__name__ in ("mm", "bmm", "addmm") and args[-1].dtype == torch.float32:
                _Recorder._attrs(func, args, record)
                # torch's default runs fp32 GEMMs without TF32 (cuBLAS FFMA kernels on the CUDA cores)
                record.attrs["tf32"] = bool(torch.backends.cuda.matmul.allow_tf32)
                return
            if is_grouped(func):
                x, w = args[0], args[1]
                experts = w.shape[0]
                rows = x.shape[0]
                hit = max(1, round(experts * _hit_share(experts, rows, self._route_k(rows))))
                record.attrs.update(m=-(-rows // hit), k=x.shape[-1], n=w.shape[-1], batch=hit,
                                    weight_operand=_cls(w) == "weight", grouped=True)
                return
            _Recorder._attrs(func, args, record)

        # attention as one kernel --------------------------------------------------------------------------------
        def attention(self, func, args, kwargs):
            q, k, v = args[:3]
            mask = args[3] if len(args) > 3 else kwargs.get("attn_mask")
            causal = bool(args[5] if len(args) > 5 else kwargs.get("is_causal", False))
            gqa = bool(kwargs.get("enable_gqa", False))
            dropout = float(args[4] if len(args) > 4 else kwargs.get("dropout_p", 0.0))
            backend = sdpa_backend.choose(q, k, v, mask if isinstance(mask, torch.Tensor) else None, causal, gqa,
                                          dropout)
            if backend == sdpa_backend.MATH:
                # the GPU runs torch's unfused math path: record its kernels (fp32 upcasts, materialized scores,
                # mask add, safe softmax, two matmuls, casts back), as the meta device runs it too
                self.sdpa_backends[backend] += 1
                return func(*args, **kwargs)
            self.sdpa_backends[backend] += 1
            scope = self._local(self.path[-1]) if self.path and self.path[-1] else ""
            record = self._new_record(f"{scope}.attention" if scope else "attention", "attention")
            self.opaque += 1
            try:
                out = _in_query_layout(func(*args, **kwargs), q)
            finally:
                self.opaque -= 1
            self.keep.append(out)
            import math
            b, hq, sq, d = math.prod(q.shape[:-3]), q.shape[-3], q.shape[-2], q.shape[-1]
            sk, dv = k.shape[-2], v.shape[-1]
            flops = 2 * b * hq * sq * sk * d + 2 * b * hq * sq * sk * dv
            kbytes = {}
            for t in (q, k, v) + ((mask,) if isinstance(mask, torch.Tensor) else ()):
                cls, n = _cls(t), _footprint(t)       # a broadcast (stride-0) operand is read once
                kbytes[cls] = kbytes.get(cls, 0) + n
                record.reads.setdefault(id(t), (cls, n, tuple(t.shape), t.dtype))
                src = getattr(t, "_hwsim_src", None)
                if src is not None and src != record.index:
                    record.deps.add(src)
            kbytes["activation"] = kbytes.get("activation", 0) + _nbytes(out)
            out._hwsim_src = record.index
            record.outputs.append(("activation", _nbytes(out), tuple(out.shape)))
            record.kernels.append(Kernel("scaled_dot_product_attention", flops, kbytes, False))
            record.attrs.update(b=b, hq=hq, hkv=k.shape[-3], sq=sq, sk=sk, d=d, dv=dv, causal=causal, window=0,
                                mask=isinstance(mask, torch.Tensor), backend=backend)
            if sdpa_backend.cudnn_path(q, k, v, mask if isinstance(mask, torch.Tensor) else None, causal, gqa,
                                       dropout):
                record.attrs["cudnn"] = True      # sm90/sm10x: a cuDNN graph per shape (hw_models/host.py)
            return out

    def _in_query_layout(out, q):
        """The fused kernels' output as the GPU lays it out: torch allocates it in the query's memory layout
        (aten/src/ATen/native/transformers/sdp_utils.h `alloc_with_matching_layout` for cuDNN; flash's
        `empty_like` of the transposed query), where the meta device returns it contiguous. HF's query is a view of
        its [b, s, h, d] projection, so the output is [b, s, h, d] in memory and the model's
        `.transpose(1, 2).contiguous()` after it copies nothing on the GPU; from a contiguous meta output the tracer
        recorded a copy of the whole attention output per layer."""
        if not isinstance(out, torch.Tensor) or out.dim() != q.dim() or out.dim() < 2:
            return out
        fill = sorted(range(q.dim()), key=lambda i: q.stride(i))        # innermost first, stable on ties
        strides, step = [0] * out.dim(), 1
        for i in fill:
            strides[i] = step
            step *= out.shape[i]
        if tuple(strides) == out.stride():
            return out
        return torch.empty_strided(out.shape, strides, dtype=out.dtype, device=out.device)

    class AttentionAsOneKernel(TorchFunctionMode):
        def __init__(self, recorder):
            super().__init__()
            self.recorder = recorder

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is sdpa_fn and not self.recorder.opaque:
                return self.recorder.attention(func, args, kwargs)
            return func(*args, **kwargs)

    return ModuleRecorder, AttentionAsOneKernel


_BATCH_NORMS = {"native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_functional"}


def _batch_stats(func, args, kwargs) -> bool:
    """Whether a batch-norm kernel normalizes by the batch's own statistics (`training`: a module in train mode,
    or one without running statistics)."""
    names = [a.name for a in func._schema.arguments]
    if "training" not in names:
        return False
    i = names.index("training")
    return bool(args[i] if i < len(args) else (kwargs or {}).get("training", False))


def _nbytes_of(t) -> int:
    from .tracer import _nbytes
    return _nbytes(t)


def _batch_stats_kernel(k, x) -> Kernel:
    """A training-mode batch norm: the batch's mean and variance are a reduction pass over the input (one more read
    of it, about 3 FLOPs an element: Welford's update) before the normalizing pass the eval-mode kernel already
    costs (cuDNN's and ATen's training kernels run the two passes; the running-statistics update is C-sized)."""
    from .tracer import _cls, _nbytes
    nbytes = dict(k.bytes)
    nbytes[_cls(x)] = nbytes.get(_cls(x), 0) + _nbytes(x)
    return Kernel(k.aten, k.flops + 3 * x.numel(), nbytes, k.strided)


def _safe_softmax_kernels(x, out) -> list:
    """`aten._safe_softmax` (SDPA's math path) as the CUDA kernels it runs (aten/src/ATen/native/SoftMax.cpp:
    softmax, then the rows that are all -inf set to 0: `eq(-inf)`, `all` over the row, `where`), as a GPU profile
    of it shows them (softmax_warp_forward, isneginf, an and-reduction and where, one each per call)."""
    n, e, eo = x.numel(), x.element_size(), out.element_size()
    rows = n // max(1, x.shape[-1]) if x.dim() else 1
    return [Kernel("_softmax", n, {"activation": n * e + n * eo}),
            Kernel("isneginf", n, {"activation": n * e + n}),
            Kernel("all", n, {"activation": n + rows}),
            Kernel("where", n, {"activation": rows + 2 * n * eo}, 2)]     # the row mask broadcast: not vectorized


def _masked_fill_kernels(x, out, traced) -> list:
    """Out-of-place `aten.masked_fill` as the CUDA work it runs (aten/src/ATen/native/TensorAdvancedIndexing.cpp:
    `self.clone(at::MemoryFormat::Preserve)`, then `masked_fill_` on the copy): a copy of the input (a contiguous one
    is a device-to-device cudaMemcpy, `Memcpy DtoD` in a GPU profile; HF's MoE experts clone their whole projection
    output so, two a layer), then the in-place masked_fill kernel, which reads and writes the copy and reads the mask
    (the bytes the traced op counted: input, mask and output). `traced`: the one kernel the dispatch recorded."""
    from .tracer import _cls, _nbytes
    copy = {}
    for cls, n in ((_cls(x), _nbytes(x)), ("activation", _nbytes(out))):
        copy[cls] = copy.get(cls, 0) + n
    return [Kernel("clone", 0, copy, 0 if x.is_contiguous() and x.dtype == out.dtype else 2),
            Kernel("masked_fill_", traced.flops, traced.bytes, traced.strided)]


def _footprint(t) -> int:
    """Bytes a tensor's elements occupy, counting a broadcast (stride-0) dimension once."""
    n = 1
    for size, stride in zip(t.shape, t.stride()):
        if stride != 0:
            n *= size
    return n * t.element_size()


def _grouped_mm_flops(x, w, *args, out_val=None, **kwargs) -> int:
    """torch._grouped_mm(x [rows, K], w [E, K, N], offs): every row meets one expert's K x N matrix."""
    return 2 * x.shape[0] * x.shape[-1] * w.shape[-1]


def _conv_attrs(args, record):
    """A convolution as the implicit GEMM a GPU runs: per group, (batch x output positions) x (Cout / groups) x
    (Cin / groups x kernel positions). Depthwise-like convolutions (tiny per-group GEMMs) are left to the
    memory-bound path, as their kernels are."""
    import math
    x, w = args[0], args[1]
    transposed, groups = bool(args[6]), int(args[8])
    kernel = math.prod(w.shape[2:])
    if transposed:      # weight [Cin, Cout/g, k...]: each input position scatters into Cout/g x kernel outputs
        m, k, n = x.shape[0] * math.prod(x.shape[2:]), w.shape[0] // groups, w.shape[1] * kernel
    else:
        out = _conv_out(x, w, args)
        m, n, k = x.shape[0] * math.prod(out), w.shape[0] // groups, w.shape[1] * kernel
    if groups > 1 and min(n, k) < 16:
        return
    record.attrs.update(m=int(m), n=int(n), k=int(k), batch=groups, weight_operand=getattr(w, "hwsim_class", "") ==
                        "weight", conv=True)


def _conv_out(x, w, args):
    stride, padding, dilation = args[3], args[4], args[5]
    dims = len(x.shape) - 2
    def at(v, i):
        return v[i] if len(v) > 1 else v[0]
    return [(x.shape[2 + i] + 2 * at(padding, i) - at(dilation, i) * (w.shape[2 + i] - 1) - 1) // at(stride, i) + 1
            for i in range(dims)]


_RECORDER = None


def _classes():
    global _RECORDER
    if _RECORDER is None:
        _RECORDER = _make_recorder()
    return _RECORDER


_LAYOUTS = None


def _layout(module):
    """(leaf kinds, repeated blocks) of a module, kept while its submodules, parameters and buffers are the same
    objects of the same dtypes and shapes (the structure of a large model takes longer to read than a traced step)."""
    global _LAYOUTS
    import weakref
    if _LAYOUTS is None:
        _LAYOUTS = weakref.WeakKeyDictionary()
    modules = list(module.modules())
    tensors = list(module.parameters()) + list(module.buffers())
    stamp = (tuple(map(id, modules)), tuple((id(t), t.dtype, t.device.type, t.shape) for t in tensors))
    hit = _LAYOUTS.get(module)
    if hit is not None and hit[0] == stamp:
        return hit[1], hit[2]
    leaves = {id(m): _leaf_kind(m) for m in modules if next(m.children(), None) is None}
    blocks = _blocks(module)
    _LAYOUTS[module] = (stamp, leaves, blocks, {"tensors": tensors})
    return leaves, blocks


def _static(module, what: str, make):
    """A fact of a module that only its layout decides (names, weight totals), kept with its layout: repeated traces
    of one model (a template's 7-12) read it once. Call after `_layout` (which checks that the entry is current)."""
    facts = _LAYOUTS[module][3]
    if what not in facts:
        facts[what] = make()
    return facts[what]


def _blocks(module) -> dict:
    """id(child) -> structure, for the children of every ModuleList/Sequential whose structure repeats."""
    import torch.nn as nn
    out = {}
    for container in module.modules():
        if not isinstance(container, (nn.ModuleList, nn.Sequential)):
            continue
        children = [c for c in container.children() if next(c.children(), None) is not None]
        sigs = [structure(c) for c in children]
        counts = Counter(sigs)
        for c, sig in zip(children, sigs):
            if counts[sig] > 1:
                out.setdefault(id(c), sig)
    return out


MODEL_CODE = "/transformers/"   # a frame whose code file is under this path is model code (attrs host_py)


def trace_module(module, *args, name: Optional[str] = None, replay: bool = True, meta: Optional[dict] = None,
                 **kwargs) -> OpGraph:
    """Trace one forward call `module(*args, **kwargs)` into an `OpGraph`.

    Build the module and its inputs on the meta device (`with torch.device("meta"): ...`) or keep them small
    enough for the CPU: kernels run where the tensors are. `replay=False` traces every repeated block instead of
    replaying it (same figures, slower; the tests compare the two). `meta` adds or overrides graph facts (the Hugging
    Face backend adds KV-cache sizes). Raises `HwsimError` (one line) if the forward call fails.
    The call is traced as inference (modules in eval mode, so no dropout), except batch norms left in training mode:
    those normalize by the batch's own mean and variance, costed as one more pass over their input; the module's
    modes and running statistics are as they were afterwards."""
    import torch
    from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

    from .tracer import _cls

    if not isinstance(module, torch.nn.Module):
        raise HwsimError(f"trace_module needs a torch.nn.Module, got {type(module).__name__}")
    check_switches(replay=replay)
    ModuleRecorder, AttentionAsOneKernel = _classes()
    # the forward call is traced as inference (dropout off: a fresh module is in training mode), except a batch norm
    # in training mode, which normalizes by its batch's statistics (one more pass over its input, _batch_stats_kernel)
    # as the step to cost does; its running statistics, updated by the call, are put back afterwards
    switched, kept = [], []
    for m in module.modules():
        if m.training:
            (kept if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) else switched).append(m)
    for m in switched:
        m.training = False
    saved = [(b, b.clone()) for m in kept for b in m.buffers(recurse=False)]
    leaves, blocks = _layout(module)
    for t in _static(module, "tensors", None):
        t.hwsim_class = "weight"
    rec = ModuleRecorder(leaves, blocks)
    outputs_of: dict = {}       # (structure, input signature) -> (how to rebuild the outputs, instance id)
    verified: dict = {}         # (structure, input signature) -> group key of the verified representative
    pending: dict = {}          # (structure, input signature) -> content of the last traced instance
    unstable: set = set()
    named = _static(module, "named", lambda: list(module.named_modules()))
    names = _static(module, "names", lambda: {id(m): n for n, m in named})
    handles, patched = [], []

    def wrap(child):
        original = child.forward

        def forward(*a, **kw):
            key = (blocks[id(child)], _tensor_sig((a, kw)))
            inst = rec.instances[rec.block] if rec.block is not None and rec.root == names[id(child)] else None
            if inst is not None:
                inst[2] = key
            if replay and inst is not None and key in verified:
                inst[3] = verified[key]
                return _rebuild(outputs_of[key][0], a, kw)
            out = original(*a, **kw)
            if inst is not None and key not in outputs_of:
                outputs_of[key] = (_recipe(out, a, kw), inst[0])
            return out
        child.forward = forward
        patched.append(child)

    def _recipe(out, a, kw):
        flat_in = [x for x in tree_flatten((a, kw))[0] if isinstance(x, torch.Tensor)]

        def one(x):
            if isinstance(x, torch.Tensor):
                for i, y in enumerate(flat_in):
                    if x is y:
                        return ("input", i)
                return ("new", tuple(x.shape), tuple(x.stride()), x.dtype, x.device, _cls(x),
                        getattr(x, "_hwsim_src", None))
            return ("value", x)
        leaves_, spec = tree_flatten(out)
        return [one(x) for x in leaves_], spec

    def _rebuild(recipe, a, kw):
        items, spec = recipe
        flat_in = [x for x in tree_flatten((a, kw))[0] if isinstance(x, torch.Tensor)]
        out = []
        for item in items:
            if item[0] == "input":
                out.append(flat_in[item[1]])
            elif item[0] == "new":
                _, shape, stride, dtype, device, cls, src = item
                t = torch.empty_strided(shape, stride, dtype=dtype, device=device)
                if cls != "activation":
                    t.hwsim_class = cls
                if src is not None:
                    t._hwsim_src = src
                rec.keep.append(t)
                out.append(t)
            else:
                out.append(item[1])
        return tree_unflatten(out, spec)

    def after_block(m, a, o):
        """Once a block instance is done: compare it with the last traced one of its kind."""
        if rec.block is None or rec.root != names[id(m)]:
            return
        inst = rec.instances[rec.block]
        key = inst[2]
        if key is None or inst[3] is not None:
            return
        rec.close_block()
        content = _content(rec.records[inst[4]:], 0, rec.root)
        if key in unstable:
            return
        if key in pending and key not in verified:
            if pending[key] == content:
                verified[key] = content
            else:
                unstable.add(key)
        pending.setdefault(key, content)

    for n, m in named:
        handles.append(m.register_forward_pre_hook(lambda mod, a, n=n: rec.enter(mod, n)))
        if id(m) in blocks:
            handles.append(m.register_forward_hook(after_block))
        handles.append(m.register_forward_hook(lambda mod, a, o: rec.leave(mod, o)))
        if id(m) in blocks:
            wrap(m)
    import sys
    previous = sys.getprofile()

    def frames(frame, event, arg):
        # model code's Python calls (Hugging Face transformers' functions and methods), counted per op like views
        # and module calls: the host model prices HF code per call (hw_models/host.py `py_call`). Off inside torch's
        # own kernels (ModuleRecorder.__torch_dispatch__, py_hook): a profile function slows all Python ~2x
        if event == "call" and MODEL_CODE in frame.f_code.co_filename:
            rec._host("host_py")
    # CPU tensors run their kernels: oneDNN (mkldnn) would run an LSTM layer as one fused CPU kernel that no cost rule
    # knows (aten.mkldnn_rnn_layer: 0 FLOPs), where meta tensors record its GEMMs and gate math; trace the portable path
    mkldnn = torch._C._get_mkldnn_enabled()
    torch._C._set_mkldnn_enabled(False)
    try:
        with torch.no_grad(), rec, AttentionAsOneKernel(rec):
            sys.setprofile(frames)
            rec.py_hook = frames
            try:
                module(*args, **kwargs)
            finally:
                sys.setprofile(previous)
                rec.py_hook = None
    except HwsimError:
        raise
    except (Exception, SystemExit) as exc:     # a user's module (a sys.exit() in its forward too): one line
        raise HwsimError(f"tracing {type(module).__name__} failed: {_why(exc)}") from None
    finally:
        torch._C._set_mkldnn_enabled(mkldnn)
        for h in handles:
            h.remove()
        for child in patched:
            del child.forward
        for m in switched:
            m.training = True
        with torch.no_grad():
            for b, value in saved:
                b.copy_(value)
    graph = _to_graph(module, rec, name, meta or {}, args, kwargs)
    what = name or type(module).__name__
    if not graph.ops:
        raise HwsimError(f"tracing {what} recorded no kernel: its forward call only returns or views its inputs, so "
                         f"there is no step to cost")
    first = next((x for x in tree_flatten((args, kwargs))[0] if isinstance(x, torch.Tensor)), None)
    if first is not None and 0 in first.shape:
        raise HwsimError(f"tracing {what}: its first input is empty (shape {tuple(first.shape)}), so the step has no "
                         f"work; give every dimension at least one item")
    if rec.unknown:
        listed = ", ".join(f"{k} x{n}" for k, n in rec.unknown.most_common())
        warnings.warn(UnknownOpsWarning(f"{sum(rec.unknown.values())} kernel(s) have no cost rule and are costed as "
                                        f"memory-bound (bytes, no FLOPs): {listed}"), stacklevel=2)
    return graph


def _to_graph(module, rec, name, extra_meta, args, kwargs) -> OpGraph:
    """Records -> OpGraph: block instances with equal content form one layer group (kept once, with a repeat)."""
    import torch

    from .tracer import records_to_graph

    # the content of each traced instance; replayed ones take their representative's
    bounds = {inst[0]: (inst[4], inst[5] if len(inst) > 5 else len(rec.records)) for inst in rec.instances}
    content_of, group_of, members = {}, {}, {}
    for inst in rec.instances:
        iid, _, key, replayed_from = inst[:4]
        if replayed_from is not None:
            content = replayed_from
        else:
            a, z = bounds[iid]
            content = _content(rec.records[a:z], 0, "")
        content_of[iid] = content
        g = group_of.setdefault(content, len(group_of))
        members.setdefault(g, []).append(iid)
    keep_instance = {g: ids[0] for g, ids in members.items()}
    traced = {inst[0] for inst in rec.instances if inst[3] is None}
    assert all(i in traced for i in keep_instance.values()), "a replayed block matches no traced one"
    remap, kept = {}, []
    first_of_group = {}
    for inst in rec.instances:
        iid = inst[0]
        g = group_of[content_of[iid]]
        a, z = bounds[iid]
        if keep_instance[g] == iid:
            first_of_group[g] = list(range(a, z))
        elif inst[3] is None:       # a traced duplicate: its records map onto the kept instance's
            for j, r in zip(range(a, z), first_of_group.get(g, [])):
                remap[j] = r
    drop = set(remap)
    for r in rec.records:
        if r.index in drop:
            continue
        if r.group is not None:
            r.group = group_of[content_of[r.group]]
        r.deps = {remap.get(d, d) for d in r.deps if remap.get(d, d) not in drop}
        kept.append(r)
    layer_groups = {g: tuple(ids) for g, ids in members.items()}
    params_count, dname, linear, storage = _static(module, "weights", lambda: _weights(module))
    first = next((x for x in list(args) + list(kwargs.values()) if isinstance(x, torch.Tensor)), None)
    batch = int(first.shape[0]) if first is not None and first.dim() > 0 else 1
    seq = int(first.shape[1]) if first is not None and first.dim() == 2 and not first.is_floating_point() else 1
    meta = {
        "model": name or type(module).__name__, "model_type": "torch-module", "phase": "forward", "batch": batch,
        "seq_len": seq, "context": 0, "new_tokens": seq, "params": params_count,
        "linear_params": linear, "dtype": dname, "weight_dtype": dname, "kv_dtype": dname,
        "weight_storage_bytes": storage,
        "kv_bytes_per_token": 0.0, "kv_cache_storage_bytes": 0, "shared_input_norm": False, "parallel_residual": False,
        "moe": False, "weight_format": "dense", "transforms": [], "traced_from": "torch-module",
        "unknown_ops": dict(rec.unknown), "block_names": list(rec.roots),
    }
    meta.update(extra_meta)
    return records_to_graph(kept, layer_groups, meta)


def _weights(module) -> tuple:
    """(parameters, their dtype's name, linear layers' weights, bytes of parameters and buffers) of a module."""
    import torch

    from .tracer import _DTYPE_NAMES
    params = {id(p): p for p in module.parameters()}
    buffers = {id(b): b for b in module.buffers()}
    dtypes = Counter(p.dtype for p in params.values())
    dtype = dtypes.most_common(1)[0][0] if dtypes else torch.float32
    dname = _DTYPE_NAMES.get(dtype, str(dtype).replace("torch.", ""))
    linear = 0
    for m in module.modules():
        if _leaf_kind(m) == "matmul" and isinstance(getattr(m, "weight", None), torch.Tensor) and \
                next(m.children(), None) is None:
            linear += m.weight.numel()
    storage = sum(p.numel() * p.element_size() for p in params.values()) + \
        sum(b.numel() * b.element_size() for b in buffers.values())
    return sum(p.numel() for p in params.values()), dname, linear, storage


def counted_flops(graph) -> int:
    """FLOPs of the kernels with a `torch.utils.flop_counter` formula (what `FlopCounterMode` counts), all layers."""
    from torch.utils.flop_counter import flop_registry
    names = {p.__name__ for p in flop_registry} | {"scaled_dot_product_attention", "attention"}
    return int(sum(k.flops * op.repeat for op in graph.ops for k in op.kernels if k.aten in names))


def _why(exc: BaseException) -> str:
    """An exception from a user's file as one short phrase (a sys.exit() named as such)."""
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    text = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_module_file(spec: str):
    """`FILE.py:FUNC` (FUNC defaults to `build`) -> what FUNC() returns: (module, args) or (module, args, kwargs)."""
    import importlib.util
    import sys
    from pathlib import Path

    path, _, func = spec.rpartition(":") if spec.rpartition(":")[2].isidentifier() and ":" in spec else (spec, "", "build")
    if path.endswith(":") and ":" in spec and not Path(path).exists() and Path(path[:-1]).is_file():
        raise HwsimError(f"--module {spec}: no function named after the ':'; give FILE.py:FUNC, or FILE.py for "
                         f"FUNC build")
    func = func or "build"
    file = Path(path)
    if file.is_dir():
        raise HwsimError(f"--module {spec}: {path} is a folder; give the Python file in it, FILE.py:FUNC")
    if not file.is_file():
        raise HwsimError(f"--module {spec}: no file {path}; give FILE.py:FUNC where FUNC() returns (module, args)")
    name = f"hwsim_user_module_{abs(hash(str(file.resolve())))}"
    loader = importlib.util.spec_from_file_location(name, file)
    if loader is None:
        raise HwsimError(f"--module {spec}: {path} is not a Python file")
    mod = importlib.util.module_from_spec(loader)
    sys.modules[name] = mod
    try:
        loader.loader.exec_module(mod)
    except (Exception, SystemExit) as exc:      # a script's sys.exit() too: it is the file's error, not hwsim's exit
        sys.modules.pop(name, None)
        raise HwsimError(f"--module {spec}: loading {path} failed: {_why(exc)}" +
                         ("; keep a script's own part under `if __name__ == '__main__':`"
                          if isinstance(exc, SystemExit) else "")) from None
    fn = getattr(mod, func, None)
    if not callable(fn):
        raise HwsimError(f"--module {spec}: {path} has no function {func}(); give FILE.py:FUNC")
    try:
        made = fn()
    except (Exception, SystemExit) as exc:
        raise HwsimError(f"--module {spec}: {func}() failed: {_why(exc)}") from None
    import torch
    if not isinstance(made, tuple) or len(made) not in (2, 3) or not isinstance(made[0], torch.nn.Module):
        raise HwsimError(f"--module {spec}: {func}() must return (module, args) or (module, args, kwargs), "
                         f"got {type(made).__name__}")
    module, args = made[0], made[1]
    kwargs = made[2] if len(made) == 3 else {}
    if not isinstance(args, (tuple, list)):
        args = (args,)
    if not isinstance(kwargs, dict):
        raise HwsimError(f"--module {spec}: the kwargs {func}() returns must be a dict")
    return module, tuple(args), kwargs


def trace_file(spec: str) -> OpGraph:
    """Trace the module a `FILE.py:FUNC` builds, named after the file and function. The file's folder is on the
    import path while it loads, builds and runs (as `python FILE.py` has it), so it can import its neighbours."""
    import sys
    from pathlib import Path
    path = Path(spec.rpartition(":")[0] if ":" in spec and spec.rpartition(":")[2].isidentifier() else spec)
    folder = str(path.resolve().parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        module, args, kwargs = load_module_file(spec)
        return trace_module(module, *args, name=path.stem, **kwargs)
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)
