"""`hwsim serve` / `hwsim plan`: tables, JSON, output files, one-line errors with exit code 2 (in process)."""
import json

import pandas as pd
import pytest

from sim.cli import main

BASE = ["serve", "--model", "llama-3.1-8b", "--system", "h100", "--max-model-len", "2048"]


def test_serve_prints_summary_and_writes_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(BASE + ["--rate", "4", "--requests", "120", "--dataset", "sharegpt", "--slo", "ttft_p99=2,tpot_p99=0.1",
                        "--out", str(out), "--format", "csv"]) == 0
    text = capsys.readouterr().out
    assert "TTFT" in text and "req/s" in text and "SLO" in text
    req = pd.read_csv(out / "requests.csv")
    assert len(req) == 120 and {"ttft_s", "tpot_s", "e2e_s", "energy_j", "rejected"} <= set(req.columns)
    doc = json.loads((out / "summary.json").read_text())
    assert doc["summary"]["completed"] == 120 and doc["hwsim_version"]
    trace = json.loads((out / "trace.json").read_text())
    assert any(e.get("ph") == "X" for e in trace["traceEvents"]) and any(e.get("ph") == "C" for e in trace["traceEvents"])
    assert "data:image/png;base64," in (out / "report.html").read_text()


def test_serve_json_parquet(tmp_path, capsys):
    assert main(BASE + ["--rate", "2", "--requests", "40", "--input-len", "300", "--output-len", "50",
                        "--scheduler", "sarathi", "--json", "--out", str(tmp_path / "p")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["completed"] == 40 and doc["inputs"]["scheduler"] == "sarathi"
    assert len(pd.read_parquet(tmp_path / "p" / "requests.parquet")) == 40


def test_static_table(capsys):
    assert main(BASE + ["--static", "--batch", "1,8", "--input-len", "128", "--output-len", "32", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["static"]
    assert len(rows) == 2 and rows[1]["output_tokens_per_s"] > rows[0]["output_tokens_per_s"]


def test_find_max_rate(capsys):
    assert main(BASE + ["--requests", "150", "--dataset", "fixed:500:100", "--find-max-rate",
                        "--slo", "ttft_p99=0.5,tpot_p99=0.05", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["max_rate"] > 0
    met = [p for p in doc["sweep"] if p["slo_met"]]
    assert max(p["rate"] for p in met) == doc["max_rate"]
    assert all(not p["slo_met"] for p in doc["sweep"] if p["rate"] > doc["max_rate"])


def test_disaggregated_run(capsys):
    assert main(["serve", "--model", "llama-3.1-8b", "--system", "dgx-h100", "--max-model-len", "2048",
                 "--prefill-replicas", "1", "--decode-replicas", "1", "--rate", "3", "--requests", "60", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)["summary"]
    assert s["completed"] == 60 and s["kv_transfer_s_mean"] > 0 and s["devices"] == 2


@pytest.mark.parametrize("args,msg", [
    (["--rate", "0"], "--rate must be positive"),
    (["--rate", "-2"], "--rate must be positive"),
    (["--rate", "1", "--scheduler", "nope"], "unknown scheduler"),
    (["--rate", "1", "--router", "nope"], "unknown router"),
    (["--rate", "1", "--slo", "ttft=abc"], "not a number"),
    (["--rate", "1", "--dataset", "nope"], "unknown length source"),
    (["--rate", "1", "--mapping", "tp:2,pp:2,mb:4"], "one batch in flight"),
    (["--requests", "10"], "give --rate"),
    (["--rate", "1", "--gpu-memory-utilization", "1.5"], "utilization"),
    (["--find-max-rate", "--rate", "1"], "needs --slo"),
    # a falsy 0 fell back to the default, -5 blocks ran with -80 tokens of KV, NaN memory and a negative seed were
    # exit 70 (found trying 0, negative and NaN in each serve option)
    (["--rate", "1", "--kv-blocks", "0"], "error: --kv-blocks must be a whole number >= 1"),
    (["--rate", "1", "--kv-blocks", "-5"], "error: --kv-blocks must be a whole number >= 1"),
    (["--rate", "1", "--device-memory-gib", "nan"], "error: --device-memory-gib must be a positive number"),
    (["--rate", "1", "--device-memory-gib", "0"], "error: --device-memory-gib must be a positive number"),
    (["--rate", "1", "--scheduler", "static", "--batch-timeout", "nan"], "error: --batch-timeout must be a number >= 0"),
    (["--rate", "1", "--max-model-len", "0"], "error: --max-model-len must be a whole number >= 1"),
    # Pool errors name the Python field (max_seqs); serve says the flag that set it, and only the flag
    (["--rate", "1", "--max-seqs", "0"], "error: --max-seqs must be a whole number >= 1, got 0"),
    (["--rate", "1", "--max-batched-tokens", "-3"], "error: --max-batched-tokens must be a whole number >= 1"),
    (["--rate", "1", "--block-size", "0"], "error: --block-size must be a whole number >= 1, got 0"),
    (["--rate", "1", "--power-cap", "-5"], "error: --power-cap must be a positive number"),
    (["--rate", "1", "--mapping", "dp:2"], "give --replicas 2 with the mapping of one replica"),
    (["--rate", "1", "--prefill-replicas", "0", "--decode-replicas", "1"], "--prefill-replicas must be positive"),
    (["--rate", "1", "--seed", "-1"], "--seed must be a whole number >= 0"),
    (["--rate", "1", "--trace", "azure-conv-2023", "--max-requests", "0"], "--max-requests must be positive"),
    # disaggregation: a NaN KV link deadlocked the prefill pool (exit 70), 0/-1 GB/s ran; its options were ignored
    # without --prefill-replicas, and --replicas with it (found exercising docs/serving.md's disaggregation)
    (["--rate", "1", "--prefill-replicas", "1", "--decode-replicas", "1", "--kv-link-gbps", "nan"], "positive GB/s"),
    (["--rate", "1", "--prefill-replicas", "1", "--decode-replicas", "1", "--kv-link-gbps", "-1"], "positive GB/s"),
    (["--rate", "1", "--decode-system", "h200"], "--decode-system applies to prefill/decode disaggregation"),
    (["--rate", "1", "--kv-link-gbps", "5"], "--kv-link-gbps applies to prefill/decode disaggregation"),
    (["--rate", "1", "--prefill-replicas", "1", "--decode-replicas", "1", "--replicas", "3"], "drop --replicas"),
    # options that were silently ignored: --cv without gamma arrivals, --batch without --static, --input-len 10,20
    # served as 10, --format without --out, --max-requests without a trace, --arrival and --dataset beside a --trace
    # (found running serve with each request option alone)
    (["--rate", "1", "--cv", "3"], "--cv shapes --arrival gamma"),
    (["--rate", "1", "--batch-timeout", "2"], "--batch-timeout is the static scheduler's wait"),
    (["--rate", "1", "--batch", "4"], "--batch sizes the batches of --static"),
    (["--rate", "1", "--input-len", "10,20", "--output-len", "5"], "are for --static"),
    (["--rate", "1", "--format", "csv"], "--format is the table format of --out"),
    (["--rate", "1", "--max-requests", "3"], "--max-requests keeps the first N requests of a --trace"),
    (["--rate", "1", "--system-prompts", "3"], "--system-prompts counts the prompts of --system-prompt"),
    (["--trace", "azure-conv-2023", "--arrival", "gamma"], "--trace replays the trace's own"),
    (["--trace", "azure-conv-2023", "--dataset", "sharegpt"], "--trace and --dataset each give the requests"),
    # --static ran one replica and ignored these (found adding serving options to --static runs)
    (["--static", "--batch", "1", "--input-len", "64", "--output-len", "8", "--replicas", "3"], "not apply to --static"),
    (["--static", "--batch", "1", "--input-len", "64", "--output-len", "8", "--rate", "3"], "not apply to --static"),
    (["--static", "--batch", "1", "--input-len", "64", "--output-len", "8", "--slo", "ttft_p99=1"],
     "not apply to --static"),
    # past the context: --static printed a row of NaN (exit 0), a serving run served 2047 + 1 tokens a request
    (["--static", "--batch", "1", "--input-len", "100000", "--output-len", "5"],
     "static batch 1 of 100000 + 5 tokens: its requests cannot be served (prompt + output = 100005 tokens exceed"),
    (["--rate", "1", "--input-len", "100000", "--output-len", "5"], "exceed the 2,048-token context"),
])
def test_bad_input_is_one_line_exit_2(args, msg, capsys):
    assert main(BASE + args) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


def test_model_that_does_not_fit_and_bad_trace(tmp_path, capsys):
    assert main(["serve", "--model", "llama-3.1-70b", "--system", "h100", "--rate", "1", "--max-model-len", "2048"]) == 2
    assert "does not fit" in capsys.readouterr().err
    bad = tmp_path / "t.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(BASE + ["--trace", str(bad)]) == 2
    assert "prompt-length column" in capsys.readouterr().err


def test_plan_ranks_by_cost(capsys):
    assert main(["plan", "--model", "llama-3.1-8b", "--dataset", "fixed:400:80", "--requests", "120", "--rate", "6",
                 "--slo", "ttft_p99=1,tpot_p99=0.05", "--systems", "h100,h20", "--tp", "1", "--schedulers", "sarathi",
                 "--max-model-len", "2048", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["plan"]
    assert [r["rank"] for r in rows] == [1, 2]
    costs = [r["usd_per_hour"] for r in rows if r["usd_per_hour"] is not None]
    assert len(costs) == 2 and costs == sorted(costs)
    assert all(r["max_rate_per_replica"] > 0 and r["replicas"] >= 1 for r in rows)


@pytest.mark.parametrize("args,msg", [
    (["--model", "mixtral-8x7b", "--system", "dgx-h100", "--mapping", "tp:2,ep:2"], "on its own"),
    (["--model", "mistral-7b", "--system", "h100", "--prefix-caching", "--max-model-len", "8192"], "prefix caching"),
    (["--model", "deepseek-v2-lite", "--system", "dgx-h100", "--mapping", "ep:3"], "does not divide"),
])
def test_moe_and_window_refusals_are_one_line_exit_2(args, msg, capsys):
    assert main(["serve", "--rate", "1", "--requests", "5", "--max-model-len", "2048"] + args) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


def test_max_rate_search_that_never_breaks_the_slo_is_an_error_not_a_rate():
    """With too few requests to load the deployment the SLO held at every rate tried and `--find-max-rate` printed
    8,388,608 requests/s (plan ranked it as 1,048,576 per replica); found running serve --find-max-rate with 50
    requests. Now one line says the run is too short."""
    from types import SimpleNamespace

    from sim.serving.search import find_max_rate
    from workloads import requests as rq
    from workloads.errors import HwsimError
    reqs = rq.frame([0.0, 1.0, 2.0], [100] * 3, [20] * 3)
    always = lambda df: SimpleNamespace(summary={"slo_met": True, "rejected": 0, "throughput_rps": 5.0})  # noqa: E731
    with pytest.raises(HwsimError, match="SLO holds at every rate tried.*3 requests.*use more requests"):
        find_max_rate(reqs, always, {"ttft_p99": 1.0})


def test_text_outputs_name_the_stack(capsys):
    """predict, simulate and serve printed their results without the software stack they modelled (only --json
    said it); found comparing --profile runs side by side."""
    assert main(["predict", "--model", "gpt2", "--hardware", "h100", "--phase", "decode", "--seq-len", "64",
                 "--profile", "sglang"]) == 0
    assert "stack sglang" in capsys.readouterr().out.splitlines()[0]
    assert main(["simulate", "--model", "gpt2", "--system", "dgx-h100", "--mapping", "tp:2", "--phase", "decode",
                 "--seq-len", "64", "--profile", "fused"]) == 0
    assert "stack fused" in capsys.readouterr().out.splitlines()[0]
    assert main(BASE + ["--rate", "2", "--requests", "10", "--dataset", "fixed:100:10", "--profile", "vllm"]) == 0
    assert "stack vllm" in capsys.readouterr().out.splitlines()[0]
    assert main(BASE + ["--static", "--batch", "1", "--input-len", "64", "--output-len", "8"]) == 0
    assert "stack fused" in capsys.readouterr().out.splitlines()[0]


def test_out_folder_under_a_file_is_checked_before_the_run(tmp_path, capsys):
    """`serve --out FILE/sub` (and power's) ran the whole simulation and then died with exit 70 (NotADirectoryError)
    at mkdir; serve checked --out only after the run, and --static ignored --out. Found trying --out paths that
    cannot be folders. Now one line, exit 2, before any work."""
    from sim.serving import search
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    ran = []
    real = search.static_table
    search.static_table = lambda *a, **k: ran.append(1) or real(*a, **k)
    try:
        for out in (blocker / "sub", blocker):
            assert main(BASE + ["--rate", "1", "--requests", "5", "--out", str(out)]) == 2
            err = capsys.readouterr().err
            assert "is not a folder" in err and err.count("\n") == 1
        assert main(BASE + ["--static", "--batch", "1", "--input-len", "16", "--output-len", "4",
                            "--out", str(tmp_path / "run")]) == 2
        assert "--static prints a table" in capsys.readouterr().err and not ran
    finally:
        search.static_table = real
    assert main(["power", "--hours", "0.01", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert "is not a folder" in err and err.count("\n") == 1
    assert blocker.read_text() == "x"


@pytest.mark.parametrize("extra,msg", [
    (["--systems", "nosuch"], "unknown system 'nosuch'"), (["--systems", ""], "--systems names none"),
    (["--systems", "h100", "--schedulers", "foo"], "unknown scheduler 'foo'"),
    (["--systems", "h100", "--rate", "0"], "--rate must be positive"),
    (["--systems", "h100", "--max-model-len", "0"], "--max-model-len must be a whole number >= 1"),
])
def test_plan_bad_names_are_one_line_exit_2(extra, msg, capsys):
    """plan turned an unknown system or scheduler into a table row whose note held the error and exited 0 (an empty
    --systems printed an empty table; --rate 0 said --rate was missing). Found running plan with typos."""
    assert main(["plan", "--model", "llama-3.1-8b", "--dataset", "fixed:200:50", "--requests", "20", "--rate", "2",
                 "--slo", "ttft_p99=1", "--max-model-len", "2048"] + extra) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


def test_max_model_len_beyond_the_model_warns_once(capsys):
    """serve --max-model-len past the model's positions was clipped to them without a word (falcon-7b: 4096 ran at
    2048); found serving falcon-7b with a longer --max-model-len. Now one warning line, once per run."""
    assert main(["serve", "--model", "falcon-7b", "--system", "h100", "--rate", "1", "--requests", "5",
                 "--dataset", "fixed:100:10", "--max-model-len", "4099"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: --max-model-len 4099 exceeds falcon-7b's 2048 positions") == 1


def test_vllm_long_context_warning_says_the_flags(capsys):
    """The library's warning names chunked=False and max_context (Python); serve says --no-chunked and
    --max-model-len."""
    assert main(["serve", "--model", "llama-3.1-8b", "--system", "h100", "--rate", "1", "--requests", "3",
                 "--dataset", "fixed:100:10", "--max-model-len", "40000"]) == 0
    err = capsys.readouterr().err
    assert "; --no-chunked or --max-model-len 32768 for whole-prompt prefills" in err and "max_context" not in err


def test_rate_on_a_trace_whose_requests_arrive_at_once_says_so(tmp_path, capsys):
    """serve --trace FILE --rate R on a trace whose requests share one arrival time said 'a rate search needs
    requests that arrive over time', though no search was asked for; found replaying a hand-made trace."""
    trace = tmp_path / "same.csv"
    trace.write_text("arrival_s,prompt_len,output_len\n0,100,20\n0,50,20\n")
    assert main(BASE + ["--trace", str(trace), "--rate", "2"]) == 2
    err = capsys.readouterr().err
    assert "--rate rescales the arrivals of --trace" in err and "drop --rate" in err and err.count("\n") == 1


@pytest.mark.filterwarnings("error::UserWarning")
def test_report_of_a_run_that_rejects_every_request_prints_no_warning(tmp_path, capsys):
    """With every request rejected (--kv-blocks too small) --out printed matplotlib's two-line 'No artists with
    labels found to put in legend' UserWarning; found writing the report of a run with no iterations."""
    assert main(BASE + ["--rate", "20", "--requests", "3", "--dataset", "fixed:500:200", "--kv-blocks", "20",
                        "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr()
    assert "3 rejected" in out.out and "Warning" not in out.err and out.err == ""
    assert (tmp_path / "run" / "report.html").stat().st_size > 0


def test_trace_rows_that_cannot_be_served_are_left_out_with_their_error(tmp_path, capsys):
    """A many-row input keeps its good rows: the bad ones are listed with an error status (skipped_rows.csv), the
    run names them in one warning line and serves the rest (one bad row used to stop the replay, exit 2)."""
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0,100,10\n0.5,-4,10\nx,100,10\n1.0,200,5\n")
    out = tmp_path / "o"
    assert main(["serve", "--model", "llama-3.1-8b", "--system", "h100", "--trace", str(trace), "--max-model-len",
                 "4096", "--out", str(out), "--format", "csv"]) == 0
    err = capsys.readouterr().err
    assert "2 row(s) left out (row 2: column prompt_tokens holds -4" in err
    skipped = pd.read_csv(out / "skipped_rows.csv")
    assert skipped.row.tolist() == [2, 3] and skipped.status.str.startswith("error: ").all()
    assert len(pd.read_csv(out / "requests.csv")) == 2
    assert json.loads((out / "summary.json").read_text())["inputs"]["trace_rows_left_out"] == 2
