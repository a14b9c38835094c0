"""Which CUDA cat kernel torch runs (workloads/tracer.py `_cat_access`, after aten/src/ATen/native/cuda/Shape.cu
`cat_out_cuda` / `parallel_cat`): class 0 only for `CatArrayBatchedCopy_vectorized`. Each case is one the H100
profiles name: h100-2026-12-06-lease2-hf-generate/prefill-profile (every HF prefill cat `CatArrayBatchedCopy`,
falcon-7b's and deepseek-v2-lite's dense K/V appends included) and h100-2026-12-07-lease15-decode-profile (the
decode KV appends and phi-3-mini's cat onto an empty `q_pass` vectorized, an int64 [8, n] + [8, 1] cat
`CatArrayBatchedCopy_alignedK_contig`)."""
import pytest
import torch

from workloads.tracer import _access

CAT = torch.ops.aten.cat.default
BF16 = torch.bfloat16


def _cls(parts, dim):
    return _access(CAT, parts, [torch.cat(parts, dim=dim)])


def _t(*shape, dtype=BF16):
    return torch.empty(*shape, dtype=dtype, device="meta")


def test_a_dense_aligned_kv_append_is_vectorized():
    """llama-3.1-8b's decode append: a [b, h, ctx, d] cache and the step's [b, h, 1, d] keys."""
    assert _cls([_t(8, 8, 2051, 128), _t(8, 8, 1, 128)], -2) == 0


def test_hfs_empty_cache_start_makes_the_append_strided():
    """HF's DynamicCache starts from a 1-D empty tensor: torch skips it but clears all_contiguous, so the prefill's
    append of dense keys (falcon-7b's single KV head) runs CatArrayBatchedCopy, not the vectorized kernel."""
    empty = torch.tensor([], dtype=BF16, device="meta")
    assert empty.dim() == 1
    assert _cls([empty, _t(1, 1, 4096, 64)], -2) == 2
    assert _cls([_t(1, 1, 0, 64), _t(1, 1, 4096, 64)], -2) == 0      # an empty part of full rank is not skipped


def test_an_empty_slice_part_does_not_count_as_gapped():
    """phi-3-mini's RoPE cats the rotated half back onto `q[..., 96:]` (no elements) at decode: vectorized."""
    q = _t(8, 1, 32, 96).transpose(1, 2)                     # [b, h, 1, d] view of [b, 1, h, d]: contiguous at s = 1
    assert _cls([_t(8, 32, 1, 96), q[..., 96:]], -1) == 0


def test_a_misaligned_part_is_not_vectorized():
    base = _t(8 * 64 + 8)
    odd = base[1:-7].view(8, 64)                              # contiguous, 2 bytes past a 16-byte boundary
    assert odd.is_contiguous() and odd.storage_offset() == 1
    assert _cls([_t(8, 64), odd], 0) == 2
    assert _cls([_t(8, 64), base[8:].view(8, 64)], 0) == 0     # 16 bytes in: aligned


def test_a_slice_of_less_than_whole_16_bytes_is_not_vectorized():
    """The attention-mask cat [8, 2050] + [8, 1] int64 (8-byte slice): CatArrayBatchedCopy_alignedK_contig."""
    assert _cls([_t(8, 2050, dtype=torch.int64), _t(8, 1, dtype=torch.int64)], 1) == 2
    assert _cls([_t(4, 3), _t(4, 5)], 1) == 2                # bf16 slices of 6 and 10 bytes
    assert _cls([_t(4, 8), _t(4, 16)], 1) == 0               # 16 and 32 bytes


def test_non_contiguous_parts_stay_strided():
    k = _t(2, 16, 8, 128).transpose(1, 2)                    # [b, h, s, d] view of [b, s, h, d]: dense, permuted
    assert _cls([_t(2, 8, 4, 128), k], -2) == 2
    assert _cls([_t(2, 8, 4, 128), k.contiguous()], -2) == 0


@pytest.mark.parametrize("model", ["falcon-7b", "deepseek-v2-lite"])
def test_hf_prefill_kv_appends_are_strided_at_batch_one(model):
    """The two architectures whose cached K/V are dense (one KV head; MLA's latent): before, their batch-1 prefill
    appends were priced vectorized; the profile ran CatArrayBatchedCopy for all 129 / 81 cats of the forward."""
    pytest.importorskip("transformers")
    from sim import api
    kv = [k.strided for op in api.workload(model, "prefill", 1, 64, impl="hf").ops for k in op.kernels
          if k.aten == "cat" and "kv_cache" in k.bytes]
    assert kv and 0 not in kv
