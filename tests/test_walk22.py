"""A new user's pass over sweep, roofline, simulate, plan and the studies (walk22): each test fails on the code
before its fix. Bad input is one line, exit code 2, no traceback, and nothing written or replaced."""
import json
import shutil
from pathlib import Path

import pytest

import test_bad_input as bad_input
from test_bad_input import one_line_exit_2  # noqa: F401  (one line, exit 2: shared with the first pass's tests)
from workloads.zoo import ZOO_DIR

REPO = Path(__file__).resolve().parents[1]


def cli(capsys, *argv):
    return bad_input.cli(capsys, *(str(a) for a in argv))


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


# --- sweep: options that contradict or do not apply, an --out that takes no files ---------------------------

TINY = """name: tiny
axes:
  model: [gpt2]
  device: [h100]
  phase: [decode]
  batch: [1, 2]
  seq_len: [64]
"""


def _study(tmp_path, text=TINY, name="tiny.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("extra, words", [
    (["--dask", "--scheduler", "tcp://127.0.0.1:1"], "--dask starts a local Dask cluster and --scheduler joins"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "drop --workers"),
    (["--search", "tpe", "--workers", "2"], "--workers apply to grid sweeps"),
    (["--search", "nsga2", "--dask"], "--dask apply to grid sweeps"),
    (["--budget", "50"], "--budget apply to --search only"),
    (["--seed", "3"], "--seed apply to --search only"),
])
def test_sweep_options_that_contradict_or_do_not_apply(capsys, tmp_path, extra, words):
    """--dask with --scheduler waited 20 s on the address, --workers beside --scheduler or --search and
    --budget/--seed without --search were silently ignored."""
    study = _study(tmp_path)
    out = tmp_path / "out"
    one_line_exit_2(cli(capsys, "sweep", study, "--out", out, "--quiet", *extra), words)
    assert not out.exists()


def test_sweep_out_in_a_folder_that_takes_no_files(capsys, tmp_path):
    """--out under /proc was an internal error (exit 70) after the study was loaded."""
    one_line_exit_2(cli(capsys, "sweep", _study(tmp_path), "--out", "/proc/hwsim-sweep-out", "--quiet"),
                    "cannot write --out /proc/hwsim-sweep-out")


@pytest.mark.parametrize("tail, words", [
    ("  context: {low: abc, high: 100}\n", "axis context: Range low must be a number, got 'abc'"),
    ("  context: {low: 1, high: 100, steps: 0}\n", "Range steps must be a whole number of at least 1"),
    ("constraints: fits\n", "constraints must be a list"),
    ("zip: [batch, seq_len]\n", "zip must be a list of axis groups"),
    ("axes: [model]\n", "axes must be a mapping"),
])
def test_yaml_study_fields_of_the_wrong_type(capsys, tmp_path, tail, words):
    """A Range bound YAML reads as text was an internal error (TypeError comparing str and int); steps: 0 said
    'no points'; constraints given as one string and zip as a flat list were split into letters ('constraint
    'f' must be ...', 'zip names axes ... s, e, q')."""
    text = TINY.replace("axes:\n", "") if tail.startswith("axes:") else TINY
    text = text + tail if not tail.startswith("axes:") else "name: tiny\n" + tail
    study = _study(tmp_path, text)
    one_line_exit_2(cli(capsys, "sweep", study, "--out", tmp_path / "out", "--quiet"), words)
    assert not (tmp_path / "out").exists()


def test_yaml_range_bound_written_1e3_is_a_number(tmp_path):
    """YAML 1.1 reads 1e3 as the text '1e3'; a Range takes it as the number it means."""
    from sim.dse.study import load_study
    study = load_study(str(_study(tmp_path, TINY + "  context: {low: 1e1, high: 1e3, steps: 3}\n")))
    assert study.axes["context"].low == 10.0 and study.axes["context"].high == 1000.0


def test_npu_area_cost_search_as_documented_prints_its_findings(capsys, tmp_path):
    """docs/sweep.md's `hwsim sweep studies/npu_area_cost.py --search nsga2 --budget 400` failed in the study's
    findings (IndexError: TPU v4's own configuration was not among the sampled points) after writing results."""
    code, out, err = cli(capsys, "sweep", REPO / "studies" / "npu_area_cost.py", "--search", "nsga2", "--budget", "40",
                         "--out", tmp_path / "out", "--quiet")
    assert code == 0, err
    assert "TPU v4's configuration was not among the evaluated points" in out
    assert "NOT CHECKED" in out and "cheapest per token" in out


# --- plan ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("option, value, words", [
    ("--tp", "1,1", "--tp names 1 more than once"),
    ("--systems", "h100,h100", "--systems names h100 more than once"),
    ("--schedulers", "vllm,sarathi,vllm", "--schedulers names vllm more than once"),
])
def test_plan_refuses_a_repeated_candidate(capsys, option, value, words):
    """--tp 1,1 (or a system or scheduler named twice) searched each identical deployment again and ranked the
    copies as separate rows."""
    argv = {"--systems": "h100", "--tp": "1", "--schedulers": "vllm"}
    argv[option] = value
    one_line_exit_2(cli(capsys, "plan", "--model", "gpt2", "--rate", "1", "--slo", "ttft_p99=2", "--requests", "20",
                        *[x for kv in argv.items() for x in kv]), words)


# --- roofline -----------------------------------------------------------------------------------------------

def test_roofline_refuses_one_device_named_twice(capsys, tmp_path):
    """--hardware h100,h100-sxm-80gb (an alias and its preset) drew the same device twice, side by side."""
    one_line_exit_2(cli(capsys, "roofline", "--model", "gpt2", "--hardware", "h100,h100-sxm-80gb", "--out-dir",
                        tmp_path / "r"), "--hardware names h100-sxm-80gb more than once")
    assert not (tmp_path / "r").exists()


def test_simulate_doc_lists_every_mapping_in_its_order():
    """docs/simulate.md gave the combining order without `cp` (context parallelism), which `hwsim mappings` lists."""
    from mapping.registry import ORDER
    doc = (REPO / "docs" / "simulate.md").read_text()
    assert f"They combine in the order `{', '.join(ORDER)}`" in doc
    assert "`cp:N`" in doc


def test_roofline_help_examples_run(capsys, tmp_path, monkeypatch):
    """Two of `hwsim roofline --help`'s examples failed as shipped: Mixtral-8x7B in bf16 (93.5 GB) on an 80 GB A100,
    and Llama-3.1-70B fp8 at batch 16 x 4,096 (105 GB) on the H100 ('needs ... but h100-sxm-80gb has 85.9GB')."""
    import shlex

    from sim.cli import roofline_cmd
    monkeypatch.chdir(REPO)                  # the --module example names a file under tests/
    lines = [ln.strip() for ln in roofline_cmd.EXAMPLES.splitlines() if ln.strip().startswith("hwsim roofline")]
    assert len(lines) >= 3
    for line in lines:
        argv = shlex.split(line.split("#")[0])[1:]
        if "--out-dir" in argv:
            argv[argv.index("--out-dir") + 1] = str(tmp_path / "reports")
        else:
            argv += ["--out-dir", str(tmp_path / "reports")]
        code, out, err = cli(capsys, *argv)
        assert code == 0, (line, err)


@pytest.mark.parametrize("argv, words", [
    (["sweep", "{dir}"], "is a folder; pass a .py or .yaml study file"),
    (["simulate", "--model", "gpt2", "--system", "{dir}"], "is a folder; pass a system id"),
    (["predict", "--model", "gpt2", "--hardware", "{dir}"], "is a folder; pass a preset id"),
])
def test_a_folder_where_a_file_is_expected_is_named_as_such(capsys, tmp_path, argv, words):
    """A folder given as the study, system or device file was reported as 'not found', though it exists."""
    one_line_exit_2(cli(capsys, *[a.replace("{dir}", str(tmp_path)) for a in argv]), words)


def test_search_with_force_over_a_grid_sweep_discards_its_parts(capsys, tmp_path):
    """`--search ... --force` into a folder holding a grid sweep replaced results.parquet and study.json but kept the
    grid's parts/, so the folder mixed two runs."""
    study, out = _study(tmp_path), tmp_path / "out"
    assert cli(capsys, "sweep", study, "--out", out, "--quiet", "--workers", "1")[0] == 0
    assert list((out / "parts").glob("part-*.parquet"))
    code, _, err = cli(capsys, "sweep", study, "--out", out, "--quiet", "--search", "random", "--budget", "4",
                       "--force")
    assert code == 0, err
    assert not list((out / "parts").glob("part-*.parquet"))
    assert json.loads((out / "study.json").read_text())["search"] == "random"


def test_roofline_writes_nothing_when_its_html_cannot_be_written(capsys, tmp_path):
    """The PNG was written before the HTML was checked: a folder in the HTML's place left a fresh PNG behind."""
    out = tmp_path / "r"
    (out / "roofline-gpt2.html").mkdir(parents=True)
    one_line_exit_2(cli(capsys, "roofline", "--model", "gpt2", "--hardware", "h100", "--out-dir", out),
                    "it is a folder")
    assert not (out / "roofline-gpt2.png").exists()
