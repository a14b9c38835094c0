"""`hwsim predict --cases` with every software profile, on multi-row files of every model family.

The array path (one graph template instantiated for many rows at once) must give the figures of `predict` run
row by row. Issue 18 item 4: `--profile eager-launch` crashed as soon as a file held two prefill rows of one
dense model with different prompt lengths (an op's kernel count is one number while its times are arrays).
"""
import csv
import functools
import json

import pytest

from hw_models import load_device
from hw_models.stacks import STACKS
from sim.cli import main
from sim.predict import predict
from workloads.recipe import build_workload
from workloads.zoo import load_config

# one preset per model_type of workloads/zoo (deepseek_v3 truncated: 256 experts x 61 layers take seconds each)
FAMILIES = ["llama-3.1-8b", "mistral-7b", "mixtral-8x7b", "qwen2.5-7b", "qwen1.5-moe-a2.7b", "qwen3-14b",
            "phi-3-mini", "gemma-2b", "gemma-2-9b", "bitnet-b1.58-2b", "deepseek-v2-lite", "gpt2", "opt-6.7b",
            "bloom-176b", "falcon-7b", "gpt-neox-20b", "phi-2"]
ROWS = [("prefill", 1, 128), ("prefill", 1, 300), ("prefill", 3, 64), ("prefill", 2, 200), ("decode", 1, 200),
        ("decode", 1, 900), ("decode", 4, 700)]


_graph = functools.lru_cache(maxsize=None)(build_workload)


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cases")
    config, _ = load_config("deepseek-v3")
    small = dict(config, num_hidden_layers=4, first_k_dense_replace=1, n_routed_experts=16, n_group=4, topk_group=2,
                 _hwsim_name="deepseek-v3-small")
    (folder / "deepseek-v3-small").mkdir()
    (folder / "deepseek-v3-small" / "config.json").write_text(json.dumps(small))
    models = FAMILIES + [str(folder / "deepseek-v3-small" / "config.json")]
    path = folder / "in.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "hardware", "phase", "batch", "seq_len", "dtype", "tag"])
        for i, m in enumerate(models):        # rows of one model and phase on one device share one array sweep
            for k, (phase, batch, seq) in enumerate(ROWS):
                w.writerow([m, "h100" if i % 2 else "h200", phase, batch, seq, "bf16", f"{m}-{k}"])
    return path


@pytest.mark.parametrize("profile", list(STACKS))
def test_every_profile_in_batch_mode_equals_one_by_one(cases, tmp_path, profile):
    out = tmp_path / "out.csv"
    assert main(["predict", "--cases", str(cases), "--profile", profile, "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == len(FAMILIES + [0]) * len(ROWS)
    devices = {}
    for r in rows:
        assert r["status"] == "ok" or r["status"].startswith("does not fit in device memory"), r
        if r["status"] != "ok":             # an unfit row reports no latency
            continue
        device = devices.get(r["hardware"]) or devices.setdefault(r["hardware"], load_device(r["hardware"]))
        one = predict(_graph(r["model"], r["phase"], int(r["batch"]), int(r["seq_len"])), device, profile)
        assert float(r["latency_s"]) == pytest.approx(one.latency_s, rel=1e-5), r
        assert float(r["energy_j"]) == pytest.approx(one.energy_j, rel=1e-5), r
        assert r["bound"] == one.bound, r


@pytest.mark.parametrize("profile", ["eager", "hf-generate"])
def test_rows_of_one_model_on_several_gpus_share_a_template_and_equal_one_by_one(tmp_path, profile):
    """Rows of one model and phase on different GPUs (and a bad hardware name among them) are instantiated
    together and costed per GPU: each row still gets the figures of `predict` on its own GPU."""
    rows = [("h100", "decode", 1, 300), ("h200", "decode", 1, 300), ("h200", "decode", 4, 700),
            ("a100-80gb", "decode", 2, 100), ("nosuchgpu", "decode", 1, 64), ("h100", "prefill", 2, 200),
            ("h200", "prefill", 1, 128)]
    path = tmp_path / "in.csv"
    path.write_text("model,hardware,phase,batch,seq_len\n" +
                    "".join(f"llama-3.1-8b,{h},{p},{b},{s}\n" for h, p, b, s in rows))
    out = tmp_path / "out.csv"
    assert main(["predict", "--cases", str(path), "--profile", profile, "--out", str(out)]) == 0
    got = list(csv.DictReader(open(out)))
    for (h, p, b, s), r in zip(rows, got):
        if h == "nosuchgpu":
            assert r["status"].startswith("error:") and "nosuchgpu" in r["status"], r
            continue
        assert r["status"] == "ok", r
        one = predict(_graph("llama-3.1-8b", p, b, s), load_device(h), profile)
        assert float(r["latency_s"]) == pytest.approx(one.latency_s, rel=1e-5), (h, p, b, s)
        assert float(r["energy_j"]) == pytest.approx(one.energy_j, rel=1e-5), (h, p, b, s)
        assert float(r["memory_gb"]) == pytest.approx(one.memory_needed_bytes / 1e9, rel=1e-3), (h, p, b, s)
