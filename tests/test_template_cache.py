"""The template cache: a file of the wrong shape, edited or swapped with another key's is rebuilt, never used;
`warm` says so when it cannot save."""
import io
import json
from contextlib import redirect_stderr, redirect_stdout

import pytest

from sim.cli import main
from workloads import capture, template, trace
from workloads.capture import load_spec
from workloads.version import __version__   # the version capture keys templates with


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HWSIM_CACHE", str(tmp_path))
    monkeypatch.setattr(capture, "_TEMPLATES", {})
    return tmp_path / "templates"


def path_of(model, phase):
    return template.cache_dir() / f"{template.key(load_spec(model), phase, __version__)}.json"


def direct(model, phase, b, s):
    return trace(model, phase, b, s, use_template=False)


def fresh_trace(model, phase, b, s):
    capture._TEMPLATES.clear()              # a new process: the cache file is read again
    return trace(model, phase, b, s)


@pytest.mark.parametrize("content", [
    lambda: "[]",
    lambda: json.dumps({"format": template.FORMAT}),
    lambda: json.dumps({"format": template.FORMAT, "phase": "decode", "monomials": ["1"], "coef": [["1"]],
                        "structure": [["meta", []]], "edges": [], "strided": {"00": []}, "layer_groups": {},
                        "meta_fixed": {}}),
    lambda: path_of("gpt2", "prefill").read_text(),          # another key's template under this key
    lambda: path_of("gpt2", "decode").read_text().replace("1", "2", 40),   # edited numbers
])
def test_bad_cache_file_is_rebuilt(cache, content):
    fresh_trace("gpt2", "prefill", 1, 8)
    fresh_trace("gpt2", "decode", 1, 8)
    bad = content()
    path_of("gpt2", "decode").write_text(bad)
    graph = fresh_trace("gpt2", "decode", 4, 300)
    want = direct("gpt2", "decode", 4, 300)
    assert graph.meta["batch"] == 4 and graph.totals() == want.totals()
    assert path_of("gpt2", "decode").read_text() != bad                        # rebuilt and saved again
    assert template.load(load_spec("gpt2"), "decode", __version__) is not None


def test_warm_refuses_an_unwritable_cache(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("HWSIM_CACHE", str(tmp_path / "file" / "cache"))
    monkeypatch.setattr(capture, "_TEMPLATES", {})
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["warm", "--models", "gpt2", "--phases", "decode"])
    assert code == 2 and "does not take files" in err.getvalue() and "HWSIM_CACHE" in err.getvalue()
    assert "ready" not in out.getvalue()


def test_warm_reports_what_it_saved(cache):
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["warm", "--models", "gpt2", "--phases", "decode"]) == 0
    assert f"1 of 1 model/phase templates ready in {cache}" in out.getvalue()


@pytest.mark.parametrize("argv, words", [
    (["warm", "--phases", "bogus"], "unknown phase 'bogus'"),
    (["warm", "--phases", ","], "names no phase"),
    (["warm", "--models", " , "], "names no model"),
    (["warm", "--models", "gpt2,no-such-model"], "unknown model preset 'no-such-model'"),
])
def test_warm_bad_arguments(cache, argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1
    assert not cache.exists()                     # nothing traced or written
