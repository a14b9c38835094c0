"""Weight-only quantized GEMMs (w4a16) run as mixed-input kernels: 16-row tiles on every GPU, so a decode-size
int4 GEMM streams its half-byte weights instead of reading as compute-bound under 64-row bf16 tiles."""
from hw_models import load_device
from hw_models.gpu import GPUModel
from workloads.graph import WEIGHT_ONLY, Op, gemm_dtype
from workloads.transforms import SCHEMES, _weight_bits

W4 = _weight_bits(SCHEMES["w4a16"], 16, 2.0)


def _gemm(m, n=6144, k=4096, weight_bits=None):
    wb = n * k * (weight_bits or 16) / 8
    attrs = dict(m=m, n=n, k=k, batch=1)
    if weight_bits:
        attrs.update(weight_bits=weight_bits, act_bits=16)
    return Op(0, "mm", "matmul", None, 1, (), (), "bf16", 2 * m * n * k,
              {"weight": wb, "activation": m * k * 2 + m * n * 2}, attrs=attrs)


def test_gemm_dtype_marks_weight_only():
    assert gemm_dtype(_gemm(1, weight_bits=W4)) == "bf16" + WEIGHT_ONLY
    assert gemm_dtype(_gemm(1)) == "bf16"
    fp8 = Op(0, "mm", "matmul", None, 1, (), (), "fp8", 1, {}, attrs=dict(weight_bits=8, act_bits=8))
    assert gemm_dtype(fp8) == "fp8"


def test_h100_batch1_int4_gemm_streams_weights():
    model = GPUModel(load_device("h100-sxm-80gb"), profile="fused")
    one = model.cost(_gemm(1, n=28672, weight_bits=W4), 1980.0)      # Llama-3.1-8B's merged gate/up
    assert one.bound == "memory" and one.compute_s < one.memory_s, one
    # flat in M up to the 16-row tile (MARLIN: near-ideal speedup up to batch 16-32)
    assert abs(model.cost(_gemm(16, n=28672, weight_bits=W4), 1980.0).time_s / one.time_s - 1) < 0.02
    # at least 3x faster than the bf16 GEMM of the same shape (ideal 16 / 4.25 = 3.8x on the weight stream)
    assert model.cost(_gemm(1, n=28672), 1980.0).time_s / one.time_s > 3.0


def test_bf16_tiles_unchanged_by_weight_only_rule():
    model = GPUModel(load_device("h100-sxm-80gb"), profile="fused")
    plan16 = model.gemm_plan(6144, 4096, 1, "bf16", 1980.0)
    assert plan16[6].ravel().tolist() == [t >= 64 for t in plan16[0].ravel().tolist()]
    plan_w = model.gemm_plan(6144, 4096, 1, "bf16" + WEIGHT_ONLY, 1980.0)
    assert plan_w[6].ravel().tolist() == [t >= 16 for t in plan_w[0].ravel().tolist()]
