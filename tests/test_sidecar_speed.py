"""benchmarks/host/sidecar_speed.py: a case's host slowdown from the sidecar's samples during its decode against
those during the probe, and the TPOT hwsim predicts with the host slowed by it; benchmarks/gpu/host_sidecar.py's
samples."""
import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "host"))
sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))
SRC = ROOT / "benchmarks/gpu/data/h100-2026-12-07-lease17-hf-generate-p4096"


def _folder(tmp_path, slow=2.0):
    """One measured case (qwen1.5-1.8b 1x4096) with a sidecar that read `slow` x the probe's op time during it."""
    f = tmp_path / "set"
    f.mkdir()
    for name in ("env.json", "host-before.yaml", "steps.jsonl"):
        shutil.copy(SRC / name, f / name)
    g = pd.read_csv(SRC / "generate.csv")
    g[(g.config == "qwen1.5-1.8b.json") & (g.batch == 1)].to_csv(f / "generate.csv", index=False)
    rows = [(100.0 + 0.1 * i, 40.0, 1000.0) for i in range(50)]             # during the probe
    rows += [(200.0 + 0.1 * i, 40.0 * slow, 1000.0 * slow) for i in range(30)]   # during the case's decode
    rows += [(150.0, 400.0, 9000.0)]                                          # outside every window: ignored
    pd.DataFrame(rows, columns=["wall_time", "py_call_ns", "torch_op_ns"]).to_csv(f / "sidecar.csv", index=False)
    with open(f / "windows.jsonl", "w") as w:
        w.write(json.dumps({"what": "probe-before", "t0": 99.0, "t1": 106.0}) + "\n")
        w.write(json.dumps({"what": "decode", "t0": 199.9, "t1": 203.5, "config": "qwen1.5-1.8b.json",
                            "batch": 1, "prompt": 4096}) + "\n")
    return f


def test_case_slowdown_is_the_sidecar_reading_during_the_case_over_the_probe(tmp_path):
    import sidecar_speed as ss
    s = ss.case_speeds(str(_folder(tmp_path, slow=2.0)))
    assert len(s) == 1 and s.slowdown.iloc[0] == pytest.approx(2.0) and s.py_slowdown.iloc[0] == pytest.approx(2.0)
    assert s.samples.iloc[0] == 30


def test_a_slower_host_during_the_case_predicts_a_slower_host_bound_step(tmp_path):
    import sidecar_speed as ss
    f = _folder(tmp_path, slow=2.0)
    t = ss.tpot_rows(str(f), str(f / "host-before.yaml"), ss.case_speeds(str(f)), "h100")
    r = t.iloc[0]
    # qwen1.5-1.8b 1x4096 decode is host-bound: twice the host time is close to twice the step
    assert r.err_sidecar > r.err_probe and (1 + r.err_sidecar) / (1 + r.err_probe) == pytest.approx(2.0, rel=0.15)
    (tmp_path / "b").mkdir()
    steady = ss.case_speeds(str(_folder(tmp_path / "b", slow=1.0)))          # the host as probed: no change
    same = ss.tpot_rows(str(f), str(f / "host-before.yaml"), steady, "h100")
    assert same.err_sidecar.iloc[0] == pytest.approx(same.err_probe.iloc[0])


def test_a_folder_without_sidecar_data_is_refused_in_one_line(tmp_path, capsys):
    import sidecar_speed as ss
    assert ss.main(["--data", str(SRC)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "sidecar.csv" in err and "--sidecar" in err


def test_sidecar_writes_samples_until_its_time_is_up(tmp_path):
    import host_sidecar
    out = tmp_path / "s.csv"
    assert host_sidecar.main(["--out", str(out), "--period", "0.02", "--calls", "50", "--max-s", "0.2",
                              "--no-torch"]) == 0
    s = pd.read_csv(out)
    assert list(s.columns) == ["wall_time", "py_call_ns", "torch_op_ns"] and len(s) >= 3
    assert (s.py_call_ns > 0).all() and s.torch_op_ns.isna().all()
    assert host_sidecar.main(["--out", str(out), "--period", "0"]) == 2
