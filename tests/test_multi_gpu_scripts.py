"""The multi-GPU ground-truth scripts (issue 16), checked with gloo on the CPU at world size 2.

These runs check the scripts (launch, collectives, CSV columns, bus-bandwidth factors, the fit's pipeline);
their numbers are CPU timings, not GPU data. The ranks are forked from this process (torch is not imported
again), so the whole file takes a few seconds.
"""
from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GPU_DIR = ROOT / "benchmarks" / "gpu"
sys.path.insert(0, str(GPU_DIR))

import fit_collectives  # noqa: E402
import measure_collectives  # noqa: E402
import measure_tp_steps  # noqa: E402

from hw_models.collectives import collective_time  # noqa: E402

SIZES = [4096, 16384]


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def collectives_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("coll") / "gloo-w2"
    assert measure_collectives.main(["--backend", "gloo", "--spawn", "2", "--out", str(out), "--max-bytes", "16384",
                                     "--factor", "4", "--min-reps", "2", "--min-time", "0"]) == 0
    return out


@pytest.fixture(scope="module")
def steps_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("steps") / "gloo-w2"
    assert measure_tp_steps.main(["--backend", "gloo", "--spawn", "2", "--tiny", "--out", str(out),
                                  "--decode", "2x16", "--prefill", "2x16", "--moe-decode", "4x16",
                                  "--moe-prefill", "2x16", "--min-reps", "2", "--min-time", "0"]) == 0
    return out


def test_bus_bandwidth_factors_are_nccl_tests():
    f = measure_collectives.bus_factor
    assert (f("all_reduce", 8), f("all_gather", 8), f("reduce_scatter", 8), f("all_to_all", 8),
            f("send_recv", 8)) == (1.75, 0.875, 0.875, 0.875, 1.0)
    assert f("all_reduce", 2) == 1.0 and f("all_gather", 4) == 0.75


def test_collectives_csv(collectives_out):
    got = rows(collectives_out / "collectives.csv")
    assert list(got[0]) == measure_collectives.FIELDS
    assert {(r["collective"], int(r["bytes"])) for r in got} == \
        {(c, s) for c in measure_collectives.COLLECTIVES for s in SIZES}
    for r in got:
        assert r["status"] == "ok" and r["backend"] == "gloo" and r["world_size"] == "2" and r["mode"] == "eager"
        t = float(r["time_us"]) * 1e-6
        assert 0 < float(r["time_us_fastest_rank"]) <= float(r["time_us"])
        assert float(r["busbw_factor"]) == measure_collectives.bus_factor(r["collective"], 2)
        algbw = int(r["bytes"]) / t / 1e9
        assert float(r["algbw_gbps"]) == pytest.approx(algbw, rel=1e-3, abs=1e-4)
        assert float(r["busbw_gbps"]) == pytest.approx(algbw * float(r["busbw_factor"]), rel=1e-3, abs=1e-4)
        assert int(r["ops_timed"]) >= 2 * int(r["ops_per_rep"])
        assert r["power_w"] == ""                        # no NVML on the CPU: left empty, never made up
    env = json.loads((collectives_out / "env.json").read_text())
    assert env["world_size"] == 2 and env["gpu"] is False and "not_gpu_data" in env
    assert len(env["ranks"]) == 2


def test_tp_steps_csv(steps_out):
    got = rows(steps_out / "tp_steps.csv")
    assert list(got[0]) == measure_tp_steps.FIELDS
    assert {(r["model"], r["parallel"], r["phase"]) for r in got} == \
        {(m, p, ph) for m, p in (("llama-2-7b", "tp"), ("llama-3.1-8b", "tp"), ("llama-3.1-70b", "tp"),
                                 ("mixtral-8x7b", "ep")) for ph in ("decode", "prefill")}
    for r in got:
        assert r["status"] == "ok", r
        assert r["degree"] == "2" and float(r["step_us"]) > 0
        assert float(r["step_us_fastest_rank"]) <= float(r["step_us"])
    assert json.loads((steps_out / "env.json").read_text())["args"]["tiny"] is True


def test_tp_and_ep_shards_give_the_unsharded_logits(tmp_path):
    """--check draws every weight whole from one seed and cuts each rank's part: the TP and EP steps at world
    size 2 (column/row splits, replicated KV heads, all-reduces, vocab-parallel embedding, logits all-gather,
    all-to-all dispatch and combine) must give world size 1's logits. Dropping one all-reduce or the combine
    all-to-all moves them by about 1e-3."""
    import torch
    common = ["--backend", "gloo", "--tiny", "--check", "--decode", "4x16", "--prefill", "4x16",
              "--moe-decode", "4x16", "--moe-prefill", "4x16"]
    for world in (1, 2):
        assert measure_tp_steps.main(common + ["--spawn", str(world), "--out", str(tmp_path / f"w{world}")]) == 0
    one, two = (torch.load(tmp_path / f"w{w}" / "check_logits.pt") for w in (1, 2))
    assert len(one) == 8 and one.keys() == two.keys()
    for key in one:
        assert one[key].shape == (4, 1, 512), key
        assert torch.allclose(one[key], two[key], rtol=0, atol=1e-5), key


def test_configs_come_from_the_zoo_and_truncate():
    c = measure_tp_steps.load_config("llama-2-7b", tiny=False)
    assert (c["heads"], c["kv_heads"], c["layers"], c["intermediate"]) == (32, 32, 32, 11008)
    assert measure_tp_steps.load_config("llama-3.1-70b:16", tiny=False)["layers"] == 16
    assert measure_tp_steps.load_config("mixtral-8x7b:8", tiny=False)[("experts")] == 8


def test_a_degree_that_does_not_divide_is_refused():
    import torch
    ctx = type("Ctx", (), {"world": 3, "rank": 0, "device": torch.device("cpu")})()
    c = measure_tp_steps.load_config("llama-3.1-8b", tiny=True)            # 4 heads
    with pytest.raises(ValueError, match="tp:3 does not divide"):
        measure_tp_steps.Model(ctx, c, "tp", "decode", 2, 16, "vocab-parallel")
    with pytest.raises(ValueError, match="ep:3"):
        measure_tp_steps.Model(ctx, measure_tp_steps.load_config("mixtral-8x7b", tiny=True), "ep", "decode", 3, 16,
                               "replicated")


def test_fit_runs_on_the_gloo_output(collectives_out, steps_out, capsys):
    assert fit_collectives.main([str(collectives_out.parent), str(steps_out.parent)]) == 0
    text = capsys.readouterr().out
    assert "NOT GPU DATA" in text
    assert "PASS" not in text and "FAIL" not in text        # CPU data is never judged
    assert len(re.findall(r"<=64KB", text)) == len(measure_collectives.COLLECTIVES)
    assert "not compared" in text                             # tiny steps are not compared with hwsim


def test_fit_with_no_data_says_so_in_one_line(tmp_path, capsys):
    assert fit_collectives.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("no measured multi-GPU data")


def test_refit_recovers_the_parameters_of_hwsims_formula():
    for kind, n in (("all_reduce_ring", 8), ("all_gather", 4), ("all_to_all", 2), ("p2p", 2)):
        sizes = [4096 * 4 ** i for i in range(10)]
        times = [collective_time(kind, s, n, 350e9, 2.5e-6) for s in sizes]
        lat, bw = fit_collectives.refit(kind, n, sizes, times)
        assert lat == pytest.approx(2.5e-6, rel=1e-6) and bw == pytest.approx(350e9, rel=1e-6)


def test_step_comparison_arithmetic(tmp_path, capsys):
    """A synthetic step file (made here from hwsim's own prediction x 1.25; not data) is reported at -20%."""
    from sim.api import simulate
    pred = simulate("llama-3.1-8b", "dgx-h100", "tp:2", phase="decode", batch=1, seq_len=128, profile="eager",
                    drop_layer_ids=list(range(2, 32))).latency_s
    folder = tmp_path / "synthetic-collectives"
    folder.mkdir()
    (folder / "env.json").write_text(json.dumps({"gpu": True, "backend": "nccl", "device": "NVIDIA H100 80GB HBM3",
                                                 "world_size": 2, "args": {"tiny": False}}))
    row = dict.fromkeys(measure_tp_steps.FIELDS, "")
    row.update(backend="nccl", world_size=2, model="llama-3.1-8b", parallel="tp", degree=2, layers=2,
               config_layers=32, phase="decode", batch=1, seq_len=128, embedding="replicated", mode="graph",
               step_us=f"{pred * 1.25 * 1e6:.4f}", status="ok")
    with open(folder / "tp_steps.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=measure_tp_steps.FIELDS)
        w.writeheader()
        w.writerow(row)
    assert fit_collectives.main([str(folder)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "tp:2" in x)
    assert "( -20.0%)" in line and line.rstrip().endswith("FAIL")


def test_scripts_never_set_communication_environment():
    """NVLink multicast stays as the machine sets it: no script writes NCCL_*/NVSHMEM_*/TORCH_SYMM_MEM_* or
    uses symmetric memory."""
    writes = re.compile(r"environ\s*\[[^\]]*\]\s*=|environ\.(setdefault|update|pop)|putenv|unsetenv|"
                        r"_symmetric_memory|symm_mem\.")
    for name in ("dist_common.py", "measure_collectives.py", "measure_tp_steps.py"):
        src = (GPU_DIR / name).read_text()
        assert not writes.search(src), name
