"""The discrete-event simulator: agreement with predict, conservation, collectives, mappings and the CLI."""
import json
import subprocess
import sys

import pytest

from hw_models import load_device
from hw_models.collectives import bytes_on_links, collective_time
from hw_models.gpu import GPUModel
from hw_models.systems import load_system
from mapping import map_graph
from sim.cli import main
from sim.engine import simulate
from sim.predict import predict
from workloads import trace
from workloads.recipe import build_workload

NODE = load_system("dgx-h100")


def hwsim(*args):
    proc = subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("phase, batch, seq", [("prefill", 1, 2048), ("decode", 16, 4096)])
def test_single_device_agrees_with_predict(phase, batch, seq):
    g = trace("llama-3.1-8b", phase, batch, seq)
    r = simulate(map_graph(g, NODE, "single"), NODE)
    p = predict(g, load_device("h100"))
    assert r.latency_s == pytest.approx(p.latency_s, rel=0.01)
    assert r.energy_j == pytest.approx(p.energy_j, rel=0.01)


@pytest.mark.parametrize("unrolled", [True, False])
def test_energy_is_the_integral_of_the_power_trace(unrolled):
    r = simulate(map_graph(trace("llama-3.1-70b", "decode", 8, 2048), NODE, "tp:8"), NODE, trace=unrolled)
    integral = sum((end - start) * watts for _, start, end, watts in r.power_trace)
    assert integral == pytest.approx(r.energy_j, rel=1e-9)


def test_replaying_one_layer_per_kind_gives_the_full_run():
    mapped = map_graph(trace("gemma-2-9b", "decode", 4, 1024), NODE, "tp:8")
    assert len(mapped.unrolled().nodes) > 10 * len(mapped.nodes)
    full, replayed = simulate(mapped, NODE, trace=True), simulate(mapped, NODE)
    assert replayed.latency_s == pytest.approx(full.latency_s, rel=1e-9)
    assert replayed.energy_j == pytest.approx(full.energy_j, rel=1e-9)
    assert replayed.link_bytes == pytest.approx(full.link_bytes, rel=1e-9)


def test_link_bytes_equal_what_the_mapping_sends():
    g = trace("llama-3.1-70b", "decode", 4, 1024)
    m = map_graph(g, NODE, "tp:8")
    r = simulate(m, NODE)
    collectives = [n for n in m.nodes if n.kind == "collective"]
    sent = sum(bytes_on_links(n.collective, n.nbytes, 8) * 8 * n.repeat for n in collectives)
    assert r.link_bytes["nvlink"] == pytest.approx(sent, rel=1e-9)
    assert len([n for n in collectives if n.collective == "all_reduce_ring"]) == 2   # after o_proj and down_proj


def test_ring_all_reduce_formula():
    b, n, bw, lat = 64e6, 8, 450e9, 2e-6
    assert collective_time("all_reduce_ring", b, n, bw, lat) == pytest.approx(2 * (n - 1) * (lat + b / n / bw))
    assert collective_time("all_reduce_ring", b, 1, bw, lat) == 0.0


def test_tp_with_ideal_links_divides_gemm_time(tmp_path):
    ideal = tmp_path / "ideal.yaml"
    ideal.write_text("id: ideal\nname: ideal\nsources: {x: test}\ndevices: {gpu: {preset: h100, count: 8, source: x}}\n"
                     "links: {fast: {connects: [gpu, gpu], bandwidth_gbps: {value: 1.0e+12, source: x}, "
                     "latency_us: {value: 1.0e-9, source: x}}}\n")
    system = load_system(str(ideal))
    g = trace("llama-3.1-70b", "prefill", 4, 4096)
    mapped = map_graph(g, system, "tp:8")
    model = GPUModel(load_device("h100"))      # at one clock: the power cap would favour the lighter shards

    def gemm(graph):
        return sum(model.cost(op, 1980).time_s * op.repeat for op in graph.ops if op.kind == "matmul")
    assert gemm(mapped.graph) == pytest.approx(gemm(g) / 8, rel=0.10)
    r = simulate(mapped, system)
    assert r.latency_s < predict(g, load_device("h100")).latency_s / 4   # replicated norms/residuals stay


def test_chrome_trace(tmp_path):
    out = tmp_path / "t.json"
    code, _, err = hwsim("simulate", "--model", "llama-3.1-8b", "--system", "dgx-h100", "--mapping", "tp:2",
                         "--phase", "decode", "--trace", str(out))
    assert code == 0, err
    everything = json.loads(out.read_text())["traceEvents"]
    events = [e for e in everything if e["ph"] == "X"]
    assert {e["pid"] for e in events} >= {"gpu0", "gpu1", "links"}
    assert all(e["dur"] >= 0 for e in events)
    power = [e for e in everything if e["ph"] == "C"]          # a power counter track per device
    assert {e["pid"] for e in power} >= {"gpu0", "gpu1"} and all(e["args"]["W"] > 0 for e in power)


@pytest.mark.parametrize("args, words", [
    (["--mapping", "tp:3"], "does not divide"),
    (["--mapping", "single"], "needs"),
    (["--mapping", "tp:16"], "needs 16 devices"),
    (["--mapping", "zz:2"], "unknown mapping"),
    (["--system", "nope-system"], "unknown system"),
])
def test_impossible_mappings_one_line_exit_2(args, words):
    base = ["simulate", "--model", "llama-3.1-70b", "--system", "dgx-h100", "--phase", "decode"]
    if "--system" in args:
        base = base[:3] + base[5:]
    code, _, err = hwsim(*base, *args)
    assert code == 2 and words in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_systems_and_mappings_listed():
    assert "dgx-h100" in hwsim("systems")[1]
    assert "tp" in hwsim("mappings")[1]


def test_systems_and_hardware_json_give_lists(capsys):
    """aliases (and a system's devices and links) came out of --json as one comma-joined string."""
    import json

    from sim.cli import main
    assert main(["systems", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)["systems"]}
    assert rows["dgx-a100"]["aliases"] == ["a100x8", "hgx-a100"]
    assert rows["dgx-a100"]["devices"] == [{"preset": "a100-80gb", "count": 8}]
    assert rows["dgx-a100"]["links"][0]["bandwidth_gbps"] > 0
    assert main(["hardware", "--json"]) == 0
    hw = {r["id"]: r for r in json.loads(capsys.readouterr().out)["hardware"]}
    assert "a100" in hw["a100-80gb"]["aliases"]


def test_pipeline_bubble():
    """Equal stages, M micro-batches, S stages: the step takes about (M + S - 1) stage times."""
    g = build_workload("llama-3.1-70b", "prefill", 8, 1024)
    one = simulate(map_graph(g, NODE, "tp:4,pp:2,mb:1"), NODE)
    m = map_graph(g, NODE, "tp:4,pp:2,mb:8")
    r = simulate(m, NODE)
    stage = r.latency_s / (8 + 2 - 1)
    occupied = r.utilization["gpu0"] + r.engine_utilization["link.nvlink@stage0"]   # its ops and its all-reduces
    assert occupied == pytest.approx(8 * stage / r.latency_s, rel=0.08)
    assert r.utilization["gpu4"] == pytest.approx(r.utilization["gpu0"], rel=0.05)
    assert r.latency_s < one.latency_s          # micro-batches fill the pipeline
    assert r.devices == 8


def test_data_parallel_replicas():
    g = trace("llama-3.1-8b", "decode", 8, 1024)
    base = simulate(map_graph(g, NODE, "tp:2"), NODE)
    dp = simulate(map_graph(g, NODE, "tp:2,dp:4"), NODE)
    assert dp.latency_s == pytest.approx(base.latency_s) and dp.energy_j == pytest.approx(4 * base.energy_j)
    assert dp.devices == 8


@pytest.mark.parametrize("spec, words", [("tp:8,pp:2", "needs 16 devices"), ("tp:2,pp:2,mb:3", "does not split"),
                                         ("mb:2", "only applies with pp"), ("single,tp:2", "cannot be combined")])
def test_bad_combinations(spec, words):
    code, _, err = hwsim("simulate", "--model", "llama-3.1-8b", "--system", "dgx-h100", "--mapping", spec,
                         "--phase", "decode", "--batch", "8")
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1


OFFLOAD = """id: t-offload
name: test
sources: {x: test}
devices:
  gpu: {preset: a100-40gb, count: 1, source: x}
  host: {preset: xeon-8480, count: 1, source: x}
links:
  pcie: {connects: [gpu, host], topology: p2p, bandwidth_gbps: {value: 25, source: x}, latency_us: {value: 1, source: x}}
"""


def test_offload_is_bound_by_the_host_link(tmp_path):
    path = tmp_path / "off.yaml"
    path.write_text(OFFLOAD)
    system = load_system(str(path))
    g = trace("llama-3.1-8b", "decode", 1, 1024)
    r = simulate(map_graph(g, system, "offload-overlap:0"), system)     # every layer streamed, copies overlapped
    streamed = map_graph(g, system, "offload:0").info["residency"].streamed_bytes
    assert r.link_bytes["pcie"] == pytest.approx(streamed)
    assert r.latency_s == pytest.approx(streamed / 25e9, rel=0.05)          # compute hides behind the transfers
    df = simulate(map_graph(g, system, "df11,offload-overlap:0"), system)
    assert df.link_bytes["pcie"] == pytest.approx(0.68 * streamed)
    assert df.latency_s < r.latency_s


def test_df11_on_device_costs_a_decompression_pass(tmp_path):
    path = tmp_path / "off.yaml"
    path.write_text(OFFLOAD)
    system = load_system(str(path))
    g = trace("llama-3.1-8b", "decode", 1, 1024)
    plain, df = simulate(map_graph(g, system, "single"), system), simulate(map_graph(g, system, "df11"), system)
    extra = g.meta["weight_storage_bytes"] / 262.1e9         # every bf16 byte written once, DFloat11 Fig. 7 A100 rate
    assert df.latency_s - plain.latency_s == pytest.approx(extra, rel=0.02)


def test_offload_needs_a_host_link():
    code, _, err = hwsim("simulate", "--model", "gpt2", "--system", "h100", "--mapping", "offload")
    assert code == 2 and "no link" in err


def test_expert_parallel_all_to_all():
    g = build_workload("mixtral-8x7b", "decode", 64, 512)
    m = map_graph(g, NODE, "ep:8")
    assert m.graph.meta["batch"] == 8 and len([n for n in m.nodes if n.kind == "collective"]) == 2  # dispatch, combine
    experts = [op for op in m.graph.ops if op.name.startswith("mlp.experts.") and op.name.endswith("down_proj")]
    assert len(experts) == 1 and experts[0].attrs["m"] == 64 * 2 // 8             # one expert, all tokens routed to it
    r = simulate(m, NODE)
    hidden = 4096 * 2
    sent = 2 * 32 * bytes_on_links("all_to_all", 8 * 2 * hidden, 8) * 8          # 2 per layer, 32 layers, 8 devices
    assert r.link_bytes["nvlink"] == pytest.approx(sent, rel=1e-6)


def test_expert_parallel_errors():
    code, _, err = hwsim("simulate", "--model", "llama-3.1-8b", "--system", "dgx-h100", "--mapping", "ep:8")
    assert code == 2 and "mixture-of-experts" in err
    code, _, err = hwsim("simulate", "--model", "mixtral-8x7b", "--system", "dgx-h100", "--mapping", "ep:3",
                         "--phase", "decode", "--batch", "6")
    assert code == 2 and "does not divide" in err


def test_collectives_that_span_nodes_use_the_inter_node_link():
    two = load_system("dgx-h100-x2")
    g = trace("llama-3.1-70b", "decode", 8, 2048)
    in_node, across = simulate(map_graph(g, two, "tp:8"), two), simulate(map_graph(g, two, "tp:16"), two)
    assert in_node.link_bytes["ib"] == 0 and in_node.link_bytes["nvlink"] > 0
    assert across.link_bytes["nvlink"] == 0 and across.link_bytes["ib"] > 0
    assert across.latency_s > in_node.latency_s        # 50 GB/s InfiniBand against 450 GB/s NVLink


@pytest.mark.parametrize("system,mapping,phase", [("h100-host-offload", "offload:0.5", "decode"),
                                                  ("dgx-h100", "tp:4,pp:2", "prefill"),
                                                  ("kv260-board", "dataflow,lmhost", "decode")])
def test_every_scheduler_writes_a_trace(system, mapping, phase):
    from hw_models.systems import load_system
    from mapping import map_graph
    from sim.engine import simulate
    from workloads import trace
    s = load_system(system)
    model = "bitnet-b1.58-0.7b" if "dataflow" in mapping else "llama-2-7b"
    g = trace(model, phase, 2, 256)
    r = simulate(map_graph(build_workload(model, phase, 2, 256), s, mapping), s, "eager", trace=True)
    events = [e for e in r.chrome_trace()["traceEvents"] if e["ph"] == "X"]
    assert events and all(e["dur"] >= 0 and e["ts"] >= 0 for e in events)
    assert max(e["ts"] + e["dur"] for e in events) == pytest.approx(r.latency_s * 1e6, rel=0.05)


@pytest.mark.parametrize("system,mapping,phase,model", [("dgx-h100", "tp:2", "decode", "llama-2-7b"),
                                                        ("h100-host-offload", "offload:0.5", "decode", "llama-2-7b"),
                                                        ("dgx-h100", "tp:2,pp:2", "prefill", "llama-2-7b"),
                                                        ("kv260-board", "dataflow,lmhost", "decode", "bitnet-b1.58-0.7b")])
def test_power_over_time_integrates_to_the_energy(system, mapping, phase, model):
    from hw_models.systems import load_system
    from mapping import map_graph
    from sim.engine import simulate
    from workloads import trace
    s = load_system(system)
    mapped = map_graph(build_workload(model, phase, 2, 256), s, mapping)
    r = simulate(mapped, s, "eager", trace=True)
    timeline = r.power_timeline()
    assert timeline and all(b >= a and w >= 0 for _, a, b, w in timeline)
    integral = sum((b - a) * w for _, a, b, w in timeline)
    assert integral * r.replicas == pytest.approx(r.energy_j, rel=1e-6)


def test_engine_utilization_adds_up_to_device_busy():
    from hw_models.systems import load_system
    from mapping import map_graph
    from sim.engine import simulate
    from workloads import trace
    s = load_system("dgx-h100")
    r = simulate(map_graph(trace("llama-2-7b", "decode", 4, 512), s, "tp:4"), s, "fused")
    for dev, busy in r.utilization.items():
        parts = r.engine_utilization[f"{dev}.matrix"] + r.engine_utilization[f"{dev}.vector"]
        assert parts == pytest.approx(busy)
    assert 0 < r.engine_utilization["link.nvlink"] < 1
    assert r.engine_utilization["gpu0.matrix"] > r.engine_utilization["gpu0.vector"]     # decode: GEMVs dominate


def test_ep_batch_is_the_groups_whole_batch_as_tp_and_dp_replicas_each_take_it(capsys):
    """docs/simulate.md: ep:N's devices are one model instance, so --batch is the group's (batch / N per device,
    like tp:N's one instance), while each dp:N replica takes --batch of its own."""
    tokens = {}
    for mapping in ("tp:2", "ep:2", "ep:2,dp:2"):
        assert main(["simulate", "--model", "mixtral-8x7b", "--system", "dgx-h100", "--mapping", mapping, "--phase",
                     "decode", "--batch", "8", "--seq-len", "512", "--json"]) == 0
        tokens[mapping] = json.loads(capsys.readouterr().out)["result"]["tokens"]
    assert tokens == {"tp:2": 8, "ep:2": 8, "ep:2,dp:2": 16}
    assert main(["simulate", "--model", "mixtral-8x7b", "--system", "dgx-h100", "--mapping", "ep:2", "--phase",
                 "decode", "--batch", "3", "--seq-len", "512"]) == 2
    assert "batch 3 does not split evenly" in capsys.readouterr().err
