"""The hwsim command: tables, JSON totals, and one-line errors with exit code 2."""
import json
import subprocess
import sys

import pytest

from sim.cli import main


def hwsim(*args):
    proc = subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


def test_models_lists_presets_with_params(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "llama-3.1-405b" in out and "406G" in out


def test_models_json(capsys):
    assert main(["models", "--json", "--family", "mixtral"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {m["name"] for m in doc["models"]} == {"mixtral-8x7b", "mixtral-8x22b"}
    assert doc["hwsim_version"]


def test_graph_json_totals(capsys):
    assert main(["graph", "--model", "llama-3.1-8b", "--phase", "decode", "--batch", "4", "--seq-len", "1000",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    totals = doc["totals"]
    for key in ("params", "flops", "weight_bytes", "activation_bytes", "kv_cache_bytes", "kv_bytes_per_token"):
        assert key in totals
    # every weight of the model is read once in decode (the embedding only for the looked-up rows)
    embed = 128256 * 4096 * 2
    assert totals["weight_bytes"] == pytest.approx(totals["params"] * 2 - embed, rel=1e-3)
    # the LM head runs on each new token
    lm_head = [op for op in doc["ops"] if op["name"] == "lm_head"][0]
    assert lm_head["flops"] == 2 * 4 * 4096 * 128256
    assert doc["inputs"]["model"] == "llama-3.1-8b"


def test_graph_prefill_lm_head_on_last_token_only(capsys):
    main(["graph", "--model", "gpt2", "--phase", "prefill", "--batch", "3", "--seq-len", "100", "--json"])
    doc = json.loads(capsys.readouterr().out)
    lm_head = [op for op in doc["ops"] if op["name"] == "lm_head"][0]
    assert lm_head["flops"] == 2 * 3 * 768 * 50257


@pytest.mark.parametrize("by", ["op", "layer", "kind"])
def test_graph_tables(capsys, by):
    assert main(["graph", "--model", "mixtral-8x7b", "--phase", "decode", "--seq-len", "512", "--by", by]) == 0
    out = capsys.readouterr().out
    assert "FLOP/B" in out and "params 46.7G" in out


def test_graph_out_file(tmp_path, capsys):
    target = tmp_path / "g.json"
    assert main(["graph", "--model", "gpt2", "--out", str(target)]) == 0
    assert json.loads(target.read_text())["totals"]["flops"] > 0


@pytest.mark.parametrize("args, words", [
    (["graph", "--model", "no-such-model"], "unknown model preset"),
    (["graph", "--model", "llama-3.1-8b", "--batch", "0"], "batch must be a positive integer"),
    (["graph", "--model", "llama-3.1-8b", "--seq-len", "-5"], "seq-len must be a positive integer"),
    (["graph", "--model", "gpt2", "--seq-len", "5000"], "exceed the maximum of 1024"),
    (["graph", "--model", "/nonexistent/config.json"], "not found"),
    (["graph", "--model", "gpt2", "--drop-layers", "40"], "does not exist"),
    (["graph", "--model", "gpt2", "--quant", "w9a9"], "invalid choice"),
    (["graph", "--model", "gpt2", "--out", "/nonexistent/dir/x.json"], "does not exist"),
    (["graph", "--model", "gpt2", "--phase", "prefill", "--shared-prefix", "4"], "shared prefix applies"),
    # bad input is refused before the context-length warning (the fuzz test once drew this: warning + error)
    (["graph", "--model", "mixtral-8x7b", "--phase", "chunked_prefill", "--seq-len", "32768", "--context", "100",
      "--expert-tokens", "4"], "expert token counts must be"),
])
def test_bad_input_one_line_exit_2(args, words):
    code, out, err = hwsim(*args)
    assert code == 2
    assert words in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("content, words", [
    ("{bad json", "not valid JSON"),
    ("[1, 2]", "must hold a JSON object"),
    ('{"model_type": "foo"}', "not supported"),
    ('{"model_type": "llama", "hidden_size": 64}', "lacks"),
    ('{"model_type": "llama", "hidden_size": "big", "num_hidden_layers": 2, "num_attention_heads": 4, '
     '"intermediate_size": 128, "vocab_size": 100, "max_position_embeddings": 64}', "must be an integer"),
    ('{"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, '
     '"num_key_value_heads": 3, "intermediate_size": 128, "vocab_size": 100, "max_position_embeddings": 64}',
     "not a multiple"),
])
def test_malformed_config_one_line_exit_2(tmp_path, content, words):
    path = tmp_path / "config.json"
    path.write_text(content)
    code, out, err = hwsim("graph", "--model", str(path))
    assert code == 2 and words in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_config_folder_is_accepted(tmp_path):
    config = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "intermediate_size": 128, "vocab_size": 100, "max_position_embeddings": 1024}
    (tmp_path / "config.json").write_text(json.dumps(config))
    code, out, err = hwsim("graph", "--model", str(tmp_path), "--json")
    assert code == 0, err
    assert json.loads(out)["totals"]["params"] > 0


def test_help_has_examples():
    for command in ("models", "graph"):
        code, out, _ = hwsim(command, "--help")
        assert code == 0 and "examples:" in out


# a config.json whose model_type hwsim has no family for was built as a Llama-style decoder without a word
@pytest.mark.parametrize("model_type, advice", [("olmo2", "use --impl hf (impl='hf') for transformers' own olmo2"),
                                                ("my-own-net", "check that its layers are Llama-style")])
def test_unknown_model_type_is_built_as_llama_with_one_warning(tmp_path, capsys, model_type, advice):
    config = {"model_type": model_type, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "intermediate_size": 128, "vocab_size": 100, "max_position_embeddings": 1024}
    (tmp_path / "config.json").write_text(json.dumps(config))
    for _ in range(2):
        assert main(["graph", "--model", str(tmp_path), "--json"]) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "warning" in ln]
    assert len(lines) == 1, err
    assert f"model_type '{model_type}' has no hwsim family, so it is built as a Llama-style decoder" in lines[0]
    assert advice in lines[0]


def test_a_known_model_type_does_not_warn(tmp_path):
    import warnings
    from workloads.capture import load_spec
    config = {"model_type": "qwen2", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "intermediate_size": 128, "vocab_size": 100, "max_position_embeddings": 1024}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_spec(str(tmp_path))


def test_unknown_options_are_named_by_their_command(capsys):
    """`hwsim power --servers 0` said "hwsim: error: unrecognized arguments" and pointed at `hwsim --help`."""
    from sim.cli import main
    with pytest.raises(SystemExit) as exc:
        main(["power", "--servers", "0"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "hwsim power --help" in err
    assert err.startswith("hwsim power: error: unrecognized arguments: --servers 0")
    with pytest.raises(SystemExit) as exc:
        main(["--bogus"])
    assert exc.value.code == 2 and capsys.readouterr().err.startswith("hwsim: error: unrecognized arguments: --bogus")
