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
