"""Memory accounting (issue 12, item 5): binary DRAM capacities, transforms that shrink the checked memory,
contexts beyond max_position_embeddings."""
import json
import warnings
from pathlib import Path

import pytest
import yaml

from hw_models import load_device
from hw_models.presets import PRESET_DIR
from sim.predict import predict
from workloads.errors import ContextLengthWarning, HwsimError
from workloads.recipe import build_workload

DATA = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu" / "data"
DRAM = ("hbm", "gddr6", "gddr6x", "lpddr5", "lpddr5x", "ddr4", "ddr5")


@pytest.mark.parametrize("path", sorted(PRESET_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_dram_capacity_is_binary(path):
    """DRAM is built in binary sizes: every DRAM level is written as capacity_gib (the vendor's marked number)."""
    raw = yaml.safe_load(path.read_text())
    for name, level in raw.get("memory", {}).items():
        if name in DRAM:
            assert "capacity_gib" in level and "capacity_gb" not in level, f"{path.name}: {name}"


def test_capacity_matches_what_cuda_reported():
    """The H100/H200 capacity is within 2% above the total memory CUDA reported on the lent GPUs."""
    for folder, preset in (("h100-sxm-2026-11-24", "h100"), ("h200-2026-11-24", "h200")):
        env = json.loads((DATA / folder / "env.json").read_text())
        cap = load_device(preset).main_memory.capacity_bytes
        assert env["memory_bytes"] <= cap <= 1.02 * env["memory_bytes"]


def test_binary_and_decimal_exclusive():
    from hw_models.spec import Memory
    assert Memory(capacity_gib=80, bandwidth_gbps=1).capacity_bytes == 80 * 2 ** 30
    with pytest.raises(ValueError):
        Memory(capacity_gib=80, capacity_gb=80, bandwidth_gbps=1)


def test_tensorrt_llm_a100_case_fits():
    """TensorRT-LLM ran Llama-2-7B at batch 60 with 2,175 tokens on an A100-80GB (NVIDIA's published
    performance table): 13.5 GB of weights + 68.4 GB of KV cache fit 80 GiB, not 80e9 bytes."""
    g = build_workload("llama-2-7b", "decode", 60, 2174, dtype="fp16")
    p = predict(g, load_device("a100-80gb"), profile="fused")
    assert p.fits
    assert g.memory_needed() > 80e9     # it would not fit a decimal 80 GB


def test_drop_layers_and_sparsity_shrink_checked_memory():
    base = build_workload("llama-3.1-8b", "decode", 1, 128)
    half = build_workload("llama-3.1-8b", "decode", 1, 128, drop_layer_ids=range(16))
    sparse = build_workload("llama-3.1-8b", "decode", 1, 128, sparsity="2:4")
    layer_w = base.meta["weight_storage_bytes"] - 2 * 128256 * 4096 * 2     # all but embeddings and LM head
    assert half.memory_needed() == pytest.approx(base.memory_needed() - layer_w / 2
                                                - base.meta["kv_cache_storage_bytes"] / 2, rel=1e-3)
    proj = base.meta["linear_params"] * 2
    assert base.meta["weight_storage_bytes"] - sparse.meta["weight_storage_bytes"] == pytest.approx(
        proj * (1 - 9 / 16), rel=1e-6)
    # a MoE model: dropping half the layers drops half of every expert's weights, not only the active ones
    moe = build_workload("mixtral-8x7b", "decode", 1, 128)
    moe_half = build_workload("mixtral-8x7b", "decode", 1, 128, drop_layer_ids=range(16))
    assert moe_half.meta["weight_storage_bytes"] < 0.52 * moe.meta["weight_storage_bytes"]


def test_quantized_drop_uses_stored_precision():
    q = build_workload("llama-3.1-8b", "decode", 1, 128, quant="w4a16")
    q1 = build_workload("llama-3.1-8b", "decode", 1, 128, quant="w4a16", drop_layer_ids=[0])
    per_layer = q.meta["layer_linear_params"][0] * q.meta["weight_bits"] / 8
    assert q.meta["weight_storage_bytes"] - q1.meta["weight_storage_bytes"] == pytest.approx(
        per_layer + (q.meta["layer_params"][0] - q.meta["layer_linear_params"][0]) * 2, rel=1e-6)


def test_context_beyond_max_positions_warns_for_rope():
    with pytest.warns(ContextLengthWarning):
        g = build_workload("llama-2-7b", "decode", 1, 8192)       # max_position_embeddings 4096
    assert g.meta["context"] == 8192
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_workload("llama-2-7b", "decode", 1, 4000)


def test_context_beyond_learned_positions_refused():
    with pytest.raises(HwsimError, match="learned position"):
        build_workload("gpt2", "prefill", 1, 2048)


def test_cli_prints_one_line_warning(capsys):
    from sim.cli import main
    assert main(["predict", "--model", "llama-2-7b", "--hardware", "h100", "--phase", "decode",
                 "--seq-len", "8192"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hwsim predict: warning:") and "4096" in err[0]


def test_a_users_gpu_file_without_calibration_gets_the_datasheet_estimate(tmp_path):
    import yaml
    from hw_models import load_device
    from hw_models.power import PowerModel
    from hw_models.presets import PRESET_DIR
    raw = yaml.safe_load((PRESET_DIR / "l4.yaml").read_text())
    raw.pop("calibration", None)
    raw["id"] = "my-l4"
    (tmp_path / "my-l4.yaml").write_text(yaml.safe_dump(raw))
    power = PowerModel(load_device(str(tmp_path / "my-l4.yaml")))
    assert power.p["static_w"] < power.cap                  # not the H100's 150 W above the L4's 72 W cap


@pytest.mark.parametrize("model,tied", [("llama-3.1-8b", False), ("gemma-2-9b", True)])
def test_tensor_parallel_splits_the_vocabulary_tables(model, tied):
    """Under tp:n every stack splits the LM head, and vLLM / SGLang / Megatron split the embedding table by
    vocabulary: one device holds 1/n of the projections, embedding and head; only norms stay whole."""
    from mapping.tensor_parallel import shard
    from hw_models.systems import load_system
    g = build_workload(model, "decode", 1, 128)
    spec = g.spec
    vocab_b = spec.vocab * spec.hidden * (1 if tied else 2) * 2
    whole = g.meta["weight_storage_bytes"]
    linear_b = g.meta["linear_params"] * 2
    norms_b = whole - linear_b - vocab_b
    assert 0 <= norms_b < 0.001 * whole
    sharded, _ = shard(g, load_system("dgx-h100"), 4)
    assert sharded.meta["weight_storage_bytes"] == pytest.approx((linear_b + vocab_b) / 4 + norms_b)
