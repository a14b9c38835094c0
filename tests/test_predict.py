"""GPU cost/power model and the predict/validate commands, against the committed H100 measurements."""
import csv
import json
import subprocess
import sys

import pytest

from hw_models import load_device
from sim.cli import main
from sim.predict import predict
from sim import validation
from workloads import trace


def hwsim(*args):
    proc = subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def h100():
    return load_device("h100")


def test_prefill_hits_the_power_cap_with_a_clock_drop(h100):
    """NVML on random token ids: 698 W at 1,690 MHz average SM clock for this step
    (benchmarks/gpu/data/h100-2026-12-06-random-ids/power.csv). The GEMM runs meet the cap on their own (the
    power window, cap_sequence), the elementwise ops between them run above the GEMMs' clock.
    The clock of a 1x8192 step differs between leases by more than the model's error: qwen3-14b 1x8192 ran at
    1,614 MHz on lease17 (h100-2026-12-07-lease17-random-ids), where the GEMMs' implied clock is 1,585. Since the
    H100's causal-tile attention (docs/stack-accuracy.md, eighteenth session) hwsim reads -7.4% / +1.2% on the two
    (the earlier preset -1.7% / +7.3%), so both are held to 8%."""
    p = predict(trace("llama-3.1-8b", "prefill", 1, 8192), h100)
    assert p.power_capped and p.avg_power_w == pytest.approx(698, rel=0.03) and p.avg_power_w <= 700 + 1e-6
    assert p.clock_mhz < 1980 and p.clock_mhz == pytest.approx(1690, rel=0.08)
    assert p.bound == "compute"
    q = predict(trace("qwen3-14b", "prefill", 1, 8192), h100)
    assert q.power_capped and q.clock_mhz == pytest.approx(1614, rel=0.08)


def test_decode_batch1_is_memory_bound_at_half_power(h100):
    p = predict(trace("llama-3.1-8b", "decode", 1, 2048), h100)
    assert not p.power_capped and p.clock_mhz == 1980
    assert p.bound == "memory"
    assert 300 < p.avg_power_w < 450          # NVML measured 379 W (benchmarks/gpu/data/h100-*/power.csv)


def test_power_matches_nvml_within_10_percent():
    # the sustained runs on random token ids (the 2026-11-24 ones ran on all-zero ids: less GEMM power)
    rows = list(csv.DictReader(open(validation.DATA_DIR / "h100-2026-12-06-random-ids" / "power.csv")))
    for r in rows:
        if r["case"] != "step":
            continue
        p = predict(trace(r["model"], r["phase"], int(r["batch"]), int(r["seq_len"])), load_device("h100"))
        assert p.avg_power_w == pytest.approx(float(r["avg_power_w"]), rel=0.10), r


def test_h200_power_against_nvml_on_both_days():
    """H200 sustained steps on random token ids (2026-12-07) and of the 2026-12-06 stack set, the two power files
    benchmarks/gpu/fit_power.py --random-ids fits on (the GEMMs and the training models' steps; phi-3-mini and
    qwen3-14b held out): MAPE under 5%, every run within 15%. Until 2026-12-07 this read the 2026-11-24 runs, fed
    all-zero ids: their llama-3.1-8b 1x512 prefill drew 593 W at 1,980 MHz where the random-id run draws 690 W at
    1,882 MHz (hwsim 700 W, capped: +18% against the zero-id run, +1.5% against the random-id one)."""
    errs = []
    for folder in ("h200-2026-12-07-lease16-random-ids", "h200-2026-12-06-stack"):
        for r in csv.DictReader(open(validation.DATA_DIR / folder / "power.csv")):
            if r["case"] != "step":
                continue
            p = predict(trace(r["model"], r["phase"], int(r["batch"]), int(r["seq_len"])), load_device("h200"))
            errs.append((p.avg_power_w - float(r["avg_power_w"])) / float(r["avg_power_w"]))
            assert abs(errs[-1]) < 0.15, (r, p.avg_power_w)
    assert len(errs) == 13 and sum(abs(e) for e in errs) / len(errs) < 0.05, errs


def test_large_batch_decode_of_a_70b_shard_against_nvml():
    """Held-out NVML runs (benchmarks/gpu/measure_power_shard.py): a TP4 shard of Llama-3-70B on the H100 at
    batch 64-512. Step time within 10%; power within 8% (issue 12's bar for the large-batch decode): it was
    under-predicted by up to 17% at batch 256-430 until the H100's random-id power terms (gamma 0.5) and the kernel
    classes' energy per byte (hw_models/gpu.py kernel_energy_rel) brought the runs to -5.4..+3.5%. Both runs: the
    2026-11-24 one on all-zero token ids and its 2026-12-07 repeat on random ids (-6.3..+2.0%)."""
    import sys
    sys.path.insert(0, str(validation.DATA_DIR.parent))
    from measure_launch import shard_config
    cfg = shard_config("llama-3-70b", 4)
    rows = [r for name in ("h100-sxm-2026-11-24-power-shard", "h100-2026-12-07-lease17-random-ids")
            for r in csv.DictReader(open(validation.DATA_DIR / name / "power_shard.csv"))]
    assert len(rows) == 10
    for r in rows:
        p = predict(trace(cfg, r["phase"], int(r["batch"]), int(r["seq_len"])), load_device("h100"))
        assert p.latency_s == pytest.approx(float(r["step_seconds"]), rel=0.10), r
        assert p.avg_power_w == pytest.approx(float(r["avg_power_w"]), rel=0.08), r


def test_validation_error_is_far_below_roofline(h100):
    folder = validation.DATA_DIR / "h100-sxm-2026-11-24"
    rows = validation.evaluate(folder, "h100-sxm-80gb")
    for s in validation.summary(rows):
        assert s["hwsim_mape"] < 12.0, s
        assert s["roofline_mape"] > 2 * s["hwsim_mape"], s


def test_more_bandwidth_means_faster_decode(h100):
    g = trace("llama-3.1-8b", "decode", 8, 2048)
    assert predict(g, load_device("h200")).latency_s < predict(g, h100).latency_s


def test_predict_cli_json(capsys):
    assert main(["predict", "--model", "llama-3.1-8b", "--hardware", "h100", "--phase", "decode", "--batch", "4",
                 "--seq-len", "1024", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["result"]["latency_s"] > 0 and doc["result"]["bound"] == "memory"
    assert sum(op["share"] for op in doc["ops"]) == pytest.approx(1.0, rel=1e-6)


def test_predict_batch_mode(tmp_path):
    cases = tmp_path / "in.csv"
    cases.write_text("model,hardware,phase,batch,seq_len,dtype,tag\n"
                     "llama-3.1-8b,h100,prefill,1,512,bf16,a\n"
                     "llama-3.1-8b,h100,decode,16,2048,bf16,b\n"
                     "llama-3.1-405b,h100,decode,1,2048,bf16,c\n")
    out = tmp_path / "out.csv"
    code, _, err = hwsim("predict", "--cases", str(cases), "--out", str(out))
    assert code == 0, err
    rows = list(csv.DictReader(open(out)))
    assert [r["tag"] for r in rows] == ["a", "b", "c"]
    assert float(rows[0]["latency_s"]) > 0 and rows[1]["bound"] == "memory"
    assert rows[2]["status"].startswith("does not fit in device memory") and rows[2]["latency_s"] == ""


@pytest.mark.parametrize("args, words", [
    (["predict", "--model", "llama-3.1-405b", "--hardware", "h100", "--phase", "decode"], "needs"),
    (["predict", "--model", "llama-3.1-8b", "--hardware", "h1000"], "unknown hardware"),
    (["predict", "--model", "llama-3.1-8b"], "needs --model (or --module) and --hardware"),
    (["predict", "--cases", "/nonexistent.csv"], "cannot read cases file"),
])
def test_predict_bad_input(args, words):
    code, out, err = hwsim(*args)
    assert code == 2 and words in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_bad_preset_file_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "gpu.yaml"
    bad.write_text("id: x\nname: X\nclass: gpu\nengines: {}\nmemory: {hbm: {bandwidth_gbps: 100}}\n")
    code, out, err = hwsim("predict", "--model", "gpt2", "--hardware", str(bad))
    assert code == 2 and "has no source" in err and len(err.strip().splitlines()) == 1


def test_warm_builds_templates(tmp_path, monkeypatch):
    monkeypatch.setenv("HWSIM_CACHE", str(tmp_path))
    code, out, err = hwsim("warm", "--models", "gpt2,mixtral-8x7b", "--phases", "decode")
    assert code == 0 and "1 of 2" in out
    assert list(tmp_path.glob("templates/*.json"))


def test_hardware_lists_presets(capsys):
    assert main(["hardware", "--class", "gpu"]) == 0
    assert "h100-sxm-80gb" in capsys.readouterr().out


def test_batch_sweep_equals_one_by_one(tmp_path):
    """The array path (template instantiated for many steps) gives the same numbers as predict()."""
    import random
    rng = random.Random(3)
    rows = [("llama-3.1-8b", "h100", ph, rng.randint(1, 64), rng.randint(16, 3000))
            for ph in ("prefill", "decode") for _ in range(6)] + [("qwen2.5-7b", "h200", "decode", 1, 900)]
    cases = tmp_path / "in.csv"
    cases.write_text("model,hardware,phase,batch,seq_len,dtype\n" + "".join(f"{m},{h},{p},{b},{s},bf16\n"
                                                                          for m, h, p, b, s in rows))
    out = tmp_path / "out.csv"
    assert main(["predict", "--cases", str(cases), "--out", str(out)]) == 0
    for (m, h, p, b, s), r in zip(rows, csv.DictReader(open(out))):
        one = predict(trace(m, p, b, s), load_device(h))
        assert float(r["latency_s"]) == pytest.approx(one.latency_s, rel=1e-5)
        assert float(r["energy_j"]) == pytest.approx(one.energy_j, rel=1e-5)
        assert r["bound"] == one.bound and r["fits"] == str(one.fits)


def test_validate_keeps_the_good_rows_of_a_set_with_a_bad_one(tmp_path, capsys):
    """A user's measurement set with one bad row (a text time, an unknown model) stopped the whole run; now the bad
    rows get `error: line N: why` and are left out of the summary, the others are priced."""
    import json
    src = validation.DATA_DIR / "h100-sxm-2026-11-24"
    folder = tmp_path / "sets" / "mine"
    folder.mkdir(parents=True)
    (folder / "env.json").write_text((src / "env.json").read_text())
    lines = (src / "steps.csv").read_text().splitlines()
    header, good = lines[0], [l for l in lines[1:] if ",decode," in l][:2]
    cols = header.split(",")
    bad_time = dict(zip(cols, good[0].split(",")), seconds="fast")
    bad_model = dict(zip(cols, good[0].split(",")), model="no-such-model")
    text = "\n".join([header, good[0], ",".join(bad_time[c] for c in cols), good[1],
                      ",".join(bad_model[c] for c in cols)]) + "\n"
    (folder / "steps.csv").write_text(text)
    rows = validation.evaluate(folder, "h100-sxm-80gb")
    assert [r["status"].split(":")[0] for r in rows] == ["ok", "error", "ok", "error"]
    assert rows[1]["status"].startswith("error: line 3: ") and "line 5: " in rows[3]["status"]
    assert validation.summary(rows)[0]["cases"] == 2
    assert main(["validate", "--data", str(tmp_path / "sets"), "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert len(doc["sets"][0]["cases"]) == 4 and doc["sets"][0]["summary"][0]["cases"] == 2
    assert err.count("row skipped") == 2
