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

cuDNN (`cudnn_path`): on sm90/sm10x torch puts cuDNN first in its priority order when the runtime cuDNN is newer than
9.15 (`check_prefer_cudnn_attention`; torch 2.11+cu130 wheels ship one: the H100/H200 profiles show
`aten::_cudnn_attention_forward` for HF decode, and for mistral-7b's masked 4096-token prefill). Its checks
(`can_use_cudnn_attention`, read at commit 001f694): fp16/bf16, 4-d dense tensors, last-dim stride 1, equal heads or
a multiple (here with `enable_gqa`: without it HF's Falcon call takes the math path, as measured), head dims
multiples of 8 and <= 256 (d_qk 192 with d_v 128: deepseek-v2's MLA), key length != 1, and an attn_mask only of a
broadcastable shape (`check_attn_mask_shape`: last two dims q or 1 and k or 1; 2-d, or 4-d with batch 1 or b and
heads 1 or h). torch's cuDNN path (aten/src/ATen/native/cudnn/MHA.cpp) builds one cuDNN graph per `MHAParams` key
-- every dim and stride of q, k, v (so b, query and key/value heads, s_q, s_kv, d_qk, d_v), dtype, is_causal, the
mask's dims and strides -- kept in a thread-local cache for the life of the process: a decode step at a KV length
the process has not run builds one (hw_models/host.py `cudnn_new_shape`), the step's other layers find it. A
sliding-window cache past its window keeps its KV length (phi-3-mini 2,047, mistral-7b 4,096): one shape for
every step, as the measured flat steps there show.
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


def cudnn_path(q, k, v, attn_mask=None, is_causal: bool = False, enable_gqa: bool = False,
               dropout_p: float = 0.0) -> bool:
    """Whether torch (2.11, sm90/sm10x, cuDNN > 9.15) runs this call through cuDNN's SDPA graph (see the module
    notes): fp16/bf16, heads equal or `enable_gqa` with a multiple, head dims multiples of 8 and <= 256, key
    length != 1, a mask (if any) of a broadcastable shape."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        return False
    if attn_mask is not None and not _mask_shape_ok(attn_mask, q, k):
        return False
    if len({str(q.dtype), str(k.dtype), str(v.dtype)}) != 1 or str(q.dtype) not in _HALF:
        return False
    b, hq, sq, dq = q.shape
    hk, sk, dk = k.shape[-3], k.shape[-2], k.shape[-1]
    hv, dv = v.shape[-3], v.shape[-1]
    if min(sq, sk) == 0 or sk == 1 or b != k.shape[0] or b != v.shape[0] or max(b, hq) > 65535:
        return False
    if dq != dk or hk != hv or hk == 0 or hq % hk or (hq != hk and not enable_gqa):
        return False          # unequal heads without enable_gqa: torch's math path (Falcon, transformers 5.17)
    if dq % 8 or dv % 8 or dq > 256 or dv > 256:
        return False
    if dropout_p * 16.0 != int(dropout_p * 16.0):
        return False
    return all(_last_stride_ok(t, True) for t in (q, k, v))


def _mask_shape_ok(mask, q, k) -> bool:
    """sdp_utils_cpp.h `check_attn_mask_shape`."""
    if mask.shape[-2] not in (q.shape[-2], 1) or mask.shape[-1] not in (k.shape[-2], 1):
        return False
    if mask.dim() == 2:
        return True
    return mask.dim() == 4 and mask.shape[0] in (1, q.shape[0]) and mask.shape[1] in (1, q.shape[1])
