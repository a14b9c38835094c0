"""A new user's pass over sweep, roofline, simulate, plan and the studies (walk22): each test fails on the code
before its fix. Bad input is one line, exit code 2, no traceback, and nothing written or replaced."""
import json
import shutil

import pytest

from sim.cli import main
from workloads.zoo import ZOO_DIR


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_exit_2(result, words):
    code, out, err = result
    assert code == 2, (code, err)
    assert words in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "internal error" not in err


# --- simulate: an output never replaces an input ------------------------------------------------------------

def _config(tmp_path):
    path = tmp_path / "config.json"
    shutil.copy(ZOO_DIR / "gpt2.json", path)
    return path


@pytest.mark.parametrize("option", ["--trace", "--power-csv"])
def test_simulate_output_that_names_the_model_config_is_refused(capsys, tmp_path, option):
    """--trace (or --power-csv) naming the --model config.json wrote the trace over the user's config."""
    config = _config(tmp_path)
    before = config.read_bytes()
    one_line_exit_2(cli(capsys, "simulate", "--model", config, "--system", "h100", option, config),
                    "is the --model file itself")
    assert config.read_bytes() == before
    # the model given as its folder: the config.json inside is the input
    one_line_exit_2(cli(capsys, "simulate", "--model", tmp_path, "--system", "h100", option, config),
                    "is the --model file itself")
    assert config.read_bytes() == before


def test_simulate_trace_and_power_csv_on_one_file_refused(capsys, tmp_path):
    """--trace and --power-csv on one path: the power table silently replaced the trace."""
    out = tmp_path / "step.json"
    one_line_exit_2(cli(capsys, "simulate", "--model", "gpt2", "--system", "h100", "--trace", out,
                        "--power-csv", out), "--trace and --power-csv name one file")
    assert not out.exists()
