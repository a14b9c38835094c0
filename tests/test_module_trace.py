"""Any torch module traced into an OpGraph (workloads/module_trace.py) and run through predict/roofline/simulate.

The modules are plain-torch files a user could write (tests/data): a ViT-B/16, a ResNet-18-like CNN and a
Stable-Diffusion-like U-Net down block. FLOPs must equal FlopCounterMode's on the same call exactly; replaying
repeated blocks must give exactly the figures of tracing every block.
"""
import dataclasses
import importlib.util
import json
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mapping import strategies
from sim import api
from sim.cli import main
from workloads import UnknownOpsWarning, trace_module
from workloads.errors import HwsimError
from workloads.module_trace import counted_flops, structure

DATA = Path(__file__).parent / "data"
FILES = ["vit", "cnn", "unet_block"]


def _load(name):
    spec = importlib.util.spec_from_file_location(f"hwsim_test_{name}", DATA / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module", params=FILES)
def built(request):
    module, args = _load(request.param).build()
    return request.param, module, args, trace_module(module, *args)


def test_flops_equal_flop_counter_mode_exactly(built):
    name, module, args, graph = built
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        module(*args)
    assert fc.get_total_flops() > 0
    assert counted_flops(graph) == fc.get_total_flops()


def test_replayed_blocks_give_the_figures_of_tracing_every_block(built):
    name, module, args, graph = built
    full = trace_module(module, *args, replay=False)
    assert graph.totals() == full.totals()
    assert sorted(len(v) for v in graph.layer_groups.values()) == sorted(len(v) for v in full.layer_groups.values())


def test_repeated_blocks_are_one_group_traced_once():
    module, args = _load("vit").build(depth=12)
    graph = trace_module(module, *args)
    assert list(graph.layer_groups.values()) == [tuple(range(12))]
    layered = [op for op in graph.ops if op.group is not None]
    assert {op.repeat for op in layered} == {12}
    names = [op.name for op in layered]
    assert "attn.qkv" in names and "mlp.0" in names and len(names) == len(set(names) | {"add"}) + 1  # two residual adds
    attn = next(op for op in layered if op.kind == "attention")
    assert attn.attrs["sq"] == attn.attrs["sk"] == 197 and attn.attrs["hq"] == 12 and len(attn.kernels) == 1
    conv = graph.ops[0]
    assert conv.kind == "matmul" and conv.attrs["conv"] and conv.attrs["k"] == 3 * 16 * 16
    assert graph.meta["params"] == sum(p.numel() for p in module.parameters())


def test_blocks_of_one_structure_called_with_other_shapes_are_not_replayed():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(32, 32)
            self.act = nn.GELU()

        def forward(self, x):
            return x + self.act(self.lin(x))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList(Block() for _ in range(6))

        def forward(self, x):
            for i, b in enumerate(self.blocks):
                x = b(x if i < 3 else torch.cat([x, x], dim=0))
            return x

    with torch.device("meta"):
        net, x = Net(), torch.empty(4, 32)
    g = trace_module(net, x)
    assert g.totals() == trace_module(net, x, replay=False).totals()
    assert sorted(len(v) for v in g.layer_groups.values()) == [1, 1, 1, 3]     # 4, 8, 16 and 32... rows: no shared shape


def test_blocks_that_record_different_ops_are_traced_one_by_one():
    """A block whose behaviour depends on its position (hidden from its structure) is never replayed wrongly: the
    first two instances differ, so none is replayed."""
    class Block(nn.Module):
        def __init__(self, i):
            super().__init__()
            self.layer_idx = i          # left out of the structure, as a position
            self.lin = nn.Linear(16, 16)

        def forward(self, x):
            return self.lin(x).relu() if self.layer_idx % 2 else self.lin(x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList(Block(i) for i in range(5))

        def forward(self, x):
            for b in self.blocks:
                x = b(x)
            return x

    with torch.device("meta"):
        net, x = Net(), torch.empty(2, 16)
    assert structure(net.blocks[0]) == structure(net.blocks[1])
    g = trace_module(net, x)
    assert g.totals() == trace_module(net, x, replay=False).totals()
    assert sorted(len(v) for v in g.layer_groups.values()) == [2, 3]


def test_unknown_kernels_are_memory_bound_and_listed_in_one_warning():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(64, 64)

        def forward(self, x):
            y = self.lin(x)
            return torch.fft.rfft(y, dim=-1).abs().sum() + torch.fft.rfft(y, dim=-2).abs().sum()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = trace_module(Odd(), torch.randn(2, 8, 64))          # real CPU tensors work too
    mine = [w for w in caught if issubclass(w.category, UnknownOpsWarning)]
    assert len(mine) == 1 and "aten._fft_r2c x2" in str(mine[0].message)
    fft = [k for op in g.ops for k in op.kernels if k.aten == "_fft_r2c"]
    assert len(fft) == 2 and all(k.flops == 0 and sum(k.bytes.values()) > 0 for k in fft)
    assert g.meta["unknown_ops"] == {"aten._fft_r2c": 2}


def test_predict_module_cli_and_api(capsys, tmp_path):
    assert main(["predict", "--module", f"{DATA / 'vit.py'}:build", "--hardware", "h100", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    r = api.predict_module(*_load("vit").build(), hardware="h100")
    assert doc["result"]["latency_s"] == pytest.approx(r.latency_s)
    assert doc["result"]["flops"] == r.flops and r.bound == "compute"
    assert doc["inputs"]["module"].endswith("vit.py:build")


def test_roofline_report_of_a_module_renders(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["roofline", "--module", str(DATA / "unet_block.py"), "--hardware", "h100,a100",
                 "--out-dir", str(out)]) == 0
    page = (out / "roofline-unet_block.html").read_text()
    assert "forward" in page and "attn1.attention" in page and "resnets" in page
    assert (out / "roofline-unet_block.png").stat().st_size > 10_000


def test_every_mapping_runs_a_module_graph_or_refuses_in_one_line():
    module, args = _load("cnn").build()
    graph = trace_module(module, *args)
    ran = set()
    for name in strategies():
        option = name if name in ("single", "offload", "offload-overlap", "df11", "dataflow", "lmhost") else f"{name}:2"
        for system in ("dgx-h100", "h100-host-offload"):
            try:
                r = api.simulate(graph, system, mapping=option)
            except HwsimError as exc:
                assert "\n" not in str(exc)
                continue
            assert r.latency_s > 0
            ran.add(name)
    assert {"single", "dp"} <= ran and "tp" not in ran


@pytest.mark.parametrize("argv, words", [
    (["predict", "--module", "nope.py:build", "--hardware", "h100"], "no file nope.py"),
    (["predict", "--module", "DATA/vit.py:nothing", "--hardware", "h100"], "has no function nothing()"),
    (["predict", "--module", "DATA/vit.py", "--model", "gpt2", "--hardware", "h100"], "not both"),
    (["predict", "--module", "DATA/vit.py", "--hardware", "h100", "--batch", "4"], "--batch applies to --model"),
    (["simulate", "--module", "DATA/vit.py", "--system", "dgx-h100", "--mapping", "tp:8"], "no known split"),
    (["simulate", "--module", "DATA/vit.py", "--system", "dgx-h100", "--mapping", "pp:2"], "cannot be"),
    (["predict", "--module", "BAD/raises.py:build", "--hardware", "h100"], "build() failed: ValueError: no"),
    (["predict", "--module", "BAD/wrong.py:build", "--hardware", "h100"], "must return (module, args)"),
    (["predict", "--module", "BAD/fails.py:build", "--hardware", "h100"], "tracing Fails failed: RuntimeError"),
])
def test_bad_module_input_is_one_line_exit_2(argv, words, tmp_path, capsys):
    (tmp_path / "raises.py").write_text("def build():\n    raise ValueError('no weights here')\n")
    (tmp_path / "wrong.py").write_text("def build():\n    return 3\n")
    (tmp_path / "fails.py").write_text(
        "import torch\nclass Fails(torch.nn.Module):\n    def forward(self, x):\n        return x @ x\n"
        "def build():\n    return Fails(), (torch.empty(2, 3, device='meta'),)\n")
    argv = [a.replace("DATA", str(DATA)).replace("BAD", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


class _Allocs(nn.Module):
    """Allocations that launch nothing (new_empty, empty_like, torch.empty) beside a factory that fills memory."""

    def forward(self, x):
        buf = x.new_empty(x.shape[0], 2 * x.shape[1])
        buf[:, : x.shape[1]] = x
        buf[:, x.shape[1]:] = torch.empty_like(x).copy_(x)
        pos = torch.arange(x.shape[0], device=x.device)
        return buf * 2 + torch.empty(1, device=x.device) * 0 + pos[:, None]


def test_allocations_are_host_work_and_factories_are_launches():
    """new_empty / empty_like / empty write nothing on the GPU: no kernel and no bytes, one host view each; a
    factory that fills memory (arange) is one host launch, which the host model prices."""
    from hw_models.host import HostModel, load_host
    graph = trace_module(_Allocs(), torch.randn(64, 256))
    kernels = [k.aten for op in graph.ops for k in op.kernels]
    assert not {"new_empty", "empty_like", "empty"} & set(kernels) and "copy_" in kernels
    views = sum(op.attrs.get("host_views", 0) for op in graph.ops)
    launches = sum(op.attrs.get("host_launches", 0) for op in graph.ops)
    assert launches == 1 and views >= 3
    host = HostModel(load_host("h100-lent-host"))
    op = next(op for op in graph.ops if op.attrs.get("host_launches"))
    without = dataclasses.replace(op, attrs={k: v for k, v in op.attrs.items() if k != "host_launches"})
    assert host.issue_s(op) - host.issue_s(without) == pytest.approx(host.s["launch"])


@pytest.mark.parametrize("source, spec, words", [
    ("import sys\nsys.exit(0)\n", "F", "loading F failed: it called sys.exit(0); keep a script's own part under"),
    ("import sys\ndef build():\n    sys.exit('bye')\n", "F:build", "build() failed: it called sys.exit('bye')"),
    ("import sys, torch\nclass Quits(torch.nn.Module):\n    def forward(self, x):\n        sys.exit(5)\n"
     "def build():\n    return Quits(), (torch.zeros(2),)\n", "F", "tracing Quits failed: it called sys.exit(5)"),
    ("def build():\n    pass\n", "DIR:build", "is a folder; give the Python file in it"),
    ("def build():\n    pass\n", "F:", "no function named after the ':'"),
])
def test_a_module_file_that_exits_or_a_folder_is_one_line_exit_2(source, spec, words, tmp_path, capsys):
    """Found by hand (walk18): a --module file (or its FUNC, or its forward) calling sys.exit() ended hwsim silently
    with the file's exit code (0 for sys.exit(0): no output, success); a folder was 'no file DIR' and 'FILE.py:' was
    'no file FILE.py:'."""
    f = tmp_path / "m.py"
    f.write_text(source)
    (tmp_path / "pkg").mkdir()
    spec = spec.replace("DIR", str(tmp_path / "pkg")).replace("F", str(f))
    assert main(["predict", "--module", spec, "--hardware", "h100"]) == 2
    err = capsys.readouterr().err
    assert words.replace("F", str(f)) in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err



def test_gate_splits_and_in_place_transposes_are_views_not_unknown_kernels():
    """Found by hand (walk18): on meta (and a GRU anywhere) an LSTM/GRU cell's gate splits (aten.unsafe_split: views
    without alias tracking) and GRU's in-place transpose_ were costed as unknown memory-bound kernels (their bytes
    read and written) and listed in an UnknownOpsWarning."""
    with torch.device("meta"):
        lstm, x = nn.LSTM(64, 128, num_layers=2, batch_first=True), torch.randn(4, 10, 64)
        gru, xg = nn.GRU(64, 128, batch_first=True, bidirectional=True), torch.randn(4, 10, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownOpsWarning)
        graphs = [trace_module(lstm, x), trace_module(gru, xg)]
    for g in graphs:
        assert not {k.aten for op in g.ops for k in op.kernels} & {"unsafe_split", "transpose_"}
        assert not g.meta["unknown_ops"]
        assert sum(op.attrs.get("host_views", 0) for op in g.ops) >= 20        # the splits are host work


def test_an_lstm_on_cpu_tensors_counts_the_flops_it_counts_on_meta():
    """Found by hand (walk18): an nn.LSTM on CPU tensors traced as two aten.mkldnn_rnn_layer kernels (oneDNN's fused
    CPU LSTM: no cost rule, 0 FLOPs), 2 kFLOP where the same LSTM on meta counts 18.4 MFLOP."""
    torch.manual_seed(0)
    lstm, x = nn.LSTM(64, 128, num_layers=2, batch_first=True), torch.randn(4, 10, 64)
    with torch.device("meta"):
        lstm_meta, x_meta = nn.LSTM(64, 128, num_layers=2, batch_first=True), torch.randn(4, 10, 64)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        lstm_meta(x_meta)
    mkldnn = torch._C._get_mkldnn_enabled()
    cpu = trace_module(lstm, x)
    assert torch._C._get_mkldnn_enabled() == mkldnn                 # the global switch is put back
    assert counted_flops(cpu) == counted_flops(trace_module(lstm_meta, x_meta)) == fc.get_total_flops() == 18_350_080
    assert "mkldnn_rnn_layer" not in {k.aten for op in cpu.ops for k in op.kernels}


def test_module_options_that_do_not_apply_or_advice_it_cannot_take_are_one_line(tmp_path, capsys):
    """Found by hand (walk18): 'roofline --module F --phases decode' ignored --phases (predict refuses --phase with
    --module); a device that cannot run the module's fp32 matmuls said 'use --dtype bf16', which --module refuses."""
    spec = f"{DATA / 'cnn.py'}:build"
    assert main(["roofline", "--module", spec, "--hardware", "h100", "--phases", "decode",
                 "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--phases applies to --model" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())
    f = tmp_path / "fp32.py"
    f.write_text("import torch\ndef build():\n    return torch.nn.Linear(64, 64), (torch.randn(8, 64),)\n")
    assert main(["predict", "--module", str(f), "--hardware", "tpu-v5e"]) == 2
    err = capsys.readouterr().err
    assert "cannot run fp32 matmuls" in err and "--dtype" not in err and "torch.bfloat16" in err
    assert main(["predict", "--model", "gpt2", "--dtype", "fp32", "--hardware", "tpu-v5e"]) == 2
    assert "use --dtype bf16" in capsys.readouterr().err                       # a --model keeps its advice


@pytest.mark.parametrize("body, args, words", [
    ("return x", "torch.randn(4, 64)", "recorded no kernel"),
    ("return x.view(2, 128).t()", "torch.randn(4, 64)", "recorded no kernel"),
    ("return self.lin(x)", "torch.randn(0, 64)", "its first input is empty (shape (0, 64))"),
])
def test_a_forward_with_no_work_is_one_line_exit_2(body, args, words, tmp_path, capsys):
    """Found by hand (walk18): an identity module ended predict, roofline and simulate in 'internal error
    (ValueError: max() arg is an empty sequence)', exit 70; a batch-0 input gave 'latency nan ms'."""
    f = tmp_path / "m.py"
    f.write_text("import torch\nclass M(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                 f"        self.lin = torch.nn.Linear(64, 64)\n    def forward(self, x):\n        {body}\n"
                 f"def build():\n    return M(), ({args},)\n")
    for argv in (["predict", "--hardware", "h100"], ["simulate", "--system", "dgx-h100"]):
        assert main([*argv, "--module", str(f)]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1 and "internal error" not in err


def test_a_value_read_back_is_a_known_kernel():
    """Found by hand (walk18): `if x.sum() > 0` on CPU tensors warned 'aten._local_scalar_dense x1' as a kernel with
    no cost rule; it is the read-back the host model counts as a sync."""
    class Branch(nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownOpsWarning)
        g = trace_module(Branch(), torch.ones(4, 4))
    assert not g.meta["unknown_ops"]


def test_a_module_file_imports_its_neighbours_from_any_working_folder(tmp_path, capsys, monkeypatch):
    """Found by hand (walk18): entry.py doing 'from netdef import Net' (netdef.py beside it) failed with
    'ModuleNotFoundError: No module named netdef' unless hwsim ran in that folder; `python entry.py` finds it."""
    import sys
    (tmp_path / "netdef_walk18.py").write_text(
        "import torch\nclass Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.l = torch.nn.Linear(8, 8)\n    def forward(self, x):\n        return self.l(x)\n")
    (tmp_path / "entry.py").write_text("import torch\nfrom netdef_walk18 import Net\n"
                                       "def build():\n    return Net(), (torch.randn(2, 8),)\n")
    monkeypatch.chdir(DATA)
    before = list(sys.path)
    assert main(["predict", "--module", str(tmp_path / "entry.py"), "--hardware", "h100", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["result"]["flops"] == 2 * 2 * 8 * 8
    assert sys.path == before                       # the folder is on the path only while the file is traced
    sys.modules.pop("netdef_walk18", None)


# a BatchNorm in training mode normalizes by the batch's own mean and variance: one more pass over its input (the
# statistics) before the normalizing pass; it was costed as the eval-mode kernel (running statistics, one pass)
def _bn_net(mode):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1),
                      nn.BatchNorm2d(32))
    return getattr(m, mode)()


def test_training_mode_batch_norm_reads_its_input_twice():
    x = torch.randn(8, 16, 32, 32)
    train, ev = trace_module(_bn_net("train"), x), trace_module(_bn_net("eval"), x)
    bn = {g: [op for op in graph.ops if op.kind == "norm"] for g, graph in (("train", train), ("eval", ev))}
    act = 8 * 32 * 32 * 32 * 4                                    # one BatchNorm's input (= its output), fp32
    for t, e in zip(bn["train"], bn["eval"]):
        tb, eb = (sum(sum(k.bytes.values()) for k in op.kernels) for op in (t, e))
        assert tb - eb >= act and sum(k.flops for k in t.kernels) > sum(k.flops for k in e.kernels)
    p_train, p_eval = (api.predict(g, "h100") for g in (train, ev))
    assert p_train.bytes - p_eval.bytes >= 2 * act and p_train.latency_s > p_eval.latency_s


def test_tracing_a_training_module_leaves_its_modes_and_running_statistics_as_they_were():
    m = _bn_net("train")
    m[2] = nn.Dropout(0.5)
    before = [b.clone() for b in m.buffers()]
    g = trace_module(m, torch.randn(8, 16, 32, 32))
    assert all(x.training for x in m.modules())
    assert all(torch.equal(a, b) for a, b in zip(before, m.buffers()))
    assert not any("dropout" in k.aten or "bernoulli" in k.aten for op in g.ops for k in op.kernels)   # inference
