"""Bad input found by probing every command as a new user would: each is one line naming what is wrong, exit
code 2 and no traceback (crashes, accepted nonsense, flags that do not apply); and the wrong figures fixed."""
import json

import pytest
import yaml

from hw_models import load_device
from hw_models.presets import PRESET_DIR
from hw_models.systems import SYSTEM_DIR, load_system
from sim.cli import main
from workloads.errors import HwsimError


def cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_exit_2(result, words):
    code, out, err = result
    assert code == 2, (code, err)
    assert words in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "internal error" not in err


def preset(name="h100-sxm-80gb.yaml"):
    return yaml.safe_load((PRESET_DIR / name).read_text())


def write(tmp_path, raw, name="bad.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw) if not isinstance(raw, str) else raw)
    return str(path)


# --- crashes ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, words", [
    (["roofline", "--model", "gpt2", "--hardware", "h100", "--phases", ","], "--phases names no phase"),
    (["roofline", "--model", "gpt2", "--hardware", "h100", "--phases", "prefill,bogus"], "unknown phase 'bogus'"),
    (["roofline", "--model", "gpt2", "--hardware", "h100", "--phase", "decode"], "use --phases decode"),
    (["warm", "--phases", "bogus"], "unknown phase 'bogus'"),
])
def test_phase_lists(capsys, tmp_path, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    one_line_exit_2(cli(capsys, *argv), words)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mutate, words", [
    (lambda d: d["engines"]["tensor"].update(memory="sram"), "engines.tensor.memory names 'sram', which is not a memory level"),
    (lambda d: d["calibration"]["params"].update(bw_eff=0.0), "bw_eff is an efficiency: it must be above 0"),
    (lambda d: d["calibration"]["params"].update(bw_eff=-0.5), "bw_eff is an efficiency"),
    (lambda d: d["calibration"]["params"].update(mm_eff=1.7), "mm_eff is an efficiency"),
    (lambda d: d["calibration"]["params"].update(kernel_floor_us=-2.0), "kernel_floor_us must not be negative"),
    # finite but overflowing: energy per byte x 1e308 was an infinite energy (tests/test_fuzz.py found it)
    (lambda d: d["calibration"]["params"].update(e_cat_rel=1e308), "e_cat_rel = 1e+308 is far beyond any hardware"),
    (lambda d: d["calibration"]["params"].update(e_byte_pj=float("nan")), "e_byte_pj: input should be a finite number"),
    (lambda d: d["power"]["extra"].update(max_clock_mhz=float("inf")), "max_clock_mhz: input should be a finite number"),
    (lambda d: d.update(engines={}), "engines: dictionary should have at least 1 item"),
    (lambda d: d.update(memory={}), "memory: dictionary should have at least 1 item"),
    (lambda d: d["power"].update(idle_w={"value": 900, "source": "x"}), "idle_w (900 W) is above tdp_w (700 W)"),
    (lambda d: d["power"].update(min_clock_mhz={"value": 5000, "source": "x"}), "min_clock_mhz (5000) is above"),
    (lambda d: d["memory"]["hbm"].update(bandwidth_gbps={"value": float("inf"), "source": "x"}), "finite number"),
    (lambda d: d.update(sources=["a", "b"]), "'sources' must map short keys to source texts"),
    (lambda d: d["sources"].update(ds=12), "sources.ds must be a non-empty text"),
])
def test_device_yaml_nonsense_is_refused(tmp_path, capsys, mutate, words):
    raw = preset()
    mutate(raw)
    path = write(tmp_path, raw)
    with pytest.raises(HwsimError) as err:
        load_device(path)
    assert words in str(err.value) and "\n" not in str(err.value)
    one_line_exit_2(cli(capsys, "predict", "--model", "gpt2", "--hardware", path), words)


def test_tile_on_a_device_whose_engine_names_no_memory(tmp_path, capsys):
    raw = preset("tpu-v4.yaml")
    engine = next(k for k, e in raw["engines"].items() if e.get("array_rows"))
    raw["engines"][engine]["memory"] = "nowhere"
    one_line_exit_2(cli(capsys, "tile", "--hardware", write(tmp_path, raw), "--m", "64", "--n", "64", "--k", "64"),
                    f"engines.{engine}.memory names 'nowhere'")


@pytest.mark.parametrize("mutate, words", [
    (lambda d: d.update(sources=["not", "a", "mapping"]), "'sources' must map short keys"),
    (lambda d: d.update(sources="text"), "'sources' must map short keys"),
    (lambda d: d.update(sources={"nccl": None}), "sources.nccl must be a non-empty text"),
    (lambda d: d.update(devices={}), "devices: dictionary should have at least 1 item"),
    (lambda d: next(iter(d["links"].values())).update(connects=["gpu", "tpu"]), "names 'tpu', which is not a device group"),
    (lambda d: next(iter(d["links"].values())).update(connects=["gpu"]), "must name two device groups"),
    (lambda d: next(iter(d["devices"].values())).update(preset="h1000"), "unknown hardware 'h1000'"),
])
def test_system_yaml_nonsense_is_refused(tmp_path, capsys, mutate, words):
    raw = yaml.safe_load((SYSTEM_DIR / "dgx-h100.yaml").read_text())
    mutate(raw)
    path = write(tmp_path, raw, "sys.yaml")
    with pytest.raises(HwsimError) as err:
        load_system(path)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_system_yaml_not_utf8(tmp_path):
    path = tmp_path / "sys.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(HwsimError, match="cannot read"):
        load_system(str(path))


# --- accepted nonsense -----------------------------------------------------------------------------

@pytest.mark.parametrize("extra, words", [
    (["--bytes", "-2"], "argument --bytes: must be a positive number, got '-2'"),
    (["--bytes", "0"], "argument --bytes"),
    (["--buffer-mb", "nan"], "argument --buffer-mb: must be a positive number, got 'nan'"),
    (["--buffer-mb", "inf"], "argument --buffer-mb"),
    (["--time-limit", "-1"], "argument --time-limit: must be a number of 0 or more"),
    (["--time-limit", "nan"], "argument --time-limit"),
])
def test_tile_numbers(capsys, extra, words):
    with pytest.raises(SystemExit) as exit_:
        main(["tile", "--hardware", "tpu-v4", "--m", "64", "--n", "64", "--k", "64", *extra])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and words in err and len(err.strip().splitlines()) == 1


def test_tiling_search_refuses_nonsense_from_python():
    from hw_models.tiling import search
    for kwargs in ({"element_bytes": -2}, {"buffer_bytes": float("nan")}, {"time_limit_s": -1}):
        args = dict(m=64, n=64, k=64, rows=8, cols=8, arrays=1, clock_hz=1e9, bandwidth=1e11, buffer_bytes=1e6)
        with pytest.raises(HwsimError):
            search(**{**args, **kwargs})


@pytest.mark.parametrize("argv, words", [
    (["simulate", "--model", "gpt2", "--system", "dgx-h100", "--mapping", "tp:"], "mapping 'tp:': nothing after ':'"),
    (["simulate", "--model", "gpt2", "--system", "dgx-h100", "--mapping", "tp:2,pp:"], "mapping 'pp:'"),
    (["simulate", "--model", "gpt2", "--system", "h100-host-offload", "--mapping", "offload:"], "e.g. offload:0.5"),
    (["graph", "--model", "gpt2", "--phase", "prefill", "--context", "100"], "context applies to chunked_prefill only"),
    (["predict", "--model", "gpt2", "--hardware", "h100", "--phase", "decode", "--context", "64"],
     "for decode, --seq-len is the cached context"),
    (["graph", "--model", "gpt2", "--group-size", "64"], "a group size applies only to grouped quantization"),
    (["graph", "--model", "gpt2", "--quant", "w8a8", "--group-size", "64"], "drop it for quant 'w8a8'"),
    (["graph", "--model", "gpt2", "--dtype", "fp8", "--quant", "w8a16"], "quant 'w8a16' keeps 16-bit activations"),
    (["graph", "--model", "gpt2", "--dtype", "fp32", "--quant", "w4a16"], "but dtype is fp32"),
    (["predict", "--cases", "x.csv", "--model", "gpt2"], "--model does not apply with --cases"),
    (["predict", "--model", "gpt2", "--hardware", "h100", "--out", "r.csv"], "one case is written as JSON"),
    (["graph", "--model", "gpt2", "--by", "layer", "--json"], "--by layer shapes the table"),
    (["models", "--family", "llamma"], "no model preset of family 'llamma'; the families are"),
])
def test_nonsense_is_refused(capsys, argv, words):
    one_line_exit_2(cli(capsys, *argv), words)


def test_grouped_quant_keeps_its_group_size(capsys):
    assert cli(capsys, "graph", "--model", "gpt2", "--quant", "w4a16", "--group-size", "64", "--json")[0] == 0


def test_unknown_class(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["hardware", "--class", "quantum"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "invalid choice: 'quantum'" in err


# --- wrong figures ---------------------------------------------------------------------------------

def test_data_parallel_tokens_per_s_counts_every_replica(capsys):
    base = ["simulate", "--model", "llama-3.1-8b", "--system", "dgx-h100", "--phase", "decode", "--batch", "8",
            "--seq-len", "1024", "--json", "--mapping"]
    one = json.loads(cli(capsys, *base, "tp:4")[1])["result"]
    two = json.loads(cli(capsys, *base, "tp:4,dp:2")[1])["result"]
    assert one["tokens"] == 8 and one["tokens_per_s"] == pytest.approx(8 / one["latency_s"])
    assert two["tokens"] == 16 and two["tokens_per_s"] == pytest.approx(2 * one["tokens_per_s"], rel=1e-6)
    assert two["energy_j"] == pytest.approx(2 * one["energy_j"], rel=1e-6)
    text = cli(capsys, *base[:-2], "--mapping", "tp:4,dp:2")[1]
    assert f"({two['tokens_per_s']:,.0f} tokens/s)" in text


def test_system_may_be_a_device_preset_file(capsys):
    path = str(PRESET_DIR / "h100-sxm-80gb.yaml")
    by_file = json.loads(cli(capsys, "simulate", "--model", "gpt2", "--system", path, "--json")[1])["result"]
    by_id = json.loads(cli(capsys, "simulate", "--model", "gpt2", "--system", "h100", "--json")[1])["result"]
    assert by_file["latency_s"] == by_id["latency_s"] and by_file["devices"] == 1
