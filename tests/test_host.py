"""The host as hardware (hw_models/host.py): presets, host files, `hwsim probe-host`, and eager steps timed as two
queues (a host lane issuing, a device lane running) by predict (sim/hostqueue.py) and the engine alike."""
import csv
import random
import statistics
import time

import pytest
import yaml

from hw_models import load_device, preset_ids
from hw_models.host import COSTS, OPTIONAL_COSTS, HostModel, HostSpec, host_ids, load_host
from sim import api
from sim.cli import main
from sim.hostqueue import two_queues
from workloads.errors import HwsimError


def test_every_host_preset_loads_with_every_cost_sourced():
    assert {"h100-lent-host", "h200-lent-host", "dev-cpu-2core"} <= set(host_ids())
    for hid in host_ids():
        h = load_host(hid)
        assert set(COSTS) <= set(h.costs_us) <= set(COSTS) | set(OPTIONAL_COSTS)
        assert all(f"costs_us.{k}" in h.provenance and h.provenance[f"costs_us.{k}"] for k in h.costs_us), hid


def test_every_gpu_preset_names_a_host_that_exists():
    for pid in preset_ids():
        d = load_device(pid)
        if d.device_class == "gpu":
            assert d.host and load_host(d.host).id == d.host, pid


@pytest.mark.parametrize("text, words", [
    ("id: x\nname: y\ncosts_us: {view: 1}\n", "has no source"),
    ("id: x\nname: y\nsources: {s: here}\ncosts_us: {source: s, view: 1}\n", "lacks launch"),
    ("id: x\nname: y\nsources: {s: here}\ncosts_us: {source: s, view: 1, launch: 1, library: 1, collective: 1, "
     "module: 1, sync: 1, graph_launch: 1, step: -3}\n", "non-negative"),
    ("[1, 2", "not valid YAML"),
])
def test_bad_host_file_is_one_line(tmp_path, text, words):
    f = tmp_path / "h.yaml"
    f.write_text(text)
    with pytest.raises(HwsimError, match=words):
        load_host(str(f))


def test_unknown_host_suggests_a_close_name():
    with pytest.raises(HwsimError, match="did you mean h100-lent-host"):
        load_host("h100-lent-hots")


def _random_case(rng, n):
    return [rng.uniform(0, 50e-6) for _ in range(n)], [rng.uniform(0, 80e-6) for _ in range(n)]


def test_two_queues_bounds_and_monotone_in_host_speed():
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(1, 40)
        host, dev = _random_case(rng, n)
        syncs = [rng.random() < 0.1 for _ in range(n)]
        t = two_queues(range(n), host, dev, syncs, 10e-6)
        assert t.latency_s >= max(sum(dev), sum(host)) - 1e-12          # neither queue can be beaten
        assert t.latency_s <= sum(host) + sum(dev) + 10e-6 * sum(syncs) + 1e-12     # nor is it worse than serial
        faster = two_queues(range(n), [h / 2 for h in host], dev, syncs, 5e-6)
        assert faster.latency_s <= t.latency_s + 1e-12                  # a faster host never slows the step
        assert t.device_idle_s >= -1e-12
        no_sync = two_queues(range(n), host, dev, [False] * n, 10e-6)
        assert no_sync.latency_s <= t.latency_s + 1e-12                 # a sync only drains the queue
    # a host ahead of a slower device leaves no idle time past the first issue
    t = two_queues(range(3), [1.0, 1.0, 1.0], [5.0, 5.0, 5.0], [False] * 3, 0.0)
    assert t.latency_s == 16.0 and t.device_idle_s == 1.0


@pytest.mark.parametrize("profile", ["eager-launch", "hf-generate"])
@pytest.mark.parametrize("model, phase, batch, seq", [("llama-3.1-8b", "decode", 1, 512),
                                                      ("qwen2.5-7b", "prefill", 2, 1024),
                                                      ("mixtral-8x7b", "decode", 4, 256)])
def test_predict_and_the_engine_time_the_two_queues_alike(profile, model, phase, batch, seq):
    p = api.predict(model, "h100", phase=phase, batch=batch, seq_len=seq, profile=profile)
    s = api.simulate(model, "h100", "single", phase=phase, batch=batch, seq_len=seq, profile=profile,
                     check_memory=False)
    assert s.latency_s == pytest.approx(p.latency_s, rel=1e-9)
    assert s.energy_j == pytest.approx(p.energy_j, rel=1e-9)
    assert p.host == "h100-lent-host" and 0 < s.engine_utilization["host"] <= 1


def test_generate_adds_its_per_step_work_and_sync_to_eager_launch():
    host = load_host("h100-lent-host")
    a = api.predict("llama-3.1-8b", "h100", phase="decode", batch=8, seq_len=1024, profile="eager-launch")
    b = api.predict("llama-3.1-8b", "h100", phase="decode", batch=8, seq_len=1024, profile="hf-generate")
    assert b.latency_s - a.latency_s == pytest.approx((host.costs_us["sync"] + host.costs_us["step"]) * 1e-6)


def test_small_decode_is_host_bound_and_a_large_prefill_is_not():
    small = api.predict("llama-3.1-8b", "h100", phase="decode", batch=1, seq_len=512, profile="hf-generate")
    large = api.predict("llama-3.1-8b", "h100", phase="prefill", batch=8, seq_len=4096, profile="hf-generate")
    graph = api.predict("llama-3.1-8b", "h100", phase="decode", batch=1, seq_len=512, profile="eager")
    assert small.bound == "host" and small.device_idle_s > 0.5 * small.latency_s
    assert small.avg_power_w < graph.avg_power_w               # the GPU waits at its busy-idle floor
    assert large.bound == "compute" and large.device_idle_s < 0.05 * large.latency_s


def test_host_speed_is_a_sweep_axis_that_saturates_at_the_device():
    kw = dict(phase="decode", batch=4, seq_len=1024, profile="hf-generate")
    times = [api.predict("llama-3.1-8b", "h200", host_speed=x, **kw).latency_s for x in (0.5, 1, 2, 4, 16, 1000)]
    assert all(a > b for a, b in zip(times, times[1:]))
    device = api.predict("llama-3.1-8b", "h200", phase="decode", batch=4, seq_len=1024, profile="eager").latency_s
    assert times[-1] == pytest.approx(device, rel=0.02)      # an infinitely fast host: the device's time alone


def test_another_host_changes_host_bound_steps_only():
    kw = dict(phase="decode", batch=1, seq_len=512, profile="hf-generate")
    h100, h200 = (api.predict("llama-3.1-8b", "h100", host=h, **kw).latency_s for h in ("h100-lent-host",
                                                                                          "h200-lent-host"))
    ratio = load_host("h100-lent-host").costs_us["launch"] / load_host("h200-lent-host").costs_us["launch"]
    assert 1.3 < h100 / h200 < ratio + 0.05                    # host-bound: the host sets the pace
    kw = dict(phase="prefill", batch=8, seq_len=4096, profile="hf-generate")
    a, b = (api.predict("llama-3.1-8b", "h100", host=h, **kw).latency_s for h in ("h100-lent-host", "h200-lent-host"))
    assert a / b == pytest.approx(1.0, abs=0.02)              # GPU-bound: the host hardly matters


def test_a_syncing_op_drains_the_queue():
    import torch
    from workloads import trace_module

    class Routed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(64, 64)

        def forward(self, x):
            y = self.lin(x)
            keep = torch.nonzero(y[:, 0] > 0).flatten()       # data-dependent size: the host reads it back
            return self.lin(y[keep])

    g = trace_module(Routed(), torch.randn(32, 64))
    hm = HostModel(load_host("h100-lent-host"))
    assert any(hm.forces_sync(op) for op in g.ops)
    p = api.predict(g, "h100", profile="eager-launch")
    s = api.simulate(g, "h100", profile="eager-launch")
    assert s.latency_s == pytest.approx(p.latency_s, rel=1e-9)
    none = HostSpec("x", "x", dict(load_host("h100-lent-host").costs_us, sync=0.0))
    assert api.predict(g, "h100", profile="eager-launch", host=none).latency_s < p.latency_s


def test_probe_writes_a_host_file_that_loads(tmp_path):
    from hw_models.host import write_host_file
    from sim.probe_host import probe
    host_id, name, costs, sources, machine = probe("unit-test", budget_s=0.5, generate=False)
    assert set(costs) == set(COSTS) and all(v >= 0 for v, _ in costs.values())
    assert costs["view"][0] > 0 and costs["launch"][0] > 0 and machine["cpus"] >= 1
    path = tmp_path / "host.yaml"
    path.write_text(write_host_file(str(path), host_id, name, costs, sources, machine))
    h = load_host(str(path))
    assert h.id == "unit-test" and h.costs_us["launch"] == pytest.approx(costs["launch"][0], rel=1e-3)
    assert yaml.safe_load(path.read_text())["machine"]["torch"]
    r = api.predict("gpt2", "h100", phase="decode", batch=1, seq_len=64, profile="hf-generate", host=str(path))
    assert r.host == "unit-test"
    # how steady the host was while probed: every timed loop's batch spread, and one word for the file
    assert set(machine["spread_p90_p10"]) >= {"view", "launch", "module"}
    assert all(v >= 1.0 for v in machine["spread_p90_p10"].values())
    assert machine["steadiness"].split()[0] in ("steady", "unsteady")


def test_batch_spread_and_steadiness_read_a_shared_hosts_loops():
    from sim.probe_host import STEADY_SPREAD, batch_spread, steadiness
    assert batch_spread([2.0] * 20) == 1.0 and batch_spread([]) == 1.0
    # one batch in five at twice the time (a VM whose CPU another tenant takes now and then): p90 / p10 = 2
    assert batch_spread([1.0] * 16 + [2.0] * 4) == pytest.approx(2.0)
    assert batch_spread([1.0] * 19 + [5.0]) == pytest.approx(1.0)   # one outlier in twenty is not a trend
    assert steadiness({"view": 1.02, "launch": 1.05, "module": 1.9}) == "steady"
    assert steadiness({"view": 1.5, "launch": 1.4, "module": 1.0}).startswith("unsteady (median loop spread 1.40x")
    assert steadiness({"a": STEADY_SPREAD}) == "steady"


def test_probe_keeps_to_one_total_budget():
    """`hwsim probe-host` measures in at most its budget (10 s by default) counted from the process's start, imports
    and CUDA init included: the timed loops share what those left before the deadline, in proportion to their need,
    each still at least a few batches, and every cost is written; one line says how long each part took."""
    import torch  # noqa: F401  (imported before the clock starts: run alone, this test would count its import)
    from sim.probe_host import NEED_S, probe
    lines = []
    started = time.perf_counter() - 9.4     # as if start-up and imports had taken 9.4 s of the 10 s
    _, _, costs, _, machine = probe("unit-test", budget_s=10.0, generate=False, started=started,
                                    report=lines.append)
    took = time.perf_counter() - started
    assert took <= 10.2 and machine["probe_seconds"] <= 10.2
    assert machine["probe_version"] == 2        # a stack's host_op_scale is fitted per probe method
    assert set(costs) == set(COSTS) and all(v >= 0 for v, _ in costs.values())
    assert all(costs[k][0] > 0 for k in ("view", "launch", "library", "step"))
    line, = lines
    assert "of a 10 s budget" in line and "start-up 9.4" in line
    loops = ("view", "launch", "library", "module", "module_plain", "step_stand_in")
    parts = {k: float(line.split(f" {k} ")[1].split(",")[0]) for k in loops}
    assert sum(parts.values()) < 0.6 < sum(NEED_S[k] for k in loops)      # squeezed from their 2.1 s
    _, _, costs, _, _ = probe("unit-test", budget_s=10.0, generate=False, started=started - 20,
                              report=lines.append)      # past its deadline: the minimum batches, every cost
    assert set(costs) == set(COSTS) and costs["launch"][0] > 0 and "over budget" in lines[1]
    assert main(["probe-host", "--budget", "0"]) == 2 and main(["probe-host", "--budget", "inf"]) == 2


def _slow_import(seconds):
    def imp():
        time.sleep(seconds)
        import transformers
        return transformers
    return imp


def test_probe_keeps_its_budget_where_importing_transformers_is_slow(tmp_path, monkeypatch):
    """transformers is imported last, in a thread the probe waits for only until its deadline less what the work
    after it needs: slower than that (8-9 s on a machine that keeps no bytecode), the probe goes on without it, the
    step is the stand-in's, and the file says what was not measured (and still loads). A second probe
    (`--repeat`) first waits, outside its timed loops, for the import the first gave up on, then measures
    generate()'s step."""
    pytest.importorskip("transformers")
    from hw_models.host import write_host_file
    from sim import probe_host
    monkeypatch.setattr(probe_host, "_IMPORT", {})
    monkeypatch.setattr(probe_host, "_import_transformers", _slow_import(2.5))
    lines = []
    start = time.perf_counter()
    host_id, name, costs, sources, machine = probe_host.probe("slow-import", budget_s=2.0, report=lines.append)
    assert time.perf_counter() - start <= 2.2 and probe_host.import_pending()
    assert set(costs) == set(COSTS) and costs["step"][0] > 0 and "py_op" not in costs
    assert "stand-in" in sources[costs["step"][1]]
    assert "generate_step" in machine["not_measured"] and "transformers_import_seconds" not in machine
    assert "importing transformers was not done" in sources["not_measured"]
    assert "not measured: generate_step" in lines[0] and "import transformers" in lines[0]
    path = tmp_path / "h.yaml"
    path.write_text(write_host_file(str(path), host_id, name, costs, sources, machine))
    assert load_host(str(path)).costs_us["step"] == pytest.approx(costs["step"][0], rel=1e-3)
    _, _, costs2, sources2, machine2 = probe_host.probe("slow-import", budget_s=4.0, report=lines.append)
    assert not probe_host.import_pending() and "earlier import" in lines[1]
    assert "generate()" in sources2[costs2["step"][1]] and "stand-in" not in sources2[costs2["step"][1]]
    assert "generate_step" not in machine2.get("not_measured", [])


def test_interleaved_rounds_keep_a_busy_moment_out_of_the_forwards():
    """py_call is a residual of two forwards (7 layers minus 1): their times come from interleaved rounds (the order
    reversed every other round), each model's the lower quartile of its rounds, so a busy stretch that slows a few
    rounds of one model does not move the difference."""
    from sim.probe_host import _forward_rounds, _low_quartiles
    calls, order = [0], []

    def model(i, seconds):
        def call():
            calls[0] += 1
            order.append(i)
            busy = 40 <= calls[0] < 52 and i == 1          # a busy moment hits the 7-layer model's rounds only
            time.sleep(seconds + (0.02 if busy else 0.0))
        return call
    rounds = _forward_rounds([model(0, 0.001), model(1, 0.003)], 0.0, calls=1, min_rounds=40)
    assert len(rounds) == 40 and order[:4] == [0, 1, 1, 0]
    one, seven = _low_quartiles(rounds)
    assert seven - one == pytest.approx(0.002, abs=0.0006)
    assert statistics.mean(r[1] - r[0] for r in rounds) > 0.004       # the mean of the differences would not hold


@pytest.mark.parametrize("argv, words", [
    (["predict", "--model", "gpt2", "--hardware", "h100", "--host", "h100-lent-host"], "apply to host-issued"),
    (["predict", "--model", "gpt2", "--hardware", "h100", "--profile", "hf-generate", "--host", "nope"],
     "unknown host 'nope'"),
    (["predict", "--model", "gpt2", "--hardware", "h100", "--profile", "eager-launch", "--host-speed", "0"],
     "must be positive"),
    (["simulate", "--model", "llama-3.1-70b", "--system", "dgx-h100", "--mapping", "tp:4,pp:2", "--batch", "4",
      "--profile", "eager-launch"], "one host driving a chain"),
    (["probe-host", "--out", "/no/such/dir/h.yaml"], "does not exist"),
    (["probe-host", "--cpu", "4096"], "pick one of those"),
    (["probe-host", "--cpu", "0", "--combine", "a.yaml"], "give one or the other"),
])
def test_bad_host_input_is_one_line_exit_2(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_hosts_command_lists_presets(capsys):
    assert main(["hosts"]) == 0
    out = capsys.readouterr().out
    assert "h100-lent-host" in out and "dev-cpu-2core" in out
    assert "h200-lent-host: --impl hf graphs default to h200-lent-host-hf" in out


def test_host_speed_and_host_are_study_axes():
    """sim.dse: a study can sweep the host (a preset or probe file) and its speed for host-issued profiles."""
    import pandas as pd
    from sim.dse.evaluate import evaluate
    speeds = [0.5, 1.0, 2.0, 8.0]
    pts = pd.DataFrame({"model": "llama-3.1-8b", "device": "h100", "phase": "decode", "batch": 1, "seq_len": 512,
                        "profile": "hf-generate", "host_speed": speeds})
    r = evaluate(pts)
    assert list(r["status"]) == ["ok"] * 4 and r["latency_s"].is_monotonic_decreasing
    one = api.predict("llama-3.1-8b", "h100", phase="decode", batch=1, seq_len=512, profile="hf-generate")
    assert r["latency_s"][1] == pytest.approx(one.latency_s, rel=1e-6)
    hosts = evaluate(pts.assign(host_speed=1.0, host=["h100-lent-host", "h200-lent-host", "dev-cpu-2core", ""]))
    assert hosts["latency_s"][0] > hosts["latency_s"][1] > hosts["latency_s"][2]
    assert hosts["latency_s"][3] == pytest.approx(hosts["latency_s"][0])           # the device's default host
    bad = evaluate(pts.assign(profile="eager"))
    assert bad["status"][0].startswith("error: host/host_speed apply to host-issued profiles")


def test_hf_code_gets_the_hosts_hf_variant_unless_host_is_given(tmp_path):
    """One launch cost does not fit both codes on the H200 machine: --impl hf graphs on a GPU whose default host
    names an `hf` variant are issued by that variant (h200-lent-host-hf), hwsim's own modules by the host itself;
    --host overrides both; a host with no variant serves both codes."""
    from hw_models.host import default_host
    h200, h100 = load_device("h200"), load_device("h100")
    assert load_host("h200-lent-host").variants == {"hf": "h200-lent-host-hf"}
    assert default_host(h200).id == "h200-lent-host" and default_host(h200, "hwsim").id == "h200-lent-host"
    assert default_host(h200, "hf").id == "h200-lent-host-hf"
    assert default_host(h100, "hf").id == "h100-lent-host-hf" and default_host(h100).id == "h100-lent-host"
    assert load_host("h100-lent-host-hf").costs_us["py_op"] > 0 and not load_host("dev-cpu-2core").variants
    pytest.importorskip("transformers")
    kw = dict(phase="decode", batch=1, seq_len=512, profile="hf-generate")
    assert api.predict("llama-3.1-8b", "h200", **kw).host == "h200-lent-host"
    hf = api.predict("llama-3.1-8b", "h200", impl="hf", **kw)
    assert hf.host == "h200-lent-host-hf"
    forced = api.predict("llama-3.1-8b", "h200", impl="hf", host="h200-lent-host", **kw)
    assert forced.host == "h200-lent-host" and forced.latency_s > hf.latency_s      # host-bound: 19.0 vs 13.0 us
    s = api.simulate("llama-3.1-8b", "h200", "single", impl="hf", check_memory=False, **kw)
    assert s.latency_s == pytest.approx(hf.latency_s, rel=1e-9)
    cases = tmp_path / "in.csv"
    cases.write_text("model,hardware,phase,batch,seq_len,impl\nllama-3.1-8b,h200,decode,1,512,hf\n"
                     "llama-3.1-8b,h200,decode,1,700,hf\nllama-3.1-8b,h200,decode,1,512,hwsim\n")
    own = api.predict("llama-3.1-8b", "h200", **kw)
    forced_own = api.predict("llama-3.1-8b", "h200", host="h200-lent-host", **kw)
    for extra, want in (([], (hf, own)), (["--host", "h200-lent-host"], (forced, forced_own))):
        out = tmp_path / "out.csv"
        assert main(["predict", "--cases", str(cases), "--profile", "hf-generate", "--out", str(out), *extra]) == 0
        rows = list(csv.DictReader(open(out)))
        assert float(rows[0]["latency_s"]) == pytest.approx(want[0].latency_s, rel=1e-5), extra
        assert float(rows[2]["latency_s"]) == pytest.approx(want[1].latency_s, rel=1e-5), extra


def _host_file(path, launch=5.0, py_op=None):
    host = load_host("h100-lent-host")
    costs = dict(host.costs_us, launch=launch)
    if py_op is not None:
        costs["py_op"] = py_op
    from hw_models.host import write_host_file
    path.write_text(write_host_file(str(path), f"t-{launch}-{py_op}", "test host",
                                    {k: (v, "s") for k, v in costs.items()}, {"s": "unit test"}, {"date": "x"}))
    return str(path)


def test_py_op_is_optional_and_adds_model_code_work_to_every_kernel(tmp_path):
    """A host file without py_op costs as before; with it, every issued kernel (launch or library) pays it, so a
    host-bound HF decode step grows by about py_op x kernels and a GPU-bound prefill barely moves."""
    bare = _host_file(tmp_path / "a.yaml")
    with_op = _host_file(tmp_path / "b.yaml", py_op=8.0)
    assert "py_op" not in load_host(bare).costs_us and load_host(with_op).costs_us["py_op"] == 8.0
    g = api.workload("qwen1.5-1.8b", "decode", 1, 512)
    a = HostModel(load_host(bare))
    b = HostModel(load_host(with_op))
    op = next(o for o in g.ops if len(o.kernels) >= 1)
    issued = len(op.kernels) + op.attrs.get("host_launches", 0)         # its kernels and its factories' kernels
    assert b.issue_s(op) - a.issue_s(op) == pytest.approx(8e-6 * issued)
    kw = dict(phase="decode", batch=1, seq_len=512, profile="eager-launch")
    t_a = api.predict("qwen1.5-1.8b", "h100", host=bare, **kw).latency_s
    t_b = api.predict("qwen1.5-1.8b", "h100", host=with_op, **kw).latency_s
    kernels = sum(max(1, len(o.kernels)) * o.runs for o in g.ops)
    assert t_b - t_a == pytest.approx(8e-6 * kernels, rel=0.1)
    big = dict(phase="prefill", batch=8, seq_len=4096, profile="eager-launch")
    assert api.predict("qwen1.5-1.8b", "h100", host=with_op, **big).latency_s == pytest.approx(
        api.predict("qwen1.5-1.8b", "h100", host=bare, **big).latency_s, rel=0.05)


def test_probe_host_combine_keeps_each_costs_least_value(tmp_path):
    slow = _host_file(tmp_path / "slow.yaml", launch=9.0, py_op=4.0)
    fast = _host_file(tmp_path / "fast.yaml", launch=6.0, py_op=12.0)
    out = tmp_path / "least.yaml"
    assert main(["probe-host", "--combine", slow, fast, "--id", "least", "--out", str(out)]) == 0
    h = load_host(str(out))
    assert h.id == "least" and h.costs_us["launch"] == 6.0 and h.costs_us["py_op"] == 4.0
    assert "least of 2 probes" in h.provenance.get("costs_us.launch", str(h.provenance))
    assert main(["probe-host", "--repeat", "0"]) == 2


def test_probe_host_combine_refuses_files_of_two_probe_methods(tmp_path, capsys):
    """Each probe method has its own host_op_scale, so a least-of over files of two methods (probe_version 1 and 2)
    would have none: one line, exit 2, nothing written; files of one method still combine and keep their version."""
    old = _host_file(tmp_path / "old.yaml", launch=6.0)
    new = tmp_path / "new.yaml"
    new.write_text(open(old).read().replace('date: "x"', 'date: "x"\n  probe_version: 2'))
    assert load_host(str(new)).machine["probe_version"] == 2
    out = tmp_path / "least.yaml"
    assert main(["probe-host", "--combine", old, str(new), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "probe_version 1 and 2" in err[0] and not out.exists()
    same = tmp_path / "same.yaml"
    same.write_text(new.read_text())
    assert main(["probe-host", "--combine", str(new), str(same), "--out", str(out)]) == 0
    assert load_host(str(out)).machine["probe_version"] == 2


def test_combined_probes_skip_a_zero_residual(tmp_path):
    """`probe-host --combine`: py_op is what is left of a layer's issue time after the probe's own costs; a probe
    whose other costs were caught high leaves 0, which is a failed reading, not the least value."""
    from sim.cli.host_cmd import least
    runs = [("h", "n", {"launch": (5.0, "a"), "py_op": (0.0, "b")}, {"a": "x", "b": "y"}, {}),
            ("h", "n", {"launch": (6.0, "a"), "py_op": (3.5, "b")}, {"a": "x", "b": "y"}, {})]
    _, _, costs, _, machine = least(runs)
    assert costs["launch"][0] == 5.0 and costs["py_op"][0] == 3.5 and machine["probes"] == 2


def test_combined_probes_keep_a_residual_only_some_measured():
    """`--repeat`/`--combine`: a probe that could not time the tiny Llama (transformers' import too slow for its
    budget) lacks py_op and py_call, and its step is the stand-in's; the combination keeps the least of the probes
    that measured them (generate()'s step, not a smaller stand-in), and says which costs none measured."""
    from sim.cli.host_cmd import least
    runs = [("h", "n", {"launch": (5.0, "a"), "step": (60.0, "s")}, {"a": "x", "s": "a stand-in"},
             {"not_measured": ["generate_step", "py_op", "py_call"]}),
            ("h", "n", {"launch": (6.0, "a"), "step": (600.0, "g"), "py_op": (3.0, "b"), "py_call": (5.0, "b")},
             {"a": "x", "b": "y", "g": "generate()"}, {})]
    _, _, costs, sources, machine = least(runs)
    assert costs["py_op"][0] == 3.0 and costs["py_call"][0] == 5.0 and costs["launch"][0] == 5.0
    assert costs["step"][0] == 600.0 and "not_measured" not in machine
    assert sources[costs["py_op"][1]].startswith("least of 1 probes")
    _, _, costs, sources, machine = least([runs[0], runs[0]])
    assert "py_op" not in costs and machine["not_measured"] == ["py_op", "py_call", "generate_step"]
    assert costs["step"][0] == 60.0
    assert "measured by none of the 2 probes" in sources["not_measured"]


def test_gpu_waiting_for_the_host_draws_host_wait_w():
    """An eager (host-issued) decode step's energy: its kernels' plus host_wait_w for every second the GPU waits for
    the host (the H100's fitted 79.5 W, benchmarks/host/fit_host_wait.py); without it, the busy static power."""
    from hw_models import load_device
    from sim import api
    dev = load_device("h100")
    plain = dev.model_copy(deep=True)
    plain.calibration.params.pop("host_wait_w", None)
    a = api.predict("llama-3.1-8b", dev, "decode", 1, 1024, profile="eager-launch", detail=True)
    b = api.predict("llama-3.1-8b", plain, "decode", 1, 1024, profile="eager-launch", detail=True)
    assert a.device_idle_s > 0 and a.latency_s == b.latency_s
    wait, static = dev.calibration.params["host_wait_w"], dev.calibration.params["static_w"]
    assert b.energy_j - a.energy_j == pytest.approx((static - wait) * a.device_idle_s, rel=1e-9)


def _probed_and_fitted(tmp_path, **extra):
    from hw_models.host import write_host_file
    costs = dict(load_host("h100-lent-host-hf").costs_us, **extra)
    probed = tmp_path / "probed.yaml"
    probed.write_text(write_host_file(str(probed), "p", "probed host", {k: (v, "gpu") for k, v in costs.items()},
                                      {"gpu": "measured here by `hwsim probe-host` on a GPU"}, {"date": "x"}))
    fitted = tmp_path / "fitted.yaml"
    fitted.write_text(write_host_file(str(fitted), "f", "fitted host", {k: (v, "fit") for k, v in costs.items()},
                                      {"fit": "fitted to whole steps"}, {"date": "x"}))
    return costs, str(probed), str(fitted)


def test_a_stacks_host_op_scale_scales_a_probed_hosts_model_code_costs_only(tmp_path, monkeypatch):
    """A host-issued stack's host_op_scale prices the model code's per-op costs (view, launch, library, module,
    py_op, py_call) of a host that `hwsim probe-host` measured at that many times the probe; the stopping check's
    sync and generate()'s own step work stay. A host whose launch was fitted to whole steps is not scaled, nor is a
    stack without it. hf-generate keeps 1.0: the fit on one lease's calibration architectures made held-out TPOT
    worse (hw_models/stacks.py)."""
    import dataclasses

    from hw_models import stacks
    from hw_models.host import SCALED
    assert stacks.STACKS["hf-generate"].host_op_scale == 1.0 and stacks.STACKS["eager-launch"].host_op_scale == 1.0
    monkeypatch.setitem(stacks.STACKS, "hf-generate", dataclasses.replace(stacks.STACKS["hf-generate"],
                                                                          host_op_scale=1.2))
    costs, probed, fitted = _probed_and_fitted(tmp_path, py_call=8.0)
    p, f = load_host(probed), load_host(fitted)
    assert p.probed and not f.probed and load_host("h100-lent-host-hf").probed
    assert not load_host("h200-lent-host-hf").probed
    hp, hf = HostModel(p, 1.2), HostModel(f, 1.2)
    for k in costs:
        assert hp.s[k] == pytest.approx(costs[k] * 1e-6 * (1.2 if k in SCALED else 1.0)), k
        assert hf.s[k] == pytest.approx(costs[k] * 1e-6), k
    kw = dict(phase="decode", batch=1, seq_len=512, impl="hwsim")
    eager = api.predict("qwen1.5-1.8b", "h100", profile="eager-launch", host=probed, **kw)
    gen = api.predict("qwen1.5-1.8b", "h100", profile="hf-generate", host=probed, **kw)
    assert gen.host_busy_s - costs["step"] * 1e-6 == pytest.approx(1.2 * eager.host_busy_s, rel=1e-9)
    eager_f = api.predict("qwen1.5-1.8b", "h100", profile="eager-launch", host=fitted, **kw)
    gen_f = api.predict("qwen1.5-1.8b", "h100", profile="hf-generate", host=fitted, **kw)
    assert gen_f.host_busy_s - costs["step"] * 1e-6 == pytest.approx(eager_f.host_busy_s, rel=1e-9)
    sim = api.simulate("qwen1.5-1.8b", "h100", "single", profile="hf-generate", host=probed, check_memory=False,
                       **kw)
    assert sim.latency_s == pytest.approx(gen.latency_s, rel=1e-9)      # the engine scales alike


def test_hf_generate_scales_a_probed_host_by_the_probe_method_that_wrote_it(tmp_path, capsys):
    """host_op_scale is fitted per probe method (machine.probe_version): the second method reads launches ~20% lower
    on the same machine, so hf-generate prices its files' model-code costs x1.16 (fitted on lease10's calibration
    architectures) and keeps 1.0 for files of the first method (no version) and for hosts not probed at all. The
    probe writes its version into every file it writes."""
    from hw_models.host import write_host_file
    from hw_models.stacks import STACKS, op_scale_for
    from sim.probe_host import PROBE_VERSION
    costs = load_host("h100-lent-host-hf").costs_us
    files = {}
    for v in (None, 2):
        f = tmp_path / f"v{v}.yaml"
        machine = {"date": "x"} if v is None else {"date": "x", "probe_version": v}
        f.write_text(write_host_file(str(f), "p", "probed", {k: (x, "gpu") for k, x in costs.items()},
                                     {"gpu": "measured here by `hwsim probe-host` on a GPU"}, machine))
        files[v] = load_host(str(f))
    assert PROBE_VERSION == 2 and files[None].probe_version == 1 and files[2].probe_version == 2
    assert load_host("h200-lent-host-hf").probe_version is None            # fitted, not probed
    assert dict(STACKS["hf-generate"].host_op_scale_by_probe) == {2: 1.16}
    assert op_scale_for("hf-generate", files[2]) == 1.16
    assert op_scale_for("hf-generate", files[None]) == 1.0 == op_scale_for("eager-launch", files[None])
    # the factor belongs to the probe method (it reads model-code costs low), so eager-launch's forwards of the same
    # model code take it too (carried over, nothing refitted; eleventh session); fused stacks issue no model code
    assert op_scale_for("eager-launch", files[2]) == 1.16 and op_scale_for("fused", files[2]) == 1.0
    assert op_scale_for("hf-generate", load_host("h200-lent-host-hf")) == 1.0
    kw = dict(phase="decode", batch=1, seq_len=512, impl="hwsim", profile="hf-generate")
    old = api.predict("qwen1.5-1.8b", "h100", host=str(tmp_path / "vNone.yaml"), **kw)
    new = api.predict("qwen1.5-1.8b", "h100", host=str(tmp_path / "v2.yaml"), **kw)
    assert new.host_busy_s - costs["step"] * 1e-6 == pytest.approx(1.16 * (old.host_busy_s - costs["step"] * 1e-6),
                                                                   rel=1e-9)
    args = ["predict", "--model", "qwen1.5-1.8b", "--hardware", "h100", "--phase", "decode", "--seq-len", "512",
            "--profile", "hf-generate", "--host"]
    assert main(args + [str(tmp_path / "v2.yaml")]) == 0
    assert "model-code costs x1.16" in capsys.readouterr().out               # the CLI says which factor it took
    assert main(args + [str(tmp_path / "vNone.yaml")]) == 0
    assert "model-code costs x" not in capsys.readouterr().out


def test_hf_code_is_priced_per_model_code_python_call(tmp_path):
    """The tracer counts HF model code's Python calls per op (attrs host_py: the forward's mask, rotary, cache and
    output work outside the layers included); HF graphs pay py_call per call and no per-kernel py_op, other graphs
    py_op per kernel as before. A host file without py_call (probed before it existed) gets py_op x 38 / 22, the
    probe's Llama layer's kernels over its model-code calls, so its measured residual per layer is kept."""
    pytest.importorskip("transformers")
    from hw_models.host import PROBE_CALLS, PROBE_KERNELS
    costs, probed, _ = _probed_and_fitted(tmp_path)
    assert "py_call" not in costs
    old = HostModel(load_host(probed), per_call=True)
    assert old.py_call_derived and old.s["py_call"] == pytest.approx(costs["py_op"] * 1e-6 * 38 / 22)
    assert (PROBE_KERNELS, PROBE_CALLS) == (38, 22)
    g = api.workload("qwen1.5-1.8b", "decode", 1, 512, impl="hf")
    calls = sum(op.attrs.get("host_py", 0) * op.runs for op in g.ops)
    outside = sum(op.attrs.get("host_py", 0) * op.runs for op in g.ops if op.group is None)
    assert calls > 20 * 24 and outside > 50          # every layer's calls, and the forward's own outside them
    own = api.workload("qwen1.5-1.8b", "decode", 1, 512)
    assert not any(op.attrs.get("host_py") for op in own.ops)      # hwsim's modules: no HF code
    per_kernel = HostModel(load_host(probed))
    with_call = tmp_path / "call.yaml"
    from hw_models.host import write_host_file
    with_call.write_text(write_host_file(str(with_call), "c", "c", {k: (v, "gpu") for k, v in
                                                                    dict(costs, py_call=10.0).items()},
                                         {"gpu": "measured here by `hwsim probe-host`"}, {"date": "x"}))
    given = HostModel(load_host(str(with_call)), per_call=True)
    assert not given.py_call_derived and given.s["py_call"] == pytest.approx(10e-6)
    kernels = sum((max(1, len(op.kernels)) + op.attrs.get("host_launches", 0)) * op.runs for op in g.ops)
    a = sum(given.issue_s(op) * op.runs for op in g.ops)
    b = sum(per_kernel.issue_s(op) * op.runs for op in g.ops)
    assert a - b == pytest.approx(10e-6 * calls - costs["py_op"] * 1e-6 * kernels, rel=1e-6)
    kw = dict(phase="decode", batch=1, seq_len=512, profile="hf-generate", host=str(with_call))
    hf = api.predict("qwen1.5-1.8b", "h100", impl="hf", **kw)
    assert hf.host_busy_s == pytest.approx(a + costs["step"] * 1e-6, rel=1e-6)


def test_probe_py_reference_for_a_gpu_whose_transformers_import_did_not_fit():
    """A GPU probe that could not time the tiny Llama estimates py_op/py_call from the preset host probed with
    transformers (the H200's preset host has no py_op, so the H100 lent host's is used), never a silent 0."""
    from hw_models.host import PROBE_CALLS, PROBE_KERNELS, load_host
    from sim.probe_host import _py_reference
    ref = load_host("h100-lent-host-hf").costs_us
    for name in ("NVIDIA H100 80GB HBM3", "NVIDIA H200", "Some Future GPU"):
        host_id, module, py_op, py_call = _py_reference(name)
        assert host_id == "h100-lent-host-hf"
        assert (module, py_op) == (ref["module"], ref["py_op"])
        assert abs(py_call - ref["py_op"] * PROBE_KERNELS / PROBE_CALLS) < 1e-9


def test_a_host_file_probed_on_an_unsteady_host_warns_once_when_loaded(tmp_path):
    from hw_models.host import write_host_file
    from sim.cli.host_cmd import least
    from workloads.errors import HwsimWarning
    costs = {k: (1.0, "x") for k in COSTS}
    machine = {"cpus": 16, "spread_p90_p10": {"launch": 1.5}, "steadiness": "unsteady (median loop spread 1.50x)"}
    path = tmp_path / "busy.yaml"
    path.write_text(write_host_file(str(path), "busy", "busy host", costs, {"x": "test"}, machine))
    with pytest.warns(HwsimWarning, match="unsteady"):
        load_host(str(path))
    # least of several probes: the file says how many were unsteady and does not warn again
    runs = [("busy", "busy host", costs, {"x": "test"}, machine), ("busy", "busy host", costs, {"x": "test"},
                                                                     {"cpus": 16, "steadiness": "steady"})]
    _, _, _, _, combined = least(runs)
    assert combined["steadiness"] == "least of 2 probes (1 of them unsteady)" and "spread_p90_p10" not in combined


def test_cpu_speeds_times_each_cpu_and_gives_the_process_its_cpus_back():
    """probe-host --scan-cpus: a Python loop timed on each CPU in turn (lent VMs' vCPUs ran it 1.75x apart)."""
    import os
    from sim.probe_host import allowed_cpus, cpu_speeds, pin_cpu
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this platform")
    before = allowed_cpus()
    speeds = cpu_speeds(seconds_each=0.005, calls=200)
    assert sorted(speeds) == before and all(0 < v < 1e5 for v in speeds.values())
    assert allowed_cpus() == before
    try:
        pin_cpu(before[-1])
        assert allowed_cpus() == [before[-1]]
        assert sorted(cpu_speeds(seconds_each=0.001, calls=100, cpus=before)) == before
        assert allowed_cpus() == [before[-1]]          # a scan ends where the process was pinned
    finally:
        os.sched_setaffinity(0, set(before))


@pytest.mark.parametrize("machine, warns", [
    ({"date": "x", "cpu_speed_spread": 1.75}, True),                       # CPUs 1.75x apart, probe not pinned
    ({"date": "x", "cpu_speed_spread": 1.75, "pinned_cpu": 2}, False),     # pinned: it describes CPU 2
    ({"date": "x", "cpu_speed_spread": 1.05}, False),
])
def test_a_host_file_from_cpus_of_different_speeds_warns_unless_pinned(tmp_path, machine, warns):
    import warnings
    from hw_models.host import write_host_file
    host = load_host("h100-lent-host")
    path = tmp_path / f"h{len(machine)}{machine['cpu_speed_spread']}.yaml"
    path.write_text(write_host_file(str(path), "t-cpus", "test host", {k: (v, "s") for k, v in host.costs_us.items()},
                                    {"s": "unit test"}, machine))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        load_host(str(path))
    said = [str(x.message) for x in w if "ran Python" in str(x.message)]
    assert bool(said) == warns
    if warns:
        assert "probe before and after" in said[0] and "1.75x" in said[0]   # pinning did not help (lease21)


def test_ops_that_cost_several_launches_on_a_gpu_host():
    """data/h100-2026-12-07-lease22-moe-op-costs: a CUB sort, an out-of-place masked_fill, histc and cumsum cost
    several launches on the host, _grouped_mm half a cuBLAS call more; a plain op costs one (its allocation is in
    the probe's model-code residual). Ratios, so a faster host's launch scales them."""
    from hw_models.host import EXTRA_LAUNCHES, EXTRA_LIBRARY
    hm = HostModel(load_host("h100-lent-host"))
    launch, library = hm.s["launch"], hm.s["library"]
    assert hm.kernel_s("add") == pytest.approx(launch + hm._py_op)
    assert hm.kernel_s("sort") == pytest.approx(launch * (29.48 / 5.54 - 0.42) + hm._py_op)
    assert hm.kernel_s("_grouped_mm") == pytest.approx(library * 20.12 / 13.4 + hm._py_op)
    assert 3.5 < EXTRA_LAUNCHES["sort"] < 4.5 and 1 < EXTRA_LAUNCHES["masked_fill"] < 1.5
    assert EXTRA_LIBRARY == {"_grouped_mm": pytest.approx(0.5, abs=0.01)}
    fast = HostModel(load_host("h100-lent-host").with_speed(2.0))
    assert fast.kernel_s("sort") == pytest.approx(hm.kernel_s("sort") / 2)


def test_a_row_gather_costs_more_than_a_one_d_index():
    """lease22's op costs: an index gathering rows of a 2-D tensor 17.6 us, a 1-D index 8.6 (an allocating op's)."""
    from hw_models.host import EXTRA_ROW_GATHER
    from workloads.graph import Kernel, Op
    hm = HostModel(load_host("h100-lent-host"))

    def index(shape):
        return Op(0, "experts.index", "elementwise", None, 1, (shape, (768,)), ((768,) + shape[1:],), "bf16", 0,
                  {"activation": 1}, kernels=(Kernel("index", 0, {"activation": 1}),))
    rows, flat = hm.issue_s(index((128, 2048))), hm.issue_s(index((768,)))
    assert rows - flat == pytest.approx(hm.s["launch"] * EXTRA_ROW_GATHER)
    assert 1.5 < EXTRA_ROW_GATHER < 2.0


# --- walk18: host files and speeds that used to load or run silently (NaN/inf costs, a non-mapping machine, a probe
# method from a newer hwsim, speed 0 taken as 1.0) ---------------------------------------------------------------
_GOOD = ("id: x\nname: y\nsources: {{s: here}}\n{machine}costs_us: {{source: s, view: {view}, launch: 1, library: 1, "
         "collective: 1, module: 1, sync: 1, graph_launch: 1, step: 1}}\nspeed: {speed}\n")


@pytest.mark.parametrize("view, speed, machine, words", [
    (".nan", 1, "", "costs_us.view must be a non-negative finite number"),
    (".inf", 1, "", "costs_us.view must be a non-negative finite number"),
    ("1", ".nan", "", "speed must be a positive finite number"),
    ("1", ".inf", "", "speed must be a positive finite number"),
    ("1", 1, "machine: [1, 2]\n", "machine must be a mapping"),
    ("1", 1, "machine: {probe_version: 99}\n", "probe_version 99 is not a probe method this hwsim knows"),
    ("1", 1, "machine: {probe_version: two}\n", "probe_version 'two' is not a probe method"),
])
def test_a_host_file_with_a_non_finite_cost_or_an_unknown_schema_is_one_line(tmp_path, view, speed, machine, words):
    """Found by hand (walk18): a NaN cost loaded and a predict dropped the host from the step (NaN lost in max()),
    inf gave an inf latency, `machine: [..]` and `probe_version: two` ended in exit 70, and `probe_version: 99`
    (a newer hwsim's probe method) was priced as method 1."""
    f = tmp_path / "h.yaml"
    f.write_text(_GOOD.format(view=view, speed=speed, machine=machine))
    with pytest.raises(HwsimError, match=words):
        load_host(str(f))
    assert main(["predict", "--model", "gpt2", "--hardware", "h100", "--profile", "eager-launch", "--host",
                 str(f)]) == 2


def test_a_good_host_file_of_this_template_loads(tmp_path):
    f = tmp_path / "h.yaml"
    f.write_text(_GOOD.format(view="1", speed=1, machine="machine: {probe_version: 2}\n"))
    assert load_host(str(f)).costs_us["view"] == 1.0


@pytest.mark.parametrize("speed", [0, 0.0, -1, float("nan"), float("inf"), "2", True, 1e-308])
def test_a_bad_host_speed_is_one_line_in_predict_simulate_and_sweeps(speed):
    """Found by hand (walk18): api.predict/simulate and study points took host_speed=0 as 'not given' (speed 1.0),
    NaN dropped the host from the step, inf made it free, '2' raised TypeError and 1e-308 gave a 4.8e306 s step."""
    kw = dict(phase="decode", profile="eager-launch", host_speed=speed)
    with pytest.raises(HwsimError, match="host speed"):
        api.predict("llama-3.1-8b", "h100", **kw)
    with pytest.raises(HwsimError, match="host speed"):
        api.simulate("llama-3.1-8b", "dgx-h100", mapping="tp:2", **kw)


def test_a_zero_host_speed_study_point_is_an_error_not_speed_one():
    import pandas as pd
    from sim.dse.evaluate import evaluate
    pts = pd.DataFrame({"model": "llama-3.1-8b", "device": "h100", "phase": "decode", "batch": 1, "seq_len": 512,
                        "profile": "eager-launch", "host_speed": [0.0, 2.0]})
    r = evaluate(pts)
    assert r["status"][0].startswith("error: host speed must be positive") and r["status"][1] == "ok"


@pytest.mark.parametrize("speed", ["0", "nan", "inf"])
def test_cli_host_speed_must_be_finite_and_positive(speed, capsys):
    assert main(["predict", "--model", "gpt2", "--hardware", "h100", "--profile", "eager-launch", "--host-speed",
                 speed]) == 2
    err = capsys.readouterr().err
    assert "--host-speed must be positive and finite" in err and len(err.strip().splitlines()) == 1


def test_combine_refuses_probes_of_two_machines_and_a_folder_is_named(tmp_path, capsys):
    """Found by hand (walk18): 'probe-host --combine h100-lent-host h200-lent-host' wrote a file with the H100 host's
    id and the H200 host's 19 us launch as 'least of 2 probes'; a folder given as a host file was 'not found'."""
    out = tmp_path / "least.yaml"
    assert main(["probe-host", "--combine", "h100-lent-host", "h200-lent-host", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "probed on different machines" in err[0] and not out.exists()
    a = _host_file(tmp_path / "a.yaml", launch=6.0)
    b = tmp_path / "b.yaml"
    b.write_text(open(a).read().replace('date: "x"', 'date: "x"\n  cpu: "Other CPU"'))
    assert main(["probe-host", "--combine", a, str(b), "--out", str(out)]) == 2
    assert "probed on different machines" in capsys.readouterr().err and not out.exists()
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(HwsimError, match="is a folder"):
        load_host(str(tmp_path / "dir.yaml"))


@pytest.mark.parametrize("host_id", ["a: b # c", "x\ny", "[1, 2]", "12", "yes"])
def test_a_probe_file_with_any_id_loads_back(tmp_path, host_id):
    """Found by hand (walk18): 'probe-host --id "a: b # c" --out F' (or an id with a newline) wrote an unquoted
    `id:` line, and the file it wrote did not load ('not valid YAML')."""
    from hw_models.host import write_host_file
    path = tmp_path / "h\nnewline.yaml"
    costs = {k: (1.0, "s") for k in COSTS}
    path.write_text(write_host_file(str(path), host_id, "n", costs, {"s": "probe-host unit test"}, {"date": "x"}))
    assert load_host(str(path)).id == host_id


def test_combining_a_combined_file_counts_its_probes_and_a_file_given_twice_is_refused(tmp_path, capsys):
    """Found by hand (walk18): '--combine least-of-2.yaml one.yaml' wrote 'least of 2 probes: least of 2 probes: ...'
    (3 probes, the source wrapped twice; steadiness 'least of 2 probes (1 of them unsteady)'), and '--combine a a'
    counted one probe file as two."""
    a = _host_file(tmp_path / "a.yaml", launch=9.0)
    b = _host_file(tmp_path / "b.yaml", launch=6.0)
    c = _host_file(tmp_path / "c.yaml", launch=7.0)
    ab, abc = tmp_path / "ab.yaml", tmp_path / "abc.yaml"
    assert main(["probe-host", "--combine", a, b, "--out", str(ab)]) == 0
    assert main(["probe-host", "--combine", str(ab), c, "--out", str(abc)]) == 0
    h = load_host(str(abc))
    assert h.costs_us["launch"] == 6.0 and h.machine["probes"] == 3
    src = h.provenance["costs_us.launch"]
    assert src.startswith("least of 3 probes: ") and src.count("least of") == 1
    capsys.readouterr()
    assert main(["probe-host", "--combine", a, str(tmp_path / "." / "a.yaml"), "--out", str(tmp_path / "x.yaml")]) == 2
    assert "twice" in capsys.readouterr().err and not (tmp_path / "x.yaml").exists()


@pytest.mark.parametrize("out, words", [("DIR", "it is a folder"), ("DIR/ro.yaml", "permission denied")])
def test_probe_host_out_is_checked_before_the_probe(tmp_path, monkeypatch, capsys, out, words):
    """Found by hand (walk18): 'probe-host --out DIR' ran the whole probe (up to its 10 s budget) and only then said
    'cannot write DIR: it is a folder'; the README promises output paths are checked before any work."""
    import os

    import sim.probe_host
    ro = tmp_path / "ro.yaml"
    ro.write_text("x")
    ro.chmod(0o444)
    if "ro.yaml" in out and os.access(ro, os.W_OK):
        pytest.skip("running as a user that writes read-only files")

    def no_probe(*a, **kw):
        raise AssertionError("probed before checking --out")
    monkeypatch.setattr(sim.probe_host, "probe", no_probe)
    assert main(["probe-host", "--budget", "1", "--out", out.replace("DIR", str(tmp_path))]) == 2
    assert words in capsys.readouterr().err


def test_a_host_speed_study_value_that_is_not_a_number_is_that_points_error():
    """Found by hand (walk18): a study with 'host_speed: [fast, 2]' ended 'hwsim sweep' in 'internal error
    (ValueError: could not convert string to float: fast)', exit 70, no results; a bad point gets its status."""
    import pandas as pd
    from sim.dse.evaluate import evaluate
    pts = pd.DataFrame({"model": "llama-3.1-8b", "device": "h100", "phase": "decode", "batch": 1, "seq_len": 512,
                        "profile": "eager-launch", "host": "dev-cpu-2core", "host_speed": ["fast", "2"]})
    r = evaluate(pts)
    assert r["status"][0] == "error: host_speed must be a number (2.0: a host twice as fast), got 'fast'"
    assert r["status"][1] == "ok"


def test_a_host_file_named_without_yaml_loads_from_the_working_folder(tmp_path, monkeypatch):
    """Found by hand (walk18): 'probe-host --out myhost' then '--host myhost' said "unknown host 'myhost'": a name
    without '/' or .yaml was only looked up among the presets."""
    _host_file(tmp_path / "myhost", launch=7.5)
    monkeypatch.chdir(tmp_path)
    assert load_host("myhost").costs_us["launch"] == 7.5
    with pytest.raises(HwsimError, match="unknown host 'otherhost'"):
        load_host("otherhost")


@pytest.mark.parametrize("extra", ["foo: 3\n", "version: 3\n", "schema: 2\n"])
def test_an_unknown_top_level_key_in_a_host_file_is_named(tmp_path, extra):
    """Found by hand (walk18): a host file with 'foo: 3' (or a 'version:' of another schema) said "foo = 3 has no
    source; write it as {value: 3, source: ...}", advice to source a key that a host file does not take."""
    f = tmp_path / "h.yaml"
    f.write_text(_GOOD.format(view="1", speed=1, machine="") + extra)
    with pytest.raises(HwsimError, match=r"unknown key\(s\) (foo|version|schema); a host file takes id, name"):
        load_host(str(f))


def test_combine_refuses_an_out_that_is_one_of_its_inputs(tmp_path, capsys):
    """`probe-host --combine A B --out A` replaced probe A with the combination: the input is gone."""
    a = _host_file(tmp_path / "a.yaml", launch=9.0, py_op=4.0)
    b = _host_file(tmp_path / "b.yaml", launch=6.0, py_op=12.0)
    before = (tmp_path / "a.yaml").read_text()
    assert main(["probe-host", "--combine", a, b, "--out", a]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--combine file itself" in err[0]
    assert (tmp_path / "a.yaml").read_text() == before
