"""The Azure LLM inference traces 2024 (week-long, not shipped): the loader of a downloaded copy, read through a format
fixture. tests/data/azure-2024-format.csv is a dozen rows written by hand in the 2024 column format (TIMESTAMP with
and without fractional seconds, UTC offset; ContextTokens; GeneratedTokens, one of them 0); it is not trace data."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workloads import azure2024
from workloads.errors import HwsimError

FIXTURE = Path(__file__).resolve().parent / "data" / "azure-2024-format.csv"


def test_reads_the_2024_format():
    df = azure2024.read(str(FIXTURE))
    assert len(df) == 12 and df.arrival_s.iloc[0] == 0.0 and np.all(np.diff(df.arrival_s) >= 0)
    assert df.arrival_s.iloc[2] == pytest.approx(1.0 - 0.00993)          # a stamp without fractional seconds
    assert df.arrival_s.iloc[-1] == pytest.approx(2 * 86400 - 0.00993 - 1e-6, abs=1e-5)
    assert df.prompt_tokens.iloc[0] == 2048 and df.output_tokens.min() == 1   # GeneratedTokens 0 served as 1 token


def test_named_trace_found_in_hwsim_traces_else_one_line_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HWSIM_TRACES", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(HwsimError) as e:
        azure2024.locate("azure-conv-2024")
    msg = str(e.value)
    assert "\n" not in msg and "AzureLLMInferenceTrace_conv_1week.csv" in msg and "blob.core.windows.net" in msg
    (tmp_path / "AzureLLMInferenceTrace_conv_1week.csv").write_text(FIXTURE.read_text())
    from workloads.requests import read_trace
    df = read_trace("azure-conv-2024")
    assert len(df) == 12 and list(df.prompt_tokens[:2]) == [2048, 731]


@pytest.mark.parametrize("text,msg", [("TIMESTAMP,ContextTokens\n2024-05-10 00:00:00+00:00,5\n", "GeneratedTokens"),
                                      ("TIMESTAMP,ContextTokens,GeneratedTokens\nnot a date,5,3\n", "row 2"),
                                      ("TIMESTAMP,ContextTokens,GeneratedTokens\n2024-05-10 00:00:00+00:00,-5,3\n",
                                       "row 2")])
def test_bad_files_are_one_line_errors(tmp_path, text, msg):
    p = tmp_path / "t.csv"
    p.write_text(text)
    with pytest.raises(HwsimError, match=msg) as e:
        azure2024.read(str(p))
    assert "\n" not in str(e.value)


def test_the_week_trace_gives_the_load_shape_over_days():
    """peak_rps is the busiest hour of the trace: its first hour (5 requests in 4 s, with the last request of the
    tiled trace 6 in the hour around t = 0); at 06:30 one request is in the hour around it, so 1/6 of the peak."""
    from sim.cluster.load import LoadShape, rate
    shape = LoadShape(trace=str(FIXTURE), peak_rps=3.0, burst_scale=0.0).check()
    t = np.arange(0.0, 2 * 86400.0 + 1, 1.0)            # the trace's span, whole seconds (172801 of them)
    r = rate(shape, t)
    assert r.max() == pytest.approx(3.0) and r[0] == pytest.approx(3.0)
    assert rate(shape, [23410.0])[0] == pytest.approx(3.0 / 6)
    bursty = rate(shape.with_(burst_scale=1.0), t)
    assert bursty.max() > 3.0 and bursty.mean() == pytest.approx(r.mean(), rel=1e-6)   # bursts move load, add none


def _cli(argv, capsys):
    from sim.cli import main
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_power_cli_runs_a_2024_format_file_and_refuses_a_missing_name(capsys, tmp_path, monkeypatch):
    import json
    argv = ["power", "--row", "servers=2,budget=2x", "--server", "h100", "--model", "llama-3.1-8b", "--mapping",
            "single", "--peak-rps", "2", "--hours", "0.02", "--policy", "none", "--json", "--trace", str(FIXTURE)]
    rc, out, err = _cli(argv, capsys)
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["result"]["row"]["high_load"]["trace"] == str(FIXTURE)
    monkeypatch.setenv("HWSIM_TRACES", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    rc, out, err = _cli(argv[:-1] + ["azure-2024"], capsys)
    assert rc == 2 and "not shipped" in err and len(err.strip().splitlines()) == 1
