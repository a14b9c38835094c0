"""Which kernel `torch.nn.functional.scaled_dot_product_attention` runs on a CUDA GPU for a traced call.

PyTorch picks a backend per call from the call's tensors (aten/src/ATen/native/transformers/cuda/sdp_utils.cpp,
`select_sdp_backend`: the first of its priority order whose checks all pass; read at pytorch commit 001f694, the
torch 2.11-2.13 rules). On the meta device the tracer cannot ask the GPU, so the same checks are made here from the
shapes, strides and dtypes, for an sm80-sm90 GPU (A100, H100, H200), eval mode (no gradients):

- flash (and cuDNN's fused kernel, which torch prefers on sm90 and which takes the same calls for costing):
  no attn_mask; fp16/bf16; q, k, v head dims equal and <= 256; equal head counts, or `enable_gqa` with the query
  heads a multiple of the key/value heads; `is_causal` only with as many queries as keys; last-dim stride 1.
- efficient (memory-efficient, CUTLASS): an attn_mask is allowed (its last-dim stride must be 1); fp16/bf16/fp32;
  q and k head dims equal, q and v head dims multiples of 8 (fp16/bf16) or 4 (fp32); equal head counts or
  `enable_gqa`; every operand's last-dim stride 1; storage offsets aligned to 16 bytes.
- math: everything else, e.g. fewer key/value heads than query heads without `enable_gqa` (a broadcast K/V, as
  Falcon's multi-query attention in transformers <= 5.17 passes it), or a mask with a stride-0 last dim.
  The math path is torch's composite `_scaled_dot_product_attention_math`: it upcasts fp16/bf16 q, k, v to fp32
  (unless `torch.backends.cuda.allow_fp16_bf16_reduction_math_sdp(True)`), materializes the scores, adds the mask,
  runs `_safe_softmax` and two fp32 matmuls, and casts the output and the probabilities back. The tracer records
  those kernels themselves (workloads/module_trace.py) instead of one fused attention kernel.

Flash and efficient are costed as one fused attention kernel (hw_models/gpu.py): with a mask every block is
computed (no causal skipping); math is costed as the kernels it runs.
"""
from __future__ import annotations

FLASH, EFFICIENT, MATH = "flash", "efficient", "math"
_HALF = ("torch.float16", "torch.bfloat16")


def _last_stride_ok(t, ignore_singleton: bool) -> bool:
    return t.stride(-1) == 1 or (ignore_singleton and t.shape[-1] == 1)


def _heads_ok(q, k, v, enable_gqa: bool) -> bool:
    hq, hk, hv = q.shape[-3], k.shape[-3], v.shape[-3]
    if q.shape[0] != k.shape[0] or q.shape[0] != v.shape[0]:
        return False
    if enable_gqa:
        return hk == hv and hk > 0 and hq % hk == 0
    return hq == hk == hv


def choose(q, k, v, attn_mask=None, is_causal: bool = False, enable_gqa: bool = False, dropout_p: float = 0.0) -> str:
    """The backend a CUDA sm80-sm90 GPU runs for this call: "flash", "efficient" or "math"."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        return MATH
    dtypes = {str(q.dtype), str(k.dtype), str(v.dtype)}
    if len(dtypes) != 1 or min(q.shape[-2], k.shape[-2]) == 0:
        return MATH
    dtype = dtypes.pop()
    dq, dk, dv = q.shape[-1], k.shape[-1], v.shape[-1]
    heads = _heads_ok(q, k, v, enable_gqa)
    flash = (attn_mask is None and dtype in _HALF and dq == dk == dv and dq <= 256 and heads
             and not (is_causal and q.shape[-2] != k.shape[-2])
             and all(_last_stride_ok(t, True) for t in (q, k, v)))
    if flash:
        return FLASH
    align = 8 if dtype in _HALF else 4
    elem = q.element_size()
    efficient = (dtype in _HALF + ("torch.float32",) and dq == dk and dq % align == 0 and dv % align == 0 and heads
                 and all(_last_stride_ok(t, False) for t in (q, k, v))
                 and all((t.storage_offset() * elem) % (align * elem) == 0 for t in (q, k, v))
                 and (attn_mask is None or attn_mask.stride(-1) == 1 or attn_mask.shape[-1] == 1))
    return EFFICIENT if efficient else MATH
