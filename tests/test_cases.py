"""`hwsim predict --cases`: each row judged alone (its error names the file line), good rows always kept."""
import io
from contextlib import redirect_stderr

import pandas as pd
import pytest

from sim.batch_predict import predict_cases
from sim.cases import read_cases
from sim.cli import main

HEADER = "model,hardware,phase,batch,seq_len,dtype,tag\n"


def run(tmp_path, text, *extra, name="in.csv", out="out.csv"):
    """(exit code, stderr, output rows) of predict --cases on `text` (str or bytes)."""
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["predict", "--cases", str(path), "--out", str(tmp_path / out), *extra])
    rows = None
    if code == 0:
        target = tmp_path / out
        rows = (pd.read_parquet(target) if out.endswith(".parquet")
                else pd.read_csv(target, dtype=str, keep_default_na=False)).to_dict("records")
    return code, err.getvalue(), rows


def one_line_exit_2(code, err, words):
    assert code == 2 and words in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_rows_get_an_error_status_and_good_rows_are_kept(tmp_path):
    code, err, rows = run(tmp_path, HEADER +
                          "gpt2,h100,prefill,1,128,bf16,a\n"          # line 2: ok
                          "gpt2,h100,decode,abc,128,bf16,b\n"         # line 3
                          "gpt2,h100,decode,1e3,128,bf16,c\n"         # line 4
                          "gpt2,h100,decode,4\n"                      # line 5: too few fields
                          "gpt2,h100,decode,4,100,bf16,d,surplus\n"   # line 6: too many fields
                          "no-such-model,h100,decode,1,128,bf16,e\n"  # line 7
                          "gpt2,h1000,decode,1,128,bf16,f\n"          # line 8
                          "gpt2,h100,sideways,1,128,bf16,g\n"         # line 9
                          "gpt2,h100,decode,2,64,fp16,h\n")           # line 10: ok
    assert code == 0, err
    status = [r["status"] for r in rows]
    assert status[0] == "ok" and status[-1] == "ok"
    assert float(rows[0]["latency_s"]) > 0 and float(rows[-1]["latency_s"]) > 0
    expected = ["line 3: batch must be a positive whole number, got 'abc'", "line 4: batch must be a positive whole "
                "number, got '1e3' (write 1000)", "line 5: 4 fields but the header has 7", "line 6: 8 fields but the "
                "header has 7", "line 7: unknown model preset", "line 8: unknown hardware", "line 9: unknown phase"]
    for got, words in zip(status[1:-1], expected):
        assert got.startswith("error: ") and words in got, got
    assert all(r["latency_s"] == "" for r in rows[1:-1])
    assert "7 with errors" in err


def test_bom_crlf_and_spaces_after_commas(tmp_path):
    text = "\ufeffmodel, hardware, phase, batch, seq_len\r\ngpt2, h100, decode, 2, 64\r\n\r\ngpt2 , h100 ,prefill, 1, 32\r\n"
    code, err, rows = run(tmp_path, text.encode("utf-8"))
    assert code == 0, err
    assert [r["status"] for r in rows] == ["ok", "ok"] and list(rows[0])[:5] == ["model", "hardware", "phase",
                                                                                "batch", "seq_len"]


def test_line_numbers_count_quoted_newlines(tmp_path):
    code, err, rows = run(tmp_path, HEADER + 'gpt2,h100,decode,1,64,bf16,"two\nlines"\ngpt2,h100,decode,x,64,bf16,z\n')
    assert rows[0]["status"] == "ok" and rows[0]["tag"] == "two\nlines"
    assert rows[1]["status"].startswith("error: line 4:")


def test_not_utf8_says_so(tmp_path):
    code, err, _ = run(tmp_path, (HEADER + "gpt2,h100,decode,1,64,bf16,caf\xe9\n").encode("latin-1"))
    one_line_exit_2(code, err, "is not UTF-8 text (byte 0xe9 on line 2); save it as CSV UTF-8")


@pytest.mark.parametrize("text, words", [
    ("model,hardware,phase,batch,batch,seq_len\ngpt2,h100,decode,1,2,64\n", "column 'batch' appears twice"),
    ("model,hardware,Phase,batch,PHASE,seq_len\ngpt2,h100,decode,1,decode,64\n", "column 'phase' appears twice"),
    ("model,hardware,batch\ngpt2,h100,1\n", "lacks column(s) phase, seq_len"),
    ("", "is empty"),
    ("\n\n", "is empty"),
    (HEADER, "has a header but no rows"),
])
def test_bad_files_are_one_line_exit_2(tmp_path, text, words):
    code, err, _ = run(tmp_path, text)
    one_line_exit_2(code, err, words)
    assert not (tmp_path / "out.csv").exists()


def test_rows_that_do_not_fit_report_no_latency(tmp_path):
    code, err, rows = run(tmp_path, HEADER + "llama-3.1-405b,h100,decode,1,2048,bf16,big\n"
                                             "llama-3.1-8b,h100,decode,1,128,fp8,also\n")
    assert code == 0
    r = rows[0]
    assert r["status"].startswith("does not fit in device memory: needs ") and "h100-sxm-80gb has 85.9 GB" in r["status"]
    assert r["fits"] == "False" and float(r["memory_gb"]) > 800
    assert r["latency_s"] == r["energy_j"] == r["tokens_per_s"] == r["avg_power_w"] == ""
    assert rows[1]["status"] == "ok"


def test_extra_columns_are_carried_and_old_results_replaced(tmp_path):
    """An output fed back in as input: the result columns are recomputed, the user's columns kept in order."""
    code, _, rows = run(tmp_path, "id,model,hardware,phase,batch,seq_len,latency_s,status,note\n"
                                  "7,gpt2,h100,decode,1,64,999,stale,keep me\n")
    assert code == 0
    assert list(rows[0])[:6] == ["id", "model", "hardware", "phase", "batch", "seq_len"]
    assert rows[0]["id"] == "7" and rows[0]["note"] == "keep me" and rows[0]["status"] == "ok"
    assert float(rows[0]["latency_s"]) != 999


def test_optional_columns(tmp_path):
    code, _, rows = run(tmp_path, "model,hardware,phase,batch,seq_len,quant,group_size,context,kv_dtype\n"
                                  "gpt2,h100,chunked_prefill,1,32,w4a16,64,100,fp8\n"
                                  "gpt2,h100,prefill,1,32,,,100,\n"
                                  "gpt2,h100,decode,1,32,w8a16,64,,\n")
    assert rows[0]["status"] == "ok"
    assert rows[1]["status"].startswith("error: line 3:") and "context" in rows[1]["status"]
    assert rows[2]["status"].startswith("error: line 4:") and "group size" in rows[2]["status"]


def test_device_whose_yaml_divides_by_zero_fails_only_its_rows(tmp_path):
    import yaml

    from hw_models.presets import PRESET_DIR
    raw = yaml.safe_load((PRESET_DIR / "h100-sxm-80gb.yaml").read_text())
    raw["calibration"]["params"]["bw_eff"] = 0.0
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    code, _, rows = run(tmp_path, HEADER + f"gpt2,{bad},decode,1,64,bf16,a\ngpt2,h100,decode,1,64,bf16,b\n")
    assert code == 0
    assert rows[0]["status"].startswith("error: line 2:") and "bw_eff" in rows[0]["status"]
    assert rows[1]["status"] == "ok"


def test_unexpected_failure_of_one_row_keeps_the_others(tmp_path, monkeypatch):
    import sim.batch_predict as bp
    real = bp.predict

    def flaky(graph, device, profile="eager"):
        if graph.meta["batch"] == 3:
            raise ZeroDivisionError("float division by zero")
        return real(graph, device, profile)
    monkeypatch.setattr(bp, "predict", flaky)
    code, _, rows = run(tmp_path, HEADER + "gpt2,h100,decode,3,64,fp16,a\ngpt2,h100,decode,2,64,fp16,b\n")
    assert code == 0
    assert rows[0]["status"] == ("error: line 2: internal error (ZeroDivisionError: float division by zero); "
                                 "please report it")
    assert rows[1]["status"] == "ok"


@pytest.mark.parametrize("flags", [["--model", "gpt2"], ["--hardware", "h100"], ["--batch", "8"],
                                   ["--phase", "decode"], ["--quant", "w8a16"], ["--json"]])
def test_flags_that_do_not_apply_with_cases(tmp_path, flags):
    code, err, _ = run(tmp_path, HEADER + "gpt2,h100,decode,1,64,bf16,a\n", *flags)
    one_line_exit_2(code, err, "not apply with --cases")


def test_parquet_out_and_in(tmp_path):
    code, _, rows = run(tmp_path, HEADER + "gpt2,h100,decode,2,64,bf16,a\ngpt2,h100,decode,x,64,bf16,b\n",
                        out="out.parquet")
    assert code == 0
    assert isinstance(rows[0]["latency_s"], float) and rows[0]["latency_s"] > 0 and rows[0]["fits"] is True
    assert pd.isna(rows[1]["latency_s"]) and rows[1]["status"].startswith("error: line 3:")
    frame = pd.DataFrame({"model": ["gpt2", "gpt2"], "hardware": ["h100"] * 2, "phase": ["decode"] * 2,
                          "batch": [2, 0], "seq_len": [64.0, 64.0], "tag": ["p", "q"]})
    frame.to_parquet(tmp_path / "in.parquet")
    cases = read_cases(tmp_path / "in.parquet")
    out = predict_cases(cases)
    assert list(out["status"]) == ["ok", "error: row 2: batch must be positive, got 0"]
    assert list(out["tag"]) == ["p", "q"]


def test_batch_path_equals_one_by_one_with_context(tmp_path):
    """chunked_prefill rows keep their context on the array (template) path."""
    code, _, rows = run(tmp_path, "model,hardware,phase,batch,seq_len,context\n"
                                  "llama-3.1-8b,h100,chunked_prefill,2,64,1000\n"
                                  "llama-3.1-8b,h100,chunked_prefill,2,64,0\n")
    from hw_models import load_device
    from sim.predict import predict
    from workloads import trace
    for r, context in zip(rows, (1000, 0)):
        one = predict(trace("llama-3.1-8b", "chunked_prefill", 2, 64, context), load_device("h100"))
        assert float(r["latency_s"]) == pytest.approx(one.latency_s, rel=1e-5)


def test_old_mac_line_ends_and_a_lone_cr_in_a_cell(tmp_path):
    """Lines are counted as editors count them (a lone CR is a line break), found by the cases fuzz test."""
    code, err, rows = run(tmp_path, "model,hardware,phase,batch,seq_len,tag\rgpt2,h100,decode,1,64,a\r"
                                    "gpt2,h100,decode,x,64,b\r")
    assert [r["status"][:14] for r in rows] == ["ok", "error: line 3:"]
    code, err, rows = run(tmp_path, 'model,hardware,phase,batch,seq_len,tag\n,,,,,"\r"\ngpt2,h100,decode,1,64,keep\n'
                                    "gpt2,h100,decode,x,64,b\n")
    assert [r["tag"] for r in rows] == ["keep", "b"] and rows[1]["status"].startswith("error: line 5:")


def test_user_columns_named_like_ours(tmp_path):
    """A user's own `error` or `where` column is carried through like any other; hwsim's are reserved."""
    code, _, rows = run(tmp_path, "model,hardware,phase,batch,seq_len,where,error\ngpt2,h100,decode,1,64,here,none\n")
    assert rows[0]["where"] == "here" and rows[0]["error"] == "none" and rows[0]["status"] == "ok"
    code, err, _ = run(tmp_path, "model,hardware,phase,batch,seq_len,_where\ngpt2,h100,decode,1,64,x\n")
    one_line_exit_2(code, err, "column name '_where' is reserved")


def test_profile_column_prices_each_row_with_its_stack(tmp_path):
    """A `profile` column was carried through as an unknown column and ignored: rows labelled vllm or eager-launch
    were priced with --profile's eager stack (found running `predict --cases` with a profile per row). Now each row
    takes its own stack, a bad one is that row's error, and the output names every row's profile."""
    code, _, rows = run(tmp_path, "model,hardware,phase,batch,seq_len,profile\n"
                                  "llama-3.1-8b,h100,decode,32,2048,eager\n"
                                  "llama-3.1-8b,h100,decode,32,2048,vllm\n"
                                  "llama-3.1-8b,h100,decode,32,2048,eager-launch\n"
                                  "llama-3.1-8b,h100,decode,32,2048,nosuch\n"
                                  "llama-3.1-8b,h100,decode,32,2048,\n", "--profile", "vllm")
    assert code == 0 and [r["status"] for r in rows[:3]] == ["ok"] * 3
    eager, vllm, launch = (float(r["latency_s"]) for r in rows[:3])
    assert vllm < eager < launch
    assert rows[3]["status"].startswith("error: line 5: unknown software profile 'nosuch'")
    assert rows[4]["profile"] == "vllm" and float(rows[4]["latency_s"]) == vllm      # blank cell: --profile
    code, _, rows = run(tmp_path, HEADER + "gpt2,h100,decode,1,64,bf16,a\n", "--profile", "fused")
    assert rows[0]["profile"] == "fused" and rows[0]["status"] == "ok"


def test_host_options_follow_the_rows_profiles(tmp_path):
    """With a profile column, --first-pass and --host were still judged against --profile (default eager) and the
    whole file was refused though its rows run eager-launch; found pricing host-issued rows from a cases file."""
    text = ("model,hardware,phase,batch,seq_len,profile\nllama-3.1-8b,h100,decode,4,512,eager-launch\n"
            "llama-3.1-8b,h100,decode,4,512,vllm\n")
    code, _, rows = run(tmp_path, text, "--host", "h100-lent-host", "--host-speed", "2")
    assert code == 0 and [r["status"] for r in rows] == ["ok", "ok"]
    code, _, rows = run(tmp_path, text, "--first-pass")
    assert code == 0 and rows[0]["status"] == "ok" and "first_pass applies to host-issued" in rows[1]["status"]
    code, err, _ = run(tmp_path, HEADER + "gpt2,h100,decode,1,64,bf16,a\n", "--host", "h100-lent-host")
    one_line_exit_2(code, err, "--host/--host-speed apply to host-issued profiles")


def test_context_warning_names_its_row(tmp_path):
    """A row past max_position_embeddings printed 'warning: 200001 positions exceed ...' with no row, so in a file of
    thousands of rows the user could not tell which; found running a cases file with a long-context row."""
    code, err, rows = run(tmp_path, HEADER.replace("dtype,tag", "tag") + "llama-3.1-8b,h100,decode,1,64,a\n"
                                                                          "llama-3.1-8b,h100,decode,1,200000,b\n")
    assert code == 0 and [r["status"] for r in rows] == ["ok", "ok"]
    assert "warning: line 3: 200001 positions exceed max_position_embeddings" in err


@pytest.mark.parametrize("extra, words", [
    (["--profile", "eager-launch", "--host", "no/such/host.yaml"], "host file 'no/such/host.yaml' not found"),
    (["--profile", "hf-generate", "--host", "nosuchhost"], "unknown host 'nosuchhost'"),
])
def test_a_bad_host_option_stops_the_cases_run_before_any_row(tmp_path, extra, words):
    """Found by hand (walk18): `--cases F --out O --host missing.yaml` wrote O with the same host error in every row's
    status and exit 0; --host applies to every row, so it is the command's error: one line, exit 2, nothing written."""
    code, err, _ = run(tmp_path, HEADER + "gpt2,h100,decode,1,64,bf16,a\n", *extra)
    one_line_exit_2(code, err, words)
    assert not (tmp_path / "out.csv").exists()


def test_out_naming_the_cases_file_itself_is_refused(tmp_path):
    """Found by hand (walk18): `--cases in.csv --out in.csv` replaced the cases with the results."""
    text = HEADER + "gpt2,h100,decode,1,64,bf16,a\n"
    code, err, _ = run(tmp_path, text, out="in.csv")
    one_line_exit_2(code, err, "is the --cases file itself")
    assert (tmp_path / "in.csv").read_text() == text
    (tmp_path / "link.csv").symlink_to(tmp_path / "in.csv")
    code, err, _ = run(tmp_path, text, out="link.csv")
    one_line_exit_2(code, err, "is the --cases file itself")
    assert (tmp_path / "in.csv").read_text() == text


def test_a_negative_whole_number_gets_no_spelling_hint(tmp_path):
    """Found by hand (walk18): seq_len -5 got "must be a positive whole number, got '-5' (write -5)", a hint to
    write what was written; the hint is for a whole number spelt as a float (2.0, 1e3) in range."""
    code, err, rows = run(tmp_path, HEADER + "gpt2,h100,decode,1,-5,bf16,a\ngpt2,h100,decode,1,64.0,bf16,b\n")
    assert code == 0
    assert rows[0]["status"] == "error: line 2: seq_len must be a positive whole number, got '-5'"
    assert rows[1]["status"].endswith("got '64.0' (write 64)")


def test_a_slow_run_reports_its_rate_not_zero_cases_per_second(tmp_path, monkeypatch):
    """Found by hand (walk18): one --impl hf row whose first trace took over a second reported '(0 cases/s)'."""
    import types

    import sim.cli.predict_cmd as cmd
    ticks = iter([100.0, 102.5])
    monkeypatch.setattr(cmd, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))
    code, err, _ = run(tmp_path, HEADER + "gpt2,h100,decode,1,64,bf16,a\n")
    assert code == 0 and "(0.4 cases/s)" in err


# Parquet output kept every input column as text (batch '2', seq_len '64'), so a reader had to cast them back
def test_parquet_out_keeps_numeric_input_columns_numeric_and_text_as_text(tmp_path):
    import pandas.api.types as pt
    code, err, _ = run(tmp_path, "model,hardware,phase,batch,seq_len,tag,weight,mixed\n"
                                 "gpt2,h100,decode,2,64,a,0.5,1\n"
                                 "gpt2,h100,decode,4,128,b,,x\n", out="out.parquet")
    assert code == 0, err
    back = pd.read_parquet(tmp_path / "out.parquet")
    assert pt.is_integer_dtype(back["batch"]) and list(back["batch"]) == [2, 4]
    assert pt.is_integer_dtype(back["seq_len"]) and list(back["seq_len"]) == [64, 128]
    assert pt.is_float_dtype(back["weight"]) and back["weight"][0] == 0.5 and pd.isna(back["weight"][1])
    for col in ("model", "tag", "mixed", "status"):            # text, and a column with a value that is not a number
        assert not pt.is_numeric_dtype(back[col]), col
    assert list(back["mixed"]) == ["1", "x"] and list(back["tag"]) == ["a", "b"]
