"""Design-space exploration: studies, the one evaluate path, sweeps with Parquet resume, Dask, Pareto, search."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.dse import Study, evaluate
from sim.dse.evaluate import _device, _one, step_arrays
from sim.dse.pareto import pareto_mask
from sim.dse.run import run
from sim.dse.sensitivity import sensitivity
from sim.dse.study import study_from_source
from workloads.errors import HwsimError

ROOT = Path(__file__).resolve().parents[1]
SMALL = """
from sim.dse import Study
study = Study(
    name="small",
    axes={"model": ["llama-3.1-8b"], "device": ["h100", "a100"], "hw.hbm.bandwidth": ["2TB/s", "4TB/s"],
          "phase": ["decode", "prefill"], "quant": ["none", "w4a16"], "batch": [1, 8, 64], "seq_len": [128, 2048]},
    constraints=["fits", "latency_s <= 0.5"],
    objectives={"latency_s": "min", "tokens_per_j": "max"},
    chunk_size=16)
"""


def _study(text=SMALL, name="small.py"):
    return study_from_source(text, name)


def test_grid_order_is_deterministic_and_mixed_radix():
    s = _study()
    assert s.shape == (1, 2, 2, 2, 2, 3, 2) and s.size == 96
    pts = s.points(0, 96)
    assert list(pts.index) == list(range(96))
    assert list(pts["seq_len"][:4]) == [128, 2048, 128, 2048]          # last axis fastest
    assert list(pts["batch"][:6]) == [1, 1, 8, 8, 64, 64]
    assert pts.iloc[95]["device"] == "a100" and pts.iloc[0]["device"] == "h100"
    pd.testing.assert_frame_equal(s.points(40, 50), pts.iloc[40:50])


def test_zipped_axes_vary_together():
    s = Study(name="z", axes={"model": ["llama-3.1-8b"], "device": ["h100"], "seq_len": [128, 256],
                              "context": [10, 20], "batch": [1, 2]}, zip=[("seq_len", "context")])
    pts = s.points(0, s.size)
    assert s.size == 4 and set(zip(pts.seq_len, pts.context)) == {(128, 10), (256, 20)}


@pytest.mark.parametrize("kw,needle", [
    ({"axes": {"device": ["h100"]}}, "give a 'model' axis"),
    ({"axes": {"model": ["x"], "device": ["h100"], "colour": [1]}}, "unknown axis 'colour'"),
    ({"axes": {"model": ["x"], "device": ["h100"], "batch": [1, -2]}}, "non-negative whole numbers"),
    ({"axes": {"model": ["x"], "device": "h100"}}, "non-empty list"),
    ({"axes": {"model": ["x"], "device": ["h100"]}, "objectives": {"speed": "max"}}, "not a result column"),
    ({"axes": {"model": ["x"], "device": ["h100"]}, "objectives": {"latency_s": "least"}}, "'min' or 'max'"),
    ({"axes": {"model": ["x"], "device": ["h100"]}, "constraints": ["latency_s < fast"]}, "constraint"),
    ({"axes": {"model": ["x"], "system": ["dgx-h100"]}}, "needs a 'mapping' axis"),
])
def test_bad_studies_are_one_line_errors(kw, needle):
    with pytest.raises(HwsimError) as err:
        Study(name="bad", **kw)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_study_files_report_their_own_errors_in_one_line(tmp_path):
    with pytest.raises(HwsimError, match="syntax error at line 1"):
        study_from_source("study = Study(", "a.py")
    with pytest.raises(HwsimError, match="define `study = Study"):
        study_from_source("x = 1", "b.py")
    with pytest.raises(HwsimError, match="failed: ZeroDivisionError"):
        study_from_source("1/0", "c.py")
    y = _study("name: y\naxes: {model: [llama-3.1-8b], device: [h100], batch: [1, 2]}\n"
               "objectives: {latency_s: min}\n", "y.yaml")
    assert y.size == 2 and y.objectives == {"latency_s": "min"}


def test_vectorised_path_equals_per_point_predict():
    b, s, c = np.array([1, 3, 32]), np.array([100, 1000, 2048]), np.array([0, 0, 0])
    for quant in ("none", "w4a16", "fp8"):
        for phase in ("prefill", "decode"):
            r = step_arrays("llama-3.1-8b", "h100+hbm.bandwidth=4TB/s", phase, b, s, c, "bf16", quant, "", "eager")
            for i in range(3):
                one = _one("llama-3.1-8b", "h100+hbm.bandwidth=4TB/s", phase, b[i], s[i], c[i], "bf16", quant,
                           "", "eager")
                for k in ("latency_s", "energy_j", "avg_power_w", "peak_power_w", "clock_mhz"):
                    assert r[k][i] == pytest.approx(one[k], rel=1e-6)    # both bisect the power cap
                assert r["bound"][i] == one["bound"] and r["fits"][i] == one["fits"]


MIXED = """
from sim.dse import Study
study = Study(
    name="mixed",
    axes={"model": ["llama-3.1-8b", "mixtral-8x7b"], "device": ["h100", "a100"],
          "hw.hbm.bandwidth": ["2TB/s", "6.7TB/s"], "hw.sm_count": [66, 132], "quant": ["none", "w4a16", "fp8"],
          "phase": ["decode", "prefill"], "batch": [1, 3, 32, 200], "seq_len": [1, 100, 4000]})
"""


def test_mixed_dense_and_moe_study_equals_predict_point_by_point():
    """A chunk of dense and MoE points on several overridden devices (the sweep's array path, devices stacked)
    against api.predict of each sampled point on its own device text: the one-case fast path to 1e-12 and the
    full path (trace/template graph, per-op costs) to 1e-9; errors (fp8 on an A100) the same text."""
    from sim import api
    s = _study(MIXED, "mixed.py")
    pts = s.points(0, s.size)
    r = evaluate(pts)
    assert (r["status"] == "ok").mean() > 0.6 and r.loc[pts["model"] == "mixtral-8x7b", "status"].eq("ok").any()
    sample = pts.sample(14, random_state=5).index.tolist()
    sample += pts.index[(pts["device"] == "a100") & (pts["quant"] == "fp8")][:1].tolist()
    for i in sample:
        p, got = pts.loc[i], r.loc[i]
        hw = f"{p['device']}+hbm.bandwidth={p['hw.hbm.bandwidth']}+sm_count={p['hw.sm_count']}"
        assert got["hardware"] == hw
        args = (p["model"], hw, p["phase"], int(p["batch"]), int(p["seq_len"]), 0)
        try:
            fast = api.predict(*args, quant=p["quant"])
        except HwsimError as exc:
            assert got["status"] == f"error: {exc}" and np.isnan(got["latency_s"])
            continue
        full = api.predict(*args, quant=p["quant"], detail=True)
        assert got["status"] == "ok"
        for f in ("latency_s", "energy_j", "avg_power_w", "peak_power_w", "clock_mhz"):
            assert got[f] == pytest.approx(getattr(fast, f), rel=1e-12, abs=0), (i, f)
            assert got[f] == pytest.approx(getattr(full, f), rel=1e-9, abs=0), (i, f)
        assert got["bound"] == full.bound and bool(got["fits"]) == full.fits


def test_points_are_grouped_on_codes_and_hardware_text_is_built_per_device():
    from sim.dse.encode import encode
    pts = pd.DataFrame({"model": ["llama-3.1-8b", "mixtral-8x7b", "llama-3.1-8b", "llama-3.1-8b"],
                        "device": ["h100", "h100", "a100", "h100"], "hw.clock": [1.5, np.nan, 1.2, 1.5],
                        "hw.sm_count": [66, 66, 132, 66], "host_speed": [1.0, 1.0, 1.0, 2.0]})
    enc = encode(pts)
    assert list(enc.hardware[enc.hw]) == ["h100+clock=1.5+sm_count=66", "h100+sm_count=66",
                                          "a100+clock=1.2+sm_count=132", "h100+clock=1.5+sm_count=66"]
    assert len(enc.hardware) == 3 and enc.hw[0] == enc.hw[3]
    keys = [(k[0], k[7], list(idx)) for k, idx in enc.groups]
    assert keys == [("llama-3.1-8b", "1.0", [0, 2]), ("mixtral-8x7b", "1.0", [1]), ("llama-3.1-8b", "2.0", [3])]
    assert list(enc.b) == [1, 1, 1, 1] and list(enc.s) == [512] * 4


def test_evaluate_rows_errors_serve_and_derived_metrics():
    pts = pd.DataFrame({"model": ["llama-3.1-8b", "llama-3.1-8b", "llama-3.1-8b", "llama-3.1-8b", "no-such-model"],
                        "device": ["h100", "h100+clock=fast", "tpu-v4", "h100", "h100"],
                        "phase": ["decode", "decode", "decode", "serve", "decode"],
                        "batch": [8, 8, 8, 4, 1], "seq_len": [1024, 1024, 1024, 512, 128],
                        "output_len": [0, 0, 0, 128, 0]}, index=[10, 11, 12, 13, 14])
    r = evaluate(pts)
    assert list(r.index) == [10, 11, 12, 13, 14]
    assert r.loc[10, "status"] == "ok" and r.loc[12, "status"] == "ok"
    assert r.loc[11, "status"].startswith("error: override clock=fast") and np.isnan(r.loc[11, "latency_s"])
    assert r.loc[14, "status"].startswith("error: ") and "no-such-model" in r.loc[14, "status"]
    assert r.loc[10, "tokens_per_s"] == pytest.approx(8 / r.loc[10, "latency_s"])
    assert r.loc[10, "usd_per_mtoken"] == pytest.approx(11.06 / 3600 * r.loc[10, "latency_s"] / 8 * 1e6)
    assert r.loc[10, "price_basis"] == "cloud" and r.loc[10, "area_mm2"] > 700
    serve = r.loc[13]
    assert serve["latency_s"] == pytest.approx(serve["ttft_s"] + 128 * serve["tpot_s"])
    assert serve["tokens"] == 4 * 128


def test_sweep_writes_parquet_parts_and_final_table(tmp_path):
    s = _study()
    res = run(s, tmp_path / "out", workers=1, progress=False)
    df = res.table
    assert len(df) == 96 and list(df["point"]) == list(range(96))
    assert len(list((tmp_path / "out" / "parts").glob("part-*.parquet"))) == 6
    back = pd.read_parquet(tmp_path / "out" / "results.parquet")
    pd.testing.assert_frame_equal(back, df)
    assert df["pareto"].sum() >= 1 and not (df["pareto"] & ~df["feasible"]).any()
    assert (df.loc[df["feasible"], "latency_s"] <= 0.5).all()
    manifest = json.loads((tmp_path / "out" / "study.json").read_text())
    assert manifest["points"] == 96 and manifest["chunk_size"] == 16
    with pytest.raises(HwsimError, match="already holds a sweep"):
        run(s, tmp_path / "out", workers=1, progress=False)
    again = run(s, tmp_path / "out", resume=True, workers=1, progress=False)
    assert again.computed_chunks == 0 and again.computed_points == 0
    changed = _study(SMALL.replace('"batch": [1, 8, 64]', '"batch": [1, 8]'), "small.py")
    with pytest.raises(HwsimError, match="different grid"):
        run(changed, tmp_path / "out", resume=True, workers=1, progress=False)


def test_local_process_pool_and_two_worker_dask_cluster_give_identical_results(tmp_path):
    s = _study()
    serial = run(s, tmp_path / "serial", workers=1, progress=False).table
    pool = run(s, tmp_path / "pool", workers=2, progress=False).table
    dask = run(s, tmp_path / "dask", dask=True, workers=2, progress=False).table
    pd.testing.assert_frame_equal(serial, pool)
    pd.testing.assert_frame_equal(serial, dask)


KILL_STUDY = """
from sim.dse import Study
study = Study(name="killme",
    axes={"model": ["llama-3.1-8b"], "device": ["tpu-v4"], "phase": ["decode"],
          "batch": list(range(1, 41)), "seq_len": list(range(100, 3100, 100))},
    objectives={"latency_s": "min", "energy_j": "min"}, chunk_size=40)
"""


def _digest(p: Path) -> str:
    return hashlib.sha1(p.read_bytes()).hexdigest()


def test_kill_minus_9_mid_sweep_then_resume_loses_and_recomputes_nothing(tmp_path):
    study_file = tmp_path / "killme.py"
    study_file.write_text(KILL_STUDY)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "sim.cli", "sweep", str(study_file), "--out", str(out), "--workers", "2", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    parts = out / "parts"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("part-*.parquet"))) < 4:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)          # the driver and its workers, mid-run
    proc.wait()
    before = {p.name: (_digest(p), p.stat().st_mtime_ns) for p in parts.glob("part-*.parquet")}
    total_chunks = 30
    assert 4 <= len(before) < total_chunks, "the sweep finished before it could be killed"
    assert not (out / "results.parquet").exists()
    res = subprocess.run(cmd + ["--resume", "--json"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    after = {p.name: (_digest(p), p.stat().st_mtime_ns) for p in parts.glob("part-*.parquet")}
    assert all(after[name] == v for name, v in before.items())             # finished chunks untouched
    assert doc["result"]["computed_points"] == (total_chunks - len(before)) * 40   # and not recomputed
    df = pd.read_parquet(out / "results.parquet")
    assert list(df["point"]) == list(range(1200)) and (df["status"] == "ok").all()
    sample = df.sample(8, random_state=0)
    fresh = evaluate(sample[["model", "device", "phase", "batch", "seq_len"]])
    np.testing.assert_array_equal(fresh["latency_s"].to_numpy(), sample["latency_s"].to_numpy())


def _brute_front(v):
    keep = np.ones(len(v), dtype=bool)
    nan = np.isnan(v).any(axis=1)
    for i in range(len(v)):
        if nan[i]:
            keep[i] = False
            continue
        dom = np.all(v <= v[i], axis=1) & np.any(v < v[i], axis=1) & ~nan
        keep[i] = not dom.any()
    return keep


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.lists(st.lists(st.integers(0, 5), min_size=4, max_size=4), min_size=1, max_size=80))
def test_pareto_mask_matches_brute_force(k, rows):
    v = np.array(rows, dtype=float)[:, :k]
    v[::7, 0] = np.nan
    np.testing.assert_array_equal(pareto_mask(v), _brute_front(v))


def test_search_is_deterministic_and_its_front_is_feasible(tmp_path):
    s = _study()
    a = __import__("sim.dse.search", fromlist=["search"]).search(s, tmp_path / "a", budget=32, seed=3, progress=False)
    b = __import__("sim.dse.search", fromlist=["search"]).search(s, tmp_path / "b", budget=32, seed=3, progress=False)
    assert len(a) == 32
    pd.testing.assert_frame_equal(a, b)
    assert a["pareto"].any() and not (a["pareto"] & ~a["feasible"]).any()


def test_sensitivity_ranks_the_axis_that_matters_first():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"big": np.repeat([1, 10, 100], 40), "small": np.tile([1, 2], 60),
                       "status": "ok"})
    df["y"] = df["big"] * (1 + 0.05 * df["small"]) * rng.uniform(0.99, 1.01, len(df))
    rows = sensitivity(df, ["small", "big"], "y")
    assert rows[0]["axis"] == "big" and rows[0]["first_order"] > 0.95 and rows[0]["best"] == "1"
    assert rows[1]["first_order"] < 0.05


def test_cli_sweep_report_and_one_line_errors(tmp_path):
    study_file = tmp_path / "small.py"
    study_file.write_text(SMALL)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def hwsim(*args):
        return subprocess.run([sys.executable, "-m", "sim.cli", "sweep", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True)
    ok = hwsim(str(study_file), "--out", str(tmp_path / "o"), "--workers", "1", "--report", "--csv", "--quiet")
    assert ok.returncode == 0, ok.stderr
    assert "on the Pareto front" in ok.stdout
    page = (tmp_path / "o" / "report.html").read_text()
    assert "data:image/png;base64," in page and "Sensitivity" in page and "Roofline of design" in page
    assert (tmp_path / "o" / "results.csv").exists()
    for args, needle in [((str(tmp_path / "nope.py"),), "not found"),
                         ((str(study_file), "--workers", "0"), "--workers must be at least 1"),
                         ((str(study_file), "--out", str(tmp_path / "o")), "already holds a sweep"),
                         ((str(study_file), "--scheduler", "localhost:1"), "tcp://host:8786"),
                         ((str(study_file), "--out", str(tmp_path / "no" / "dir")), "does not exist")]:
        bad = hwsim(*args)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and needle in bad.stderr, bad.stderr
    assert not (tmp_path / "no").exists()


def test_systems_and_serving_go_through_the_same_evaluate():
    pts = pd.DataFrame({"model": ["llama-3.1-70b"] * 3, "system": ["dgx-h100"] * 3, "mapping": ["tp:8", "tp:8", "tp:4"],
                        "phase": ["decode", "decode", "serve"], "batch": [8, 8, 4], "seq_len": [2048, 2048, 512],
                        "output_len": [0, 0, 32], "hw.nvlink": ["900GB/s", "3.6TB/s", "900GB/s"]})
    r = evaluate(pts)
    assert (r["status"] == "ok").all() and list(r["devices"]) == [8, 8, 4]
    assert r.loc[1, "latency_s"] < r.loc[0, "latency_s"]               # a faster NVLink shortens the all-reduces
    assert r.loc[2, "latency_s"] == pytest.approx(r.loc[2, "ttft_s"] + 32 * r.loc[2, "tpot_s"])
    assert r.loc[0, "usd_per_hour"] == pytest.approx(8 * 11.06)


def test_python_api_for_notebooks_and_where_errors(tmp_path):
    from sim.dse import sweep
    s = Study(name="nb", axes={"model": ["llama-3.1-8b"], "device": ["h100", "a100"], "batch": [1, 2, 4, 8]},
              where=lambda p: p["batch"] != 2, objectives={"latency_s": "min", "energy_j": "min"}, chunk_size=3)
    local = sweep(s, tmp_path / "a", workers=2, progress=False).table      # no file: forked workers inherit it
    serial = sweep(s, tmp_path / "b", workers=1, progress=False).table
    pd.testing.assert_frame_equal(local, serial)
    assert (local["status"] == "skipped").sum() == 2
    bad = Study(name="bad", axes={"model": ["llama-3.1-8b"], "device": ["h100"], "batch": [1]},
                where=lambda p: p["colour"] == "red")
    with pytest.raises(HwsimError, match="its where\\(\\) failed: KeyError"):
        sweep(bad, tmp_path / "c", workers=1, progress=False)


@pytest.mark.skipif(not os.environ.get("HWSIM_SLOW"), reason="about a minute of both cores: set HWSIM_SLOW=1")
def test_million_point_sweep_under_two_minutes():
    out = subprocess.run([sys.executable, "benchmarks/sweep_speed.py"], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    points = int(out.stdout.split("study: ")[1].split(" points")[0].replace(",", ""))
    seconds = float(out.stdout.split("final table, Pareto): ")[1].split(" s")[0])
    assert points >= 1_000_000 and seconds < 120


@pytest.mark.parametrize("axis,values,needle", [
    ("model", ["llama-3.1-8b", "llama-9"], "axis model: unknown model"),
    ("device", ["h100", "h1000"], "axis device: unknown hardware 'h1000'"),
    ("hw.hbm.bandwidth", ["4TB/s", "4 GHz"], "axis hw.hbm.bandwidth: override hbm.bandwidth=4 GHz"),
    ("quant", ["w4a16", "w9q"], "axis quant: unknown quantization 'w9q'"),
    ("phase", ["decode", "generate"], "axis phase: 'generate' is not one of"),
])
def test_typos_in_a_study_fail_before_anything_is_written(tmp_path, axis, values, needle):
    axes = {"model": ["llama-3.1-8b"], "device": ["h100"], "batch": [1], axis: values}
    s = Study(name="typo", axes=axes)
    with pytest.raises(HwsimError, match=needle):
        run(s, tmp_path / "out", workers=1, progress=False)
    assert not (tmp_path / "out").exists()


def test_sweeps_keep_freed_memory_for_reuse_unless_told_not_to():
    """sim/dse/malloc.py: glibc's trim and mmap thresholds raised once per process (a chunk otherwise maps tens
    of thousands of fresh pages); HWSIM_MALLOC_DEFAULTS=1 keeps the defaults."""
    import ctypes
    code = "from sim.dse.malloc import keep_freed_memory as k; print(k(), k())"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    glibc = hasattr(ctypes.CDLL(None), "gnu_get_libc_version")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.stdout.split() == [str(glibc)] * 2
    env["HWSIM_MALLOC_DEFAULTS"] = "1"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["False", "False"]


def test_evaluate_runs_on_one_blas_thread_and_restores_it():
    from sim.dse.blas import _openblas, one_thread
    funcs = _openblas()
    if funcs is None:
        pytest.skip("numpy's BLAS is not OpenBLAS")
    before = funcs[1]()
    with one_thread():
        assert funcs[1]() == 1
    assert funcs[1]() == before


def test_local_workers_are_capped_at_the_chunks_to_run(tmp_path, monkeypatch):
    """`--workers 64` on a 6-chunk study forked 64 processes; a resume with 2 chunks left needs at most 2."""
    import sim.dse.run as dse_run
    asked = []
    real = dse_run.executor

    def spy(workers=None, scheduler=None, dask=False):
        asked.append(workers)
        return real(1, scheduler, dask)              # run serially here: only the number asked for is checked
    monkeypatch.setattr(dse_run, "executor", spy)
    run(_study(), tmp_path / "out", workers=64, progress=False)
    assert asked == [6]
