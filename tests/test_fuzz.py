"""Property-based probing as a new user would (issue 13): random, mostly wrong arguments to every command,
random cases-file rows, and random edits of device and system YAML files never give a traceback. Each bad
input is one line naming what is wrong with exit code 2; inside a cases file the bad row gets an error
status naming its line and the good rows keep their results.

HWSIM_FUZZ_EXAMPLES raises the number of examples per test (default 25) for a deeper run.
"""
import io
import json
import math
import os
import random
import re
import shutil
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hw_models import load_device
from hw_models.presets import PRESET_DIR
from hw_models.systems import SYSTEM_DIR, load_system
from sim.batch_predict import predict_cases
from sim.cases import WHERE, read_cases
from sim.cli import main
from workloads.errors import HwsimError

EXAMPLES = int(os.environ.get("HWSIM_FUZZ_EXAMPLES", "25"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

NASTY = ["", " ", ",", ",,", ":", "-1", "0", "nan", "inf", "-inf", "1e3", "1.5", "abc", "99999999999999999999",
         "é", "x" * 200, "$HOME", "../..", "%s", "1,2", "-"]
INTS = ["1", "2", "7", "64", "0", "-3", "1e3", "abc", "", "4096", "99999999999999999999"]
SIZES = (["1", "2", "7", "64", "300"], ["0", "-3", "1e3", "abc", "", "4096", "99999999999999999999"])

# folders and files every example may point at (made once: a few good, most not)
WORK = Path(tempfile.mkdtemp(prefix="hwsim-fuzz-"))
(WORK / "file").write_text("")
(WORK / "bad.json").write_text("{not json")
(WORK / "empty.csv").write_text("")
(WORK / "cases.csv").write_text("model,hardware,phase,batch,seq_len\ngpt2,h100,decode,2,64\ngpt2,h100,decode,x,64\n")
(WORK / "tiny-moe").mkdir()
(WORK / "tiny-moe" / "config.json").write_text(json.dumps({
    "model_type": "mixtral", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
    "num_hidden_layers": 2, "intermediate_size": 96, "vocab_size": 128, "max_position_embeddings": 4096,
    "num_local_experts": 4, "num_experts_per_tok": 2}))
(WORK / "no-steps").mkdir()
OUT = ([str(WORK / "out" / "o.json"), str(WORK / "o.json"), str(WORK / "o.parquet")],
       [str(WORK / "missing" / "o.json"), str(WORK), str(WORK / "file" / "o.json"), ""])

# option -> (sensible values, wrong values); None for a flag
WORKLOAD = {
    "--model": (["gpt2", "llama-3.1-8b", str(WORK / "tiny-moe")],
                ["no-such-model", str(WORK / "bad.json"), str(WORK / "missing.json"), ""]),
    "--phase": (["prefill", "decode", "chunked_prefill"], ["bogus"]),
    "--batch": SIZES, "--seq-len": SIZES, "--context": (["0", "16", "100"], ["-1", "x"]),
    "--dtype": (["bf16", "fp16", "fp32", "fp8"], ["int3"]),
    "--quant": (["none", "w8a16", "w4a16", "w8a8", "fp8", "ternary"], ["w9a9"]),
    "--kv-dtype": (["fp8", "int4", "bf16"], ["q"]), "--group-size": (["32", "128"], ["0", "-1", "x"]),
    "--sparsity": (["2:4"], ["1:2"]), "--drop-layers": (["0", "0,1", "1-2"], ["1-0", "a", "-1", "0-99", ","]),
    "--drop-attention": (["0", "1"], ["5-3", "x"]), "--shared-prefix": (["16", "32"], ["0", "-2", "99999"]),
    "--expert-tokens": (["4,4,4,4", "16,0,0,0"], ["", "a", "-1,3", "4"]),
}
COMMANDS = {
    "models": {"--family": (["llama", "gpt2", "mixtral", "LLAMA"], ["nope", ""]), "--json": None},
    "hardware": {"--class": (["gpu", "npu", "fpga", "GPU"], ["quantum", ""]), "--json": None},
    "systems": {"--json": None},
    "mappings": {"--json": None},
    "graph": {**WORKLOAD, "--by": (["op", "layer", "kind"], ["row"]), "--json": None, "--out": OUT},
    "predict": {**WORKLOAD, "--hardware": (["h100", "tpu-v4", "neupims-npu", "kria-kv260", "xeon-8480",
                                            str(PRESET_DIR / "a100-80gb.yaml")], ["h1000", "", str(WORK / "bad.json")]),
                "--profile": (["eager", "fused", "eager-launch"], ["x"]), "--json": None, "--out": OUT,
                "--cases": ([str(WORK / "cases.csv")], [str(WORK / "empty.csv"), str(WORK / "file"), str(WORK),
                                                       str(WORK / "missing.csv")])},
    "roofline": {**WORKLOAD, "--hardware": (["h100", "h100,h200", "tpu-v4", "h100,xeon-8480"], [",", "h1000", "h100,,x"]),
                 "--phases": (["prefill,decode", "decode", "prefill,prefill", "chunked_prefill"], [",", "bogus"]),
                 "--json": None, "--out-dir": ([str(WORK / "report"), str(WORK / "report" / "deep" / "er")],
                                               [str(WORK / "file"), str(WORK / "file" / "x")])},
    "simulate": {**WORKLOAD, "--system": (["h100", "dgx-h100", "a5000-host-offload", "kv260-board", "neupims",
                                           str(PRESET_DIR / "h100-sxm-80gb.yaml")], ["nope", str(WORK / "bad.json"), ""]),
                 "--mapping": (["single", "tp:2", "tp:8,dp:2", "pp:2,mb:2", "tp:2,pp:2", "ep:2", "offload",
                                "offload:0.5", "df11", "dataflow", "dataflow,lmhost", "cp:2", "tp:2,cp:2"],
                               ["tp:", "offload:", "tp:0", "tp:x", "single,tp:2", "tp:2,tp:2", "zz", "", "tp:64"]),
                 "--profile": (["eager", "fused", "eager-launch"], ["x"]), "--json": None, "--trace": OUT,
                 "--power-csv": OUT},
    "tile": {"--hardware": (["tpu-v4", "neupims-npu", "alveo-u280"], ["h100", "nope"]), "--m": SIZES, "--n": SIZES,
             "--k": SIZES, "--buffer-mb": (["16", "0.001", "1e9"], ["0", "-1", "nan", "inf", "abc"]),
             "--bytes": (["2", "0.5", "1"], ["-2", "0", "x"]), "--time-limit": (["0", "0.01"], ["-1", "nan", "abc"]),
             "--json": None},
    "validate": {"--data": ([str(WORK / "no-steps")], [str(WORK / "missing"), str(WORK / "file")]), "--cases": None,
                 "--json": None},
    "warm": {"--models": (["gpt2", str(WORK / "tiny-moe")], ["gpt2,no-such-model", ",", "", str(WORK / "bad.json")]),
             "--phases": (["decode", "prefill,decode"], ["bogus", ",", ""]), "--json": None},
}
ALWAYS = {"tile": ["--time-limit", "0.01"],           # a valid search stays short
          "validate": ["--data", str(WORK / "no-steps")]}  # never the full measured set (slow)
REQUIRED = {"graph": ("--model",), "roofline": ("--model", "--hardware"), "simulate": ("--model", "--system"),
            "tile": ("--hardware", "--m", "--n", "--k"), "predict": ("--model", "--hardware")}


@st.composite
def argvs(draw, command):
    """Mostly sensible command lines with now and then a wrong value, so that examples get past argument
    parsing and reach the commands' own checks, the tracer, the cost models and the output files."""
    argv = [command] + ALWAYS.get(command, [])
    for option, values in COMMANDS[command].items():
        wanted = option in REQUIRED.get(command, ()) and draw(st.integers(0, 9)) > 0
        if not wanted and draw(st.integers(0, 3)) > 0:
            continue
        if values is None:
            argv.append(option)
            continue
        good, bad = values
        pool = good if draw(st.integers(0, 9)) > 0 else bad + NASTY
        argv += [option, draw(st.sampled_from(pool))]
    if draw(st.integers(0, 19)) == 0:                # now and then an option the command does not have
        argv += [draw(st.sampled_from(["--bogus", "--batch", "--json", "-x"])), draw(st.sampled_from(INTS))]
    return argv


def run_cli(argv) -> tuple:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:                  # argparse: usage errors and --help
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def check_cli(argv):
    code, out, err = run_cli(argv)
    assert "Traceback" not in err and "internal error" not in err, (argv, err)
    assert code in (0, 2), (argv, code, err)
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "error" in lines[0], (argv, err)


@pytest.fixture(scope="module", autouse=True)
def in_work_folder():
    """Commands with default output folders (roofline) write into a temporary folder, never the checkout."""
    here = os.getcwd()
    os.chdir(WORK)
    yield
    os.chdir(here)
    shutil.rmtree(WORK, ignore_errors=True)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_cli_arguments_never_give_a_traceback(command):
    @SETTINGS
    @given(argv=argvs(command))
    def probe(argv):
        check_cli(argv)
    probe()


# --- cases files --------------------------------------------------------------------------------------

CELLS = {
    "model": ["gpt2", "llama-3.1-8b", "no-such", "", "GPT2", str(WORK / "bad.json"), "a\x00b", "é"],
    "hardware": ["h100", "H100", "a100", "tpu-v4", "h1000", "", str(WORK / "bad.json")],
    "phase": ["prefill", "decode", "chunked_prefill", "Decode", "x", ""],
    "batch": INTS + ["1.0", "+2", " 3 ", "0x10", "１"],
    "seq_len": INTS + ["128", "200000"],
    "dtype": ["bf16", "fp16", "fp8", "fp32", "", "int3"],
    "quant": ["none", "w4a16", "w8a16", "fp8", "", "q"],
    "context": ["", "0", "100", "-1", "x"],
    "group_size": ["", "64", "0", "x"],
    "tag": ["a", "", "with,comma", 'with"quote', "two\nlines", "\ufeff", "ø"],
}
GOOD = {"model": "gpt2", "hardware": "h100", "phase": "decode", "batch": "2", "seq_len": "64", "dtype": "bf16",
        "quant": "", "context": "", "group_size": "", "tag": "keep"}


def _quote(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"' if any(c in cell for c in ',"\n\r') else cell


@st.composite
def cases_files(draw):
    columns = draw(st.permutations(list(CELLS)))
    columns = [c for c in columns if c in ("model", "hardware", "phase", "batch", "seq_len") or draw(st.booleans())]
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    lines = [",".join(columns)]
    good_at = draw(st.integers(0, 5))
    good_line = None
    for i in range(6):
        if i == good_at:        # its line: line breaks so far counted as editors do (LF, CRLF or a lone CR)
            good_line = len(re.findall(r"\r\n|\r|\n", newline.join(lines) + newline)) + 1
            lines.append(",".join(_quote(GOOD[c]) for c in columns))
            continue
        cells = [draw(st.sampled_from(CELLS[c])) for c in columns]
        shape = draw(st.integers(0, 9))
        if shape == 0:
            cells = cells[:draw(st.integers(1, len(cells)))]           # too few fields
        elif shape == 1:
            cells.append(draw(st.sampled_from(CELLS["tag"])))          # too many
        elif shape == 2:
            cells = [draw(st.text(max_size=8)) for _ in columns]       # anything at all
        lines.append(",".join(_quote(c) for c in cells))
    text = newline.join(lines) + newline
    bom = draw(st.booleans())
    return ("\ufeff" if bom else "") + text, good_line


@SETTINGS
@given(case=cases_files())
def test_cases_rows_never_cost_the_good_row(case):
    text, good_line = case
    path = WORK / "fuzz.csv"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        frame = read_cases(path)
    except HwsimError as exc:                     # a problem of the file as a whole (e.g. a duplicate header)
        assert "\n" not in str(exc)
        return
    out = predict_cases(frame)
    assert not any("internal error" in s for s in out["status"]), list(out["status"])
    for where, status, latency in zip(frame[WHERE], out["status"], out["latency_s"]):
        assert status == "ok" or status.startswith(f"error: {where}: ") or status.startswith("does not fit")
        assert (status == "ok") == (latency is not None and math.isfinite(latency) and latency > 0)
    good = out[frame[WHERE] == f"line {good_line}"]
    assert len(good) == 1 and good["status"].iloc[0] == "ok", (text, list(out["status"]))
    if "tag" in out:
        assert good["tag"].iloc[0] == "keep"


# --- device and system YAML ---------------------------------------------------------------------------

VALUES = [0, -1, -0.5, 0.5, 2, 1e308, float("nan"), float("inf"), "abc", "", None, [], {}, True]


def _leaves(node, path=()):
    """Paths of every editable value (numbers, texts, lists) of a YAML tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, path + (i,))
    if path:
        yield path


def _mutate(tree, draw):
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_leaves(tree))
        path = draw(st.sampled_from(paths))
        parent = tree
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.integers(0, 5))
        if action == 0 and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == 1 and isinstance(parent, dict):
            parent["unknown_key"] = 1
        else:
            parent[path[-1]] = draw(st.sampled_from(VALUES))
    return tree


@SETTINGS
@given(data=st.data(), name=st.sampled_from(["h100-sxm-80gb", "tpu-v4", "neupims-npu", "kria-kv260", "xeon-8480"]))
def test_device_yaml_edits_never_give_a_traceback(data, name):
    from hw_models.tiling import search
    from sim.predict import predict
    from workloads import trace
    raw = _mutate(yaml.safe_load((PRESET_DIR / f"{name}.yaml").read_text()), data.draw)
    path = WORK / f"fuzz-{random.random()}.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    try:
        device = load_device(str(path))
    except HwsimError as exc:
        assert "\n" not in str(exc)
        return
    finally:
        path.unlink()
    try:
        p = predict(trace("gpt2", "decode", 2, 64), device)
    except HwsimError as exc:                  # e.g. an engine left without the dtype's rate: one line
        assert "\n" not in str(exc)
        return
    assert math.isfinite(p.latency_s) and p.latency_s > 0 and math.isfinite(p.energy_j) and p.energy_j >= 0
    engine = next((e for e in device.engines.values() if e.array_rows and e.array_cols), None)
    if engine is not None:
        bw = device.memory[engine.memory].bandwidth_gbps if engine.memory else device.main_memory.bandwidth_gbps
        try:
            r = search(64, 64, 64, engine.array_rows, engine.array_cols, engine.units, engine.clock_mhz * 1e6,
                       bw * 1e9, 16e6, 2, 0.01)
        except HwsimError:
            return
        assert r["best"].time_s > 0


@SETTINGS
@given(data=st.data(), name=st.sampled_from(["dgx-h100", "a5000-host-offload", "lamina-h100-h20", "kv260-board"]))
def test_system_yaml_edits_never_give_a_traceback(data, name):
    raw = _mutate(yaml.safe_load((SYSTEM_DIR / f"{name}.yaml").read_text()), data.draw)
    path = WORK / f"fuzz-{random.random()}.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    try:
        check_cli(["simulate", "--model", "gpt2", "--system", str(path), "--phase", "decode", "--seq-len", "64",
                   "--mapping", data.draw(st.sampled_from(["single", "tp:2", "offload", "dataflow"]))])
    finally:
        path.unlink()
