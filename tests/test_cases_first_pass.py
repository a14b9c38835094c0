"""`hwsim predict --cases` with first passes: a `first_pass` column per row, `--first-pass` as every row's default.

A first pass is a fresh process's step at attention shapes it has not run (HF generate() decode past the lengths the
process ran: torch's cuDNN SDPA builds a graph per new shape on the host). It used to be refused with --cases; each
row now says whether it is one, and the row is priced as `predict(..., first_pass=True)` prices it.
"""
import csv

import pytest

pytest.importorskip("transformers")     # first passes are HF generate()'s (--impl hf); `pip install 'hwsim[hf]'`

from sim import api
from sim.cli import main


def _write(path, rows, first_pass_column=True):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "hardware", "phase", "batch", "seq_len"] + (["first_pass"] if first_pass_column else []))
        for r in rows:
            w.writerow(r)


def _read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _one(first_pass):
    return api.predict("llama-3.1-8b", "h100", "decode", 4, 700, profile="hf-generate", impl="hf",
                       first_pass=first_pass).latency_s


def test_first_pass_column_prices_each_row_as_one_case(tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    _write(src, [("llama-3.1-8b", "h100", "decode", 4, 700, "true"), ("llama-3.1-8b", "h100", "decode", 4, 700, ""),
                 ("llama-3.1-8b", "h100", "decode", 4, 700, "no"), ("llama-3.1-8b", "h100", "decode", 4, 700, "maybe")])
    assert main(["predict", "--cases", str(src), "--profile", "hf-generate", "--impl", "hf", "--out", str(out)]) == 0
    rows = _read(out)
    first, warm = _one(True), _one(False)
    assert first > warm * 1.5                       # the cuDNN graph builds of the new shapes, on the host
    assert float(rows[0]["latency_s"]) == pytest.approx(first, rel=1e-5)
    assert float(rows[1]["latency_s"]) == pytest.approx(warm, rel=1e-5)
    assert float(rows[2]["latency_s"]) == pytest.approx(warm, rel=1e-5)
    assert rows[3]["status"].startswith("error") and "first_pass must be true or false" in rows[3]["status"]
    assert [r["status"] for r in rows[:3]] == ["ok"] * 3


def test_first_pass_flag_is_the_default_of_rows_without_the_column(tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    _write(src, [("llama-3.1-8b", "h100", "decode", 4, 700)], first_pass_column=False)
    assert main(["predict", "--cases", str(src), "--profile", "hf-generate", "--impl", "hf", "--first-pass", "--out",
                 str(out)]) == 0
    assert float(_read(out)[0]["latency_s"]) == pytest.approx(_one(True), rel=1e-5)


def test_first_pass_row_under_a_graph_profile_is_that_rows_error(tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    _write(src, [("llama-3.1-8b", "h100", "decode", 4, 700, "true"), ("llama-3.1-8b", "h100", "decode", 4, 700, "")])
    assert main(["predict", "--cases", str(src), "--profile", "eager", "--out", str(out)]) == 0
    rows = _read(out)
    assert rows[0]["status"].startswith("error") and "host-issued profiles" in rows[0]["status"]
    assert rows[1]["status"] == "ok"


def test_first_pass_flag_with_a_graph_profile_is_one_line_exit_2(tmp_path, capsys):
    src = tmp_path / "in.csv"
    _write(src, [("llama-3.1-8b", "h100", "decode", 4, 700)], first_pass_column=False)
    assert main(["predict", "--cases", str(src), "--profile", "eager", "--first-pass"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--first-pass applies to host-issued profiles" in err[0]
