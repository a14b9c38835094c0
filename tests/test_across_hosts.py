"""benchmarks/host/across_hosts.py: issue 18's across-host comparison of two leases' HF generate() data."""
import importlib.util
import os

import pandas as pd
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _script():
    spec = importlib.util.spec_from_file_location(
        "across_hosts", os.path.join(ROOT, "benchmarks", "host", "across_hosts.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_compare_keeps_shared_cases_and_prices_the_ratio_between_leases():
    """Only cases both leases ran are compared; each lease's error is its own prediction over its own measurement,
    and the ratio error is the predicted a/b ratio over the measured one (a lease twice as slow, predicted 1.5x:
    -25%); architectures are split into calibration and held-out as hf_generate_accuracy.py splits them."""
    m = _script()
    a = pd.DataFrame({"model": ["mistral-7b", "llama-3.1-8b", "falcon-7b"], "batch": [1, 1, 8],
                      "prompt": [128, 128, 2048], "measured_s": [0.040, 0.020, 0.05],
                      "predicted_s": [0.030, 0.022, 0.05]})
    b = pd.DataFrame({"model": ["mistral-7b", "llama-3.1-8b"], "batch": [1, 1], "prompt": [128, 128],
                      "measured_s": [0.020, 0.020], "predicted_s": [0.020, 0.020]})
    c = m.compare(a, b).set_index("model")
    assert list(c.index) == ["mistral-7b", "llama-3.1-8b"]
    assert c.loc["mistral-7b", "ratio_measured"] == pytest.approx(2.0)
    assert c.loc["mistral-7b", "ratio_predicted"] == pytest.approx(1.5)
    assert c.loc["mistral-7b", "ratio_err"] == pytest.approx(-0.25)
    assert c.loc["mistral-7b", "err_a"] == pytest.approx(-0.25) and c.loc["llama-3.1-8b", "err_a"] == pytest.approx(0.1)
    assert c.loc["mistral-7b", "set"] == "held-out" and c.loc["llama-3.1-8b", "set"] == "calibration"


def test_a_folder_without_data_is_one_line_and_exit_2(tmp_path, capsys):
    assert _script().main(["--a", str(tmp_path), "--b", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "generate.csv" in err[0]


def test_run_steadiness_tells_a_host_that_moved_within_a_run_from_a_steady_one(tmp_path):
    """hf_generate_accuracy.run_steadiness, from steps.jsonl alone: the warm decode steps (the fifth on) of each case
    split in two halves in time order. A steady case's halves agree; a case whose later steps ran 1.5x slower (a host
    another tenant took over mid-run) differs by 50%, and one such case in two makes the data set unsteady."""
    import json
    acc = _script().acc
    steady = [0.1] + [0.020] * 63                      # prefill, then 63 decode steps at 20 ms
    moved = [0.1] + [0.020] * 34 + [0.030] * 29        # the later half at 30 ms
    folder = tmp_path / "set"
    folder.mkdir()
    with open(folder / "steps.jsonl", "w") as f:
        for i, steps in enumerate((steady, moved)):
            f.write(json.dumps({"config": "x.json", "batch": 1, "prompt": 128 * (i + 1), "steps_s": steps}) + "\n")
    st = acc.run_steadiness(str(folder))
    assert st["cases"] == 2 and st["halves_max"] == pytest.approx(0.5 / 1.5)
    assert st["halves"] == pytest.approx(0.5 / 1.5 / 2) and st["moved"] == 0.5 and not st["steady"]
    assert "UNSTEADY" in acc.steadiness_line(str(folder))
    assert acc.run_steadiness(str(tmp_path)) == {"cases": 0}          # no steps.jsonl: not judged
