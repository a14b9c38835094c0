"""Which SDPA backend a CUDA GPU runs for a traced call (workloads/sdpa_backend.py), and how the tracer records the
math path (issue 18: Falcon's multi-query attention in transformers 5.17 reaches torch's fp32 math path)."""
import pytest

torch = pytest.importorskip("torch")

from workloads import sdpa_backend, trace_module  # noqa: E402
from workloads.graph import FFMA_FP32, gemm_dtype  # noqa: E402

F = torch.nn.functional


def t(*shape, dtype=torch.bfloat16):
    return torch.empty(*shape, dtype=dtype, device="meta")


@pytest.mark.parametrize("case, expected", [
    (dict(q=(1, 32, 512, 128), k=(1, 32, 512, 128), causal=True), "flash"),
    (dict(q=(1, 32, 512, 128), k=(1, 8, 512, 128), gqa=True, causal=True), "flash"),
    (dict(q=(1, 32, 1, 128), k=(1, 8, 600, 128), gqa=True), "flash"),
    (dict(q=(1, 32, 512, 128), k=(1, 32, 512, 128), mask=True), "efficient"),
    (dict(q=(1, 32, 512, 128), k=(1, 8, 512, 128), gqa=True, mask=True), "efficient"),
    (dict(q=(1, 71, 512, 64), k=(1, 1, 512, 64), causal=True), "math"),          # broadcast K/V, no enable_gqa
    (dict(q=(1, 71, 512, 64), k=(1, 1, 512, 64), mask=True), "math"),
    (dict(q=(1, 16, 512, 512), k=(1, 16, 512, 512), causal=True), "efficient"),  # head_dim > 256: not flash
    (dict(q=(1, 16, 512, 60), k=(1, 16, 512, 60), mask=True), "math"),           # head_dim not a multiple of 8
    (dict(q=(1, 8, 64, 64), k=(1, 8, 64, 64), causal=True, dtype=torch.float32), "efficient"),
])
def test_backend_follows_torchs_cuda_rules(case, expected):
    dtype = case.get("dtype", torch.bfloat16)
    q, k = t(*case["q"], dtype=dtype), t(*case["k"], dtype=dtype)
    mask = t(1, 1, case["q"][2], case["k"][2], dtype=torch.bool) if case.get("mask") else None
    assert sdpa_backend.choose(q, k, k, mask, case.get("causal", False), case.get("gqa", False)) == expected


def test_a_mask_with_a_broadcast_last_dim_or_misaligned_operands_leave_the_math_path():
    q = t(1, 8, 64, 64)
    mask = torch.empty(1, 1, 64, 1, dtype=torch.bool, device="meta").expand(1, 1, 64, 64)
    assert sdpa_backend.choose(q, q, q, mask) == "math"
    base = t(1, 8, 64, 64 * 3 + 1)
    odd = base[..., 1:65]                       # a storage offset of 2 bytes: not 16-byte aligned
    assert sdpa_backend.choose(odd, q, q, t(1, 1, 64, 64, dtype=torch.bool)) == "math"


class MQA(torch.nn.Module):
    """Falcon-7B-like attention call: 71 query heads over one broadcast K/V head, no enable_gqa."""

    def __init__(self, heads=8, kv_heads=1, gqa=False, mask=False):
        super().__init__()
        self.heads, self.kv_heads, self.gqa, self.mask = heads, kv_heads, gqa, mask
        self.proj = torch.nn.Linear(64, 64)

    def forward(self, q, k, v):
        kw = {"enable_gqa": True} if self.gqa else {}
        if self.mask:
            m = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=m, **kw)
        else:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, **kw)
        return self.proj(out)


def trace(heads, kv_heads, gqa=False, mask=False, s=128):
    m = MQA(heads, kv_heads, gqa, mask).to(device="meta", dtype=torch.bfloat16)
    return trace_module(m, t(2, heads, s, 64), t(2, kv_heads, s, 64), t(2, kv_heads, s, 64))


def test_a_fused_backend_is_one_attention_op_and_says_which():
    g = trace(8, 2, gqa=True)
    attn = [op for op in g.ops if op.kind == "attention"]
    assert len(attn) == 1 and attn[0].attrs["backend"] == "flash" and len(attn[0].kernels) == 1
    g = trace(8, 8, mask=True)
    assert [op.attrs["backend"] for op in g.ops if op.kind == "attention"] == ["efficient"]


def test_the_math_path_is_recorded_as_the_kernels_it_runs():
    s = 128
    g = trace(8, 1, s=s)
    assert not [op for op in g.ops if op.kind == "attention"]
    kernels = [k.aten for op in g.ops for k in op.kernels]
    # fp32 upcasts of q, k, v; the causal mask built (ones, tril) and converted; two fp32 matmuls; safe softmax as
    # its four CUDA kernels; the output and the probabilities cast back
    assert kernels.count("bmm") == 2 and kernels.count("_to_copy") == 5
    for name in ("_softmax", "isneginf", "all", "where", "add"):
        assert name in kernels
    bmm = [op for op in g.ops if op.kernels and op.kernels[0].aten == "bmm"]
    assert all(op.dtype == "fp32" and op.attrs["tf32"] is False and gemm_dtype(op) == FFMA_FP32 for op in bmm)
    scores = next(op for op in g.ops if op.kernels and op.kernels[0].aten == "_softmax")
    assert scores.kernels[0].bytes["activation"] == 2 * 2 * 8 * s * s * 4      # fp32 scores read and written


def test_ffma_gemms_are_costed_at_the_cuda_core_rate():
    from hw_models import load_device
    from hw_models.gpu import GPUModel
    m = GPUModel(load_device("h200"))
    tensor = m.gemm_compute_s(4096, 4096, 4096, 1, "fp32", 1980.0)          # TF32 tensor cores
    ffma = m.gemm_compute_s(4096, 4096, 4096, 1, FFMA_FP32, 1980.0)
    # datasheet: 494.5 TF32 vs 67 FP32 TFLOPS (H200 SXM) -> about 7.4x slower, the clocks aside
    assert 6.0 < ffma / tensor < 8.5


def test_precision_keeps_the_math_paths_fp32_gemms_on_the_cuda_cores():
    """apply_precision (every workload's first transform) used to rewrite every op to the compute dtype, so the
    math path's fp32 matmuls were priced as bf16 tensor-core GEMMs (Falcon-7B's HF forward 12-19% fast)."""
    from hw_models import load_device
    from hw_models.gpu import GPUModel
    from workloads.transforms import apply_precision
    s = 512
    g = apply_precision(trace(8, 1, s=s), "bf16")
    bmm = [op for op in g.ops if op.kernels and op.kernels[0].aten == "bmm"]
    assert len(bmm) == 2 and all(op.dtype == "fp32" and gemm_dtype(op) == FFMA_FP32 for op in bmm)
    assert all(op.dtype == "bf16" for op in g.ops if op.kind == "matmul" and op not in bmm)     # the projection
    m = GPUModel(load_device("h100"))
    ffma = m.cost(bmm[0], 1980.0).compute_s
    from dataclasses import replace
    assert ffma > 6.0 * m.cost(replace(bmm[0], dtype="bf16"), 1980.0).compute_s


class MaskedFill(torch.nn.Module):
    """HF's MoE experts zero their padding rows out of place: `proj_out.masked_fill(sentinel_mask, 0.0)`."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(64, 256)

    def forward(self, x, mask):
        return self.proj(x).masked_fill(mask, 0.0)


def test_out_of_place_masked_fill_is_a_copy_then_the_in_place_kernel():
    rows = 1024
    g = trace_module(MaskedFill().to(device="meta", dtype=torch.bfloat16), t(rows, 64),
                     torch.empty(rows, 1, dtype=torch.bool, device="meta"))
    kernels = [k for op in g.ops for k in op.kernels if k.aten in ("clone", "masked_fill_", "masked_fill")]
    assert [k.aten for k in kernels] == ["clone", "masked_fill_"]
    n = rows * 256 * 2
    assert sum(kernels[0].bytes.values()) == 2 * n and kernels[0].strided == 0      # read and write: a DtoD copy
    assert sum(kernels[1].bytes.values()) == 2 * n + rows                          # the copy read, written; the mask
    assert kernels[1].strided == 2


def test_ffma_gemms_take_the_measured_ffma_fraction_and_no_tensor_core_tile_penalty():
    """H100: ffma_eff 0.788 of the CUDA-core peak (benchmarks/gpu/fit_ffma_mask.py); a 64-wide output, which a
    tensor-core GEMM pads or tiles at 0.75, runs FFMA tiles at the full FFMA rate."""
    from hw_models import load_device
    from hw_models.gpu import GPUModel
    m = GPUModel(load_device("h100"))
    assert m.p["ffma_eff"] == pytest.approx(0.788)
    flops = 2.0 * 4096 * 4096 * 4096
    assert flops / m.gemm_compute_s(4096, 4096, 4096, 1, FFMA_FP32, 1980.0) == \
        pytest.approx(0.788 * 132 * 256 * 1980e6, rel=0.05)
    narrow = m.gemm_compute_s(4096, 64, 4096, 64, FFMA_FP32, 1980.0)
    assert 2.0 * 4096 * 64 * 4096 * 64 / narrow == pytest.approx(0.788 * 132 * 256 * 1980e6, rel=0.05)


def test_an_ffma_gemm_stores_its_fp32_output_after_its_k_loop():
    """cuBLAS's FFMA kernels (multistage, not persistent) write their fp32 C tiles after the K loop, in step across
    a wave: the write adds to the math (gemm_epilogue_s); tensor-core GEMMs keep max(compute, memory)."""
    from hw_models import load_device
    from hw_models.gpu import GPUModel
    m = GPUModel(load_device("h100"))
    mm, n, k, b = 2048, 2048, 64, 64
    assert m.gemm_epilogue_s(mm, n, b, "bf16") == 0.0
    assert m.gemm_epilogue_s(mm, n, b, FFMA_FP32) == pytest.approx(m._stream(mm * n * b * 4.0))
    from dataclasses import replace
    g = trace(8, 1, s=512)
    from workloads.transforms import apply_precision
    bmm = next(op for op in apply_precision(g, "bf16").ops if op.kernels and op.kernels[0].aten == "bmm")
    bmm = replace(bmm, attrs=dict(bmm.attrs, m=mm, n=n, k=k, batch=b))
    c = m.cost(bmm, 1980.0)
    assert c.compute_s == pytest.approx(m.gemm_compute_s(mm, n, k, b, FFMA_FP32, 1980.0) + m._stream(mm * n * b * 4.0))


def test_the_gpu_table_adds_the_ffma_epilogue_as_the_full_path(tmp_path):
    """The one-case fast path's table (hw_models/gpu_table.py) prices a GEMM group of dtype FFMA_FP32 as GPUModel
    does: its compute plus gemm_epilogue_s (a compiled HF step's projections relabelled FFMA: transformers after
    5.17 no longer sends Falcon to the math path, so no stock step has FFMA GEMMs of size)."""
    pytest.importorskip("transformers")
    import json

    import numpy as np

    from hw_models.gpu_table import GPUTable
    from tests.hf_blocks import compiled_hf_block, relaid
    c = json.load(open("workloads/zoo/llama-3.1-8b.json"))
    c.update(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=1000)
    path = tmp_path / "tiny-llama.json"
    path.write_text(json.dumps(c))
    cs, step, q = compiled_hf_block(str(path), 2, 300)
    ffma = relaid(step, mm_groups=[(FFMA_FP32,) + tuple(g[1:]) for g in step.mm_groups])
    got = np.hstack(GPUTable(cs.model, ffma, 1980.0)._gemms(q))
    mm, n, k, b = (q[:, step.cols[key]] for key in ("m", "n", "k", "batch"))
    want = cs.model.gemm_compute_s(mm, n, k, b, FFMA_FP32, 1980.0) + cs.model.gemm_epilogue_s(mm, n, b, FFMA_FP32)
    assert np.allclose(got, want, rtol=1e-12) and np.all(cs.model.gemm_epilogue_s(mm, n, b, FFMA_FP32) > 0)
