"""Workload transforms change exactly the bytes and FLOPs they should."""
import pytest

from workloads import trace
from workloads.errors import HwsimError
from workloads.recipe import build_workload, parse_index_list
from workloads.transforms import apply_precision, drop_attention, drop_layers, sparsify_2_4


@pytest.fixture(scope="module")
def decode():
    return trace("llama-3.1-8b", "decode", 1, 1024)


def proj_weight_bytes(graph):
    return sum(op.bytes["weight"] * op.repeat for op in graph.ops if op.kind == "matmul" and op.group is not None)


def test_w4a16_shrinks_projection_weights(decode):
    q = apply_precision(decode, quant="w4a16")
    ratio = proj_weight_bytes(q) / proj_weight_bytes(decode)
    assert ratio == pytest.approx((4 + 20 / 128) / 16)
    lm = [op for op in q.ops if op.name == "lm_head"][0]
    assert lm.bytes["weight"] == 128256 * 4096 * 2          # LM head stays bf16
    assert q.meta["weight_storage_bytes"] < decode.meta["weight_storage_bytes"] * 0.4
    assert q.totals()["flops"] == decode.totals()["flops"]


def test_w8a8_halves_matmul_activation_reads(decode):
    q = apply_precision(decode, quant="w8a8")
    a = [op for op in decode.ops if op.name == "attn.q_proj"][0]
    b = [op for op in q.ops if op.name == "attn.q_proj"][0]
    assert b.reads["activation"] == a.reads["activation"] / 2
    assert b.dtype == "int8"


def test_fp32_doubles_everything(decode):
    q = apply_precision(decode, dtype="fp32")
    assert q.totals()["total_bytes"] == pytest.approx(2 * decode.totals()["total_bytes"])


def test_ternary_bitnet():
    g = build_workload("bitnet-b1.58-2b", "decode", 1, 128, quant="ternary")
    assert g.meta["weight_bits"] == 2.0
    assert g.meta["weight_storage_bytes"] < 0.5 * g.meta["params"] * 2


def test_sparsity_halves_projection_flops(decode):
    s = sparsify_2_4(decode)
    proj = lambda g: sum(op.flops * op.repeat for op in g.ops if op.kind == "matmul" and op.group is not None)
    assert proj(s) * 2 == proj(decode)
    assert proj_weight_bytes(s) == pytest.approx(proj_weight_bytes(decode) * 9 / 16)


def test_drop_layers(decode):
    d = drop_layers(decode, [0, 5, 31])
    layer_flops = lambda g: sum(op.flops * op.repeat for op in g.ops if op.group is not None)
    assert layer_flops(d) == pytest.approx(layer_flops(decode) * 29 / 32)
    assert d.meta["kv_bytes_per_token"] == pytest.approx(decode.meta["kv_bytes_per_token"] * 29 / 32)


def test_drop_attention_keeps_mlp(decode):
    d = drop_attention(decode, [2, 3])
    attn = lambda g: sum(op.repeat for op in g.ops if op.kind == "attention")
    mlp = lambda g: sum(op.repeat for op in g.ops if op.name == "mlp.down_proj")
    assert attn(d) == 30 and mlp(d) == 32
    assert d.graph.number_of_nodes() == len(d.ops)


def test_bad_transform_input(decode):
    with pytest.raises(HwsimError):
        drop_layers(decode, [32])
    with pytest.raises(HwsimError):
        apply_precision(decode, quant="w5a5")
    with pytest.raises(HwsimError):
        parse_index_list("1-x")
    assert parse_index_list("0,5-7") == [0, 5, 6, 7]
