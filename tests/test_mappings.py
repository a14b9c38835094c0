"""Mappings as one execution layer: the import graph runs one way, every pair of mapping options either runs
with conserved devices and link bytes or is refused in one line, config-path models work with every mapping,
and the new mapping (cp:N) is one file."""
import ast
import contextlib
import io
import itertools
import json
from pathlib import Path

import pytest

from hw_models.collectives import bytes_on_links
from hw_models.systems import load_system
from mapping import map_graph
from sim.cli import main
from sim.engine import simulate
from workloads.errors import HwsimError
from workloads.recipe import build_workload

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["workloads", "hw_models", "mapping", "sim", "studies"]      # data flows left to right only
ZOO = ROOT / "workloads" / "zoo"


def _imports(path: Path) -> set:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_imports_run_one_way():
    back = []
    for k, package in enumerate(LAYERS):
        for path in (ROOT / package).rglob("*.py"):
            for name in _imports(path) & set(LAYERS[k + 1:]):
                back.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not back, back


OPTIONS = ["single", "tp:2", "cp:2", "ep:2", "pp:2", "mb:2", "df11", "offload", "offload-overlap", "dp:2",
           "dataflow", "lmhost"]


def _case(pair):
    names = {p.split(":")[0] for p in pair}
    if names & {"dataflow", "lmhost"}:
        return ["--model", "llama-2-7b", "--quant", "w4a16", "--system", "u280-host", "--seq-len", "256"]
    if names & {"offload", "offload-overlap", "df11"}:
        return ["--model", "llama-3.1-8b", "--system", "h100-host-offload", "--seq-len", "256"]
    if "ep" in names:
        return ["--model", "mixtral-8x7b", "--system", "dgx-h100", "--seq-len", "256"]
    return ["--model", "llama-3.1-8b", "--system", "dgx-h100", "--seq-len", "256"]


def _cli(args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("pair", list(itertools.combinations(OPTIONS, 2)), ids=lambda p: ",".join(p))
def test_every_pair_runs_conserved_or_is_refused_in_one_line(pair):
    args = _case(pair) + ["--phase", "prefill", "--batch", "4", "--mapping", ",".join(pair)]
    code, out, err = _cli(["simulate", *args, "--json"])
    if code != 0:
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        return
    result = json.loads(out)["result"]
    opts = dict(zip(args[::2], args[1::2]))
    system = load_system(opts["--system"])
    graph = build_workload(opts["--model"], "prefill", 4, 256, quant=opts.get("--quant", "none"))
    tg = map_graph(graph, system, ",".join(pair))
    lanes = [l for l in tg.lanes.values() if l.kind == "device"]
    assert result["devices"] == sum(l.count for l in lanes)
    members = {m for l in lanes for m in l.members}
    assert len(members) == sum(len(l.members) for l in lanes)                # no device used twice
    sent = {}
    for n in tg.nodes:
        count = tg.lanes[n.lane].count
        if n.kind == "collective":
            sent[n.link] = sent.get(n.link, 0) + bytes_on_links(n.collective, n.nbytes, n.participants) \
                * n.participants * n.repeat * count
        elif n.kind == "transfer":
            sent[n.link] = sent.get(n.link, 0) + n.nbytes * n.repeat * count
    for link, nbytes in result["link_bytes"].items():
        assert nbytes == pytest.approx(sent.get(link, 0.0), rel=1e-9, abs=1e-6), link


def test_df11_with_tensor_parallelism_is_refused():
    code, _, err = _cli(["simulate", "--model", "llama-3.1-8b", "--system", "dgx-h100", "--mapping", "tp:2,df11",
                         "--phase", "decode", "--batch", "8"])
    assert code == 2 and "df11 cannot follow tp" in err


def _folder(tmp_path, name, preset, **changes):
    config = json.loads((ZOO / f"{preset}.json").read_text())
    config.update(changes)
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


@pytest.mark.parametrize("system,mapping,preset,phase", [
    ("dgx-h100", "tp:2", "llama-3.1-8b", "decode"), ("dgx-h100", "tp:2,pp:2", "llama-3.1-8b", "prefill"),
    ("dgx-h100", "cp:4", "llama-3.1-8b", "prefill"), ("dgx-h100", "ep:2", "mixtral-8x7b", "decode"),
    ("h100-host-offload", "df11,offload:0.5", "llama-3.1-8b", "decode"), ("dgx-h100", "tp:2,dp:2", "llama-3.1-8b",
                                                                           "decode")])
def test_a_config_path_model_works_with_every_mapping(tmp_path, system, mapping, preset, phase):
    path = _folder(tmp_path, "my-llama", preset)
    code, out, err = _cli(["simulate", "--model", path, "--system", system, "--mapping", mapping, "--phase", phase,
                           "--batch", "4", "--seq-len", "512", "--json"])
    assert code == 0, err
    code, ref, _ = _cli(["simulate", "--model", preset, "--system", system, "--mapping", mapping, "--phase", phase,
                         "--batch", "4", "--seq-len", "512", "--json"])
    assert json.loads(out)["result"]["latency_s"] == pytest.approx(json.loads(ref)["result"]["latency_s"])


def test_a_folder_named_like_a_preset_keeps_its_own_config(tmp_path):
    path = _folder(tmp_path, "llama-3.1-8b", "llama-3.1-8b", num_hidden_layers=8)
    own = build_workload(path, "decode", 8, 512)
    tg = map_graph(own, load_system("dgx-h100"), "tp:2,pp:2")
    assert sum(len(v) for v in tg.graph.layer_groups.values()) == 8


def test_context_parallelism_splits_tokens_and_rings_the_kv():
    system = load_system("dgx-h100")
    g = build_workload("llama-3.1-8b", "prefill", 1, 32768)
    one, cp = simulate(map_graph(g, system, "single"), system), simulate(map_graph(g, system, "cp:4"), system)
    assert one.latency_s / 4 < cp.latency_s < one.latency_s / 2          # ring traffic and replicated LM head
    kv = sum(op.writes.get("kv_cache", 0) * op.repeat for op in g.ops)
    assert cp.link_bytes["nvlink"] == pytest.approx(bytes_on_links("all_gather", kv, 4) * 4, rel=1e-9)
    with pytest.raises(HwsimError, match="phase prefill"):
        map_graph(build_workload("llama-3.1-8b", "decode", 4, 512), system, "cp:2")
    with pytest.raises(HwsimError, match="divides"):
        map_graph(build_workload("llama-3.1-8b", "prefill", 1, 1001), system, "cp:2")
