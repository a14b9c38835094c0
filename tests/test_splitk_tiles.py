"""The paged split-K Triton decode kernel's query tiles (hw_models/gpu.py splitk_tile_s, the `triton-splitk` stack):
a KV group of 32 query heads runs 32-row tiles, slower than the 16-row tiles of groups <= 16 on the same KV bytes
(measured on the H100: benchmarks/gpu/data/h100-2026-12-06-lease8-kernels); other stacks' kernels are not priced
with it; the one-case fast path prices it as the full path; fit_stack.py keeps the held-out layouts held out when it
reads the extra calibration rows."""
import sys
from pathlib import Path

import pytest

from hw_models import load_device
from hw_models.gpu import GPUModel, splitk_tile_s
from sim import api

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))
import fit_stack  # noqa: E402


def _row(hq, hkv, b=64, ctx=32768, kv="bf16"):
    return {"b": str(b), "hq": str(hq), "hkv": str(hkv), "ctx": str(ctx), "d": "128", "kv_dtype": kv}


def _time(profile, hq, hkv, params=None, **kw):
    r = _row(hq, hkv, **kw)
    model = GPUModel(load_device("h100"), profile=profile, params=params or {})
    return model.cost(fit_stack.decode_op(r, 1 if r["kv_dtype"] == "fp8" else 2), 1980).time_s


def test_32_row_tiles_cost_more_than_16_row_tiles_on_the_same_kv_bytes():
    assert GPUModel(load_device("h100")).p.get("paged_tile_eff", 0) > 0
    for kv in ("bf16", "fp8"):
        # (128, 4) and (64, 4): the same KV bytes, groups 32 and 16
        assert _time("triton-splitk", 128, 4, b=256, kv=kv) > 1.05 * _time("triton-splitk", 64, 4, b=256, kv=kv)
    # vLLM's kernel (not measured here) is priced on the bytes alone, as the split-K kernel without its tiles
    assert _time("vllm", 128, 4, b=256) == pytest.approx(
        _time("triton-splitk", 128, 4, params={"paged_tile_eff": 0.0}, b=256), rel=1e-12)
    assert _time("vllm", 128, 4, b=256) < _time("triton-splitk", 128, 4, b=256)


def test_tile_rows_and_splits_follow_the_measured_kernel():
    model = GPUModel(load_device("h100"), profile="triton-splitk")
    p = dict(model.p)
    # one CTA alone (b = 1, 64 splits of 512 keys: 8 blocks) is bound by its loop: blocks x rows x paged_row_ns
    flops = 2 * 1 * 32 * 32768 * 256
    assert splitk_tile_s(model, flops, 32, 1, 32768, 128, 128, 1980) == pytest.approx(
        max(8 * 32 * p["paged_row_ns"] * 1e-9, flops / (model._peak("bf16", 1980) * p["paged_tile_eff"])))
    # group 7 runs 16-row tiles, group 17 32-row ones (padded FLOPs: rows / group times the op's)
    f7, f17 = (splitk_tile_s(model, 2 * 256 * g * 4 * 32768 * 256, g * 4, 4, 32768, 128, 128, 1980) for g in (7, 17))
    assert f17 / f7 == pytest.approx(2.0, rel=1e-9)


@pytest.mark.parametrize("model", ["falcon-7b", "llama-3.1-8b"])
@pytest.mark.parametrize("kv_dtype", [None, "fp8"])
def test_fast_path_equals_full_path_with_query_tiles(model, kv_dtype):
    kw = dict(profile="triton-splitk", **({"kv_dtype": kv_dtype} if kv_dtype else {}))
    for batch, ctx in ((1, 512), (64, 4096), (256, 32768)):
        fast = api.predict(model, "h100", "decode", batch, ctx, **kw)
        full = api.predict(model, "h100", "decode", batch, ctx, detail=True, **kw)
        assert fast.latency_s == pytest.approx(full.latency_s, rel=1e-9)
        assert fast.energy_j == pytest.approx(full.energy_j, rel=1e-9)


def test_extra_calibration_rows_keep_the_held_out_layouts_held_out():
    folder = fit_stack.DATA / "h100-2026-12-06-stack"
    rows = fit_stack.read_decode(folder, "h100")
    extra = [r for r in rows if r.get("extra")]
    assert extra and all(not r["kernel"].startswith("sdpa") for r in extra)
    assert {(int(r["hq"]), int(r["hkv"])) for r in extra} == {(64, 2), (128, 4), (16, 1), (64, 4)}
    dev = load_device("h100")
    held = {(int(r["hq"]), int(r["hkv"])) for _, _, r in fit_stack.decode_errors(dev, rows, {}, "held-out", "paged")}
    cal = [r for _, _, r in fit_stack.decode_errors(dev, rows, {}, "calibration", "paged")]
    assert held == fit_stack.DECODE_HELD
    assert not any((int(r["hq"]), int(r["hkv"])) in fit_stack.DECODE_HELD for r in cal)
    assert len(cal) == len([r for r in rows if not r["kernel"].startswith("sdpa")]) - sum(
        1 for r in rows if not r["kernel"].startswith("sdpa") and (int(r["hq"]), int(r["hkv"])) in fit_stack.DECODE_HELD)
    # the H200 has no extra rows: its calibration set is the stack folder's
    assert not any(r.get("extra") for r in fit_stack.read_decode(fit_stack.DATA / "h200-2026-12-06-stack", "h200"))
