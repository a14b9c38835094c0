"""A new user's pass over the Python API (docs/api.md) and `hwsim tile/hosts/warm/systems/mappings` (walk22b):
each test fails on the code before its fix. A bad argument raises one HwsimError naming it, never a deep
KeyError/AttributeError/TypeError or a silently wrong figure."""
import pytest

from sim import api
from workloads.errors import HwsimError


def raises(match, fn, *args, **kwargs):
    with pytest.raises(HwsimError, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)
    return info.value


# --- predict ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("phase", ["foo", None, 3, "Decode"])
def test_predict_unknown_phase_is_one_line(phase):
    """An unknown phase went on to the compiled-step builder: KeyError: 'foo' from workloads/template.py."""
    raises("unknown phase", api.predict, "llama-3.1-8b", "h100", phase=phase, batch=8, seq_len=2048)


@pytest.mark.parametrize("batch", [None])
def test_predict_batch_none_is_one_line(batch):
    """batch=None: TypeError: unsupported operand type(s) for * (the tokens count before the step's check)."""
    raises("batch must be a positive integer", api.predict, "llama-3.1-8b", "h100", phase="decode", batch=batch,
           seq_len=2048)


# --- place / simulate / step_cost / Pool: the system and the mapping -------------------------------------------

def _graph():
    return api.workload("llama-3.1-8b", phase="decode", batch=2, seq_len=64)


BAD_SYSTEMS = [None, 3, ["dgx-h100"]]
BAD_MAPPINGS = [None, 8, ("tp", 4), ["tp:4"]]


@pytest.mark.parametrize("system", BAD_SYSTEMS)
def test_bad_system_type_is_one_line(system):
    """system=None/3 reached the mapping strategies: AttributeError: 'NoneType' object has no attribute 'devices'."""
    raises("system must be", api.place, _graph(), system, "single")
    raises("system must be", api.simulate, "llama-3.1-8b", system, phase="decode", batch=2, seq_len=64)
    raises("system must be", api.step_cost, "llama-3.1-8b", system, "single", decodes=1)


@pytest.mark.parametrize("mapping", BAD_MAPPINGS)
def test_bad_mapping_type_is_one_line(mapping):
    """mapping=None/8: AttributeError: 'NoneType' object has no attribute 'split' (mapping/registry.py)."""
    raises("mapping must be", api.place, _graph(), "dgx-h100", mapping)
    raises("mapping must be", api.simulate, "llama-3.1-8b", "dgx-h100", mapping, phase="decode", batch=2, seq_len=64)
    raises("mapping must be", api.step_cost, "llama-3.1-8b", "dgx-h100", mapping, decodes=1)


@pytest.mark.parametrize("graph", [None, "llama-3.1-8b"])
def test_place_needs_a_traced_graph(graph):
    """place(None or a model name, ...): AttributeError: 'str' object has no attribute 'ops'."""
    raises("place needs a traced step", api.place, graph, "dgx-h100", "tp:2")


# --- step_cost: the step's numbers ------------------------------------------------------------------------------

def _step(**kwargs):
    args = {"chunks": [(512, 0)], "decodes": 4, "decode_context": 400}
    args.update(kwargs)
    return api.step_cost("llama-3.1-8b", "dgx-h100", "tp:4", **args)


@pytest.mark.parametrize("chunks", [None, [512], (512, 0), [(512, 0, 1)], [("a", 0)], [(float("nan"), 0)],
                                    [(1.5, 0)], [(512, 0.5)]])
def test_step_cost_bad_chunks_are_one_line(chunks):
    """chunks=None/[512]: TypeError (not iterable, cannot unpack); [(1.5, 0)] was priced as a 1-token chunk;
    NaN or text: a bare ValueError from int()."""
    raises("chunks", _step, chunks=chunks)


@pytest.mark.parametrize("decodes", [None, "4", 1.5, float("nan")])
def test_step_cost_bad_decodes_are_one_line(decodes):
    """decodes=None/'4': TypeError on '<'; 1.5 was priced as 1 decode; NaN a bare ValueError from int()."""
    raises("decodes", _step, decodes=decodes)


@pytest.mark.parametrize("context", ["x", float("nan"), 400.5])
def test_step_cost_bad_decode_context_is_one_line(context):
    raises("decode_context", _step, decode_context=context)


@pytest.mark.parametrize("logits", [-1, 6, 100_000, "x", 1.5])
def test_step_cost_logits_outside_the_steps_rows_is_one_line(logits):
    """logits=-1 gave time_s=nan, energy_j=nan (a silently wrong result); 100000 or 'x' an IndexError from the
    LM-head table. The LM head runs 0..decodes + chunks rows."""
    raises("logits", _step, logits=logits)


@pytest.mark.parametrize("sizes", [{"max_seqs": 0}, {"max_seqs": -1}, {"max_seqs": None}, {"max_tokens": None},
                                   {"max_tokens": 0}, {"max_tokens": 1.5}, {"max_context": -5},
                                   {"max_context": "x"}])
def test_step_cost_bad_table_bounds_are_one_line(sizes):
    """max_seqs=0: IndexError from the LM-head table; max_tokens=None: TypeError from int(); max_tokens=0 was
    taken (tables of no tokens, a 512-token chunk still priced)."""
    raises(next(iter(sizes)), _step, **sizes)


def test_step_cost_more_sequences_than_max_seqs_is_one_line():
    """4 decodes and a chunk (5 sequences) against max_seqs=2: IndexError: index 5 is out of bounds."""
    raises("max_seqs", _step, max_seqs=2)


def test_step_cost_good_logits_still_priced():
    full, none = _step(), _step(logits=0)
    assert 0 < none.time_s < full.time_s
    assert _step(logits=5).time_s == full.time_s


# --- serve / Pool ------------------------------------------------------------------------------------------------

def _requests():
    from workloads.requests import synthetic
    return synthetic(5, rate=2.0, source="fixed:64:4")


@pytest.mark.parametrize("requests", [None, [1, 2], "requests.csv"])
def test_serve_needs_a_request_table(requests):
    """serve(None, pool): AttributeError: 'NoneType' object has no attribute 'columns' (workloads/requests.py)."""
    raises("request table", api.serve, requests, api.Pool("llama-3.1-8b", "h100"))


@pytest.mark.parametrize("pool", [None, "llama-3.1-8b", 5])
def test_serve_needs_a_pool(pool):
    """serve(requests, None): AttributeError: 'NoneType' object has no attribute 'replicas'."""
    raises("Pool", api.serve, _requests(), pool)


@pytest.mark.parametrize("replicas", [None, 1.5, "2"])
def test_pool_replicas_must_be_a_whole_number(replicas):
    """replicas=None: TypeError on '<='; 1.5: 'float' object cannot be interpreted as an integer."""
    raises("replica", api.serve, _requests(), api.Pool("llama-3.1-8b", "h100", replicas=replicas))


# --- workloads.requests.synthetic (docs/api.md's request table) --------------------------------------------------

@pytest.mark.parametrize("n", [None, 1.5, "10"])
def test_synthetic_request_count_is_a_whole_number(n):
    """n=None: TypeError on '<='; n=1.5: a numpy TypeError from the generator."""
    from workloads.requests import synthetic
    raises("number of requests", synthetic, n, rate=2.0, source="fixed:64:4")


@pytest.mark.parametrize("rate", ["x", None, True])
def test_synthetic_rate_is_a_number(rate):
    """rate='x': TypeError on '<='."""
    from workloads.requests import synthetic
    raises("request rate", synthetic, 5, rate=rate, source="fixed:64:4")


@pytest.mark.parametrize("cv", [float("nan"), float("inf"), "x", 0])
def test_synthetic_gamma_cv_is_a_positive_number(cv):
    """cv=nan gave arrival times [0, nan, nan, ...] (silently wrong), inf a ZeroDivisionError, 'x' a TypeError."""
    from workloads.requests import synthetic
    raises("arrival CV", synthetic, 5, rate=2.0, source="fixed:64:4", arrival="gamma", cv=cv)


@pytest.mark.parametrize("seed", ["x", -1, 1.5])
def test_synthetic_seed_is_a_whole_number(seed):
    """seed='x'/1.5: numpy's SeedSequence TypeError; -1 its ValueError."""
    from workloads.requests import synthetic
    raises("seed", synthetic, 5, rate=2.0, source="fixed:64:4", seed=seed)


# --- frame ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("results", [None, [1], ["x"], 5])
def test_frame_takes_a_list_of_results(results):
    """frame(None): TypeError 'NoneType' object is not iterable; frame([1]): AttributeError 'to_row'."""
    raises("frame takes", api.frame, results)


def test_frame_of_one_result_is_refused_in_one_line():
    """frame(r) of a single result: TypeError: 'PredictResult' object is not iterable."""
    r = api.predict("llama-3.1-8b", "h100", phase="decode", batch=1, seq_len=128)
    raises(r"frame takes a list of results.*\[r\]", api.frame, r)
    assert len(api.frame([r, r])) == 2


# --- predict: host -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", [3, ["h100-lent-host"], 2.0])
def test_predict_host_of_a_wrong_type_says_what_host_takes(host):
    """host=3 said 'no host given' (a host was given: the wrong type); now it names host and what it takes."""
    raises("host must be a host preset id", api.predict, "llama-3.1-8b", "h100", phase="decode", batch=1,
           seq_len=128, profile="eager-launch", host=host)


def test_predict_host_as_a_path(tmp_path):
    """host=Path(file) said 'no host given'; a PathLike is the file it names, as a str path is."""
    import shutil
    from pathlib import Path

    from hw_models.host import HOST_DIR
    path = Path(tmp_path) / "host.yaml"
    shutil.copy(HOST_DIR / "h100-lent-host.yaml", path)
    a = api.predict("llama-3.1-8b", "h100", phase="decode", batch=1, seq_len=128, profile="eager-launch", host=path)
    b = api.predict("llama-3.1-8b", "h100", phase="decode", batch=1, seq_len=128, profile="eager-launch",
                    host=str(path))
    assert a.latency_s == b.latency_s > 0


@pytest.mark.parametrize("model", [None, 3])
def test_step_cost_bad_model_type_is_one_line(model):
    """model=None: AttributeError: 'NoneType' object has no attribute 'name' (sim/serving/step_cost.py)."""
    raises("model must be", api.step_cost, model, "h100", decodes=1)


def test_step_cost_model_as_a_path():
    """a pathlib.Path config.json was taken as a ModelSpec: AttributeError (no attribute max_positions);
    now it is read as the str path is."""
    from workloads.zoo import ZOO_DIR
    a = api.step_cost(ZOO_DIR / "gpt2.json", "h100", decodes=2, decode_context=100)
    b = api.step_cost(str(ZOO_DIR / "gpt2.json"), "h100", decodes=2, decode_context=100)
    assert a.time_s == b.time_s > 0


def test_simulate_a_device_spec_says_to_name_the_preset():
    """simulate(model, DeviceSpec): AttributeError 'DeviceSpec' object has no attribute 'devices' deep in mapping/;
    now one line: pass the preset name (a one-device system) or use predict."""
    from hw_models import load_device
    raises("pass its preset name 'h100-sxm-80gb'", api.simulate, "llama-3.1-8b", load_device("h100"),
           phase="decode", batch=2, seq_len=64)


@pytest.mark.parametrize("field,value", [("max_seqs", 1.5), ("max_seqs", "x"), ("max_tokens", 1.5),
                                         ("max_tokens", 0), ("memory_utilization", "x"), ("role", "x"),
                                         ("role", None)])
def test_pool_bad_field_is_one_line(field, value):
    """Pool(max_seqs=1.5) or max_tokens=1.5: IndexError from the step tables; max_seqs='x' or
    memory_utilization='x': TypeError on '<'; role='x' was served as 'both' (silently)."""
    raises(field, api.serve, _requests(), api.Pool("llama-3.1-8b", "h100", **{field: value}))


@pytest.mark.parametrize("gbps", ["x", [1]])
def test_serve_kv_link_gbps_of_a_wrong_type_is_one_line(gbps):
    """kv_link_gbps='x': TypeError: must be real number, not str (math.isfinite)."""
    raises("kv_link_gbps must be a number", api.serve, _requests(), api.Pool("llama-3.1-8b", "h100"), kv_link_gbps=gbps)


# --- numpy integers (a sweep over np.arange) ---------------------------------------------------------------------

def test_numpy_integer_sizes_are_taken():
    """batch=np.int64(8) (from np.arange or a DataFrame column) was refused: 'batch must be a positive integer,
    got np.int64(8)'; now a numpy integer is that whole number, with the same figures as the int."""
    import numpy as np
    a = api.predict("llama-3.1-8b", "h100", phase="decode", batch=8, seq_len=2048)
    b = api.predict("llama-3.1-8b", "h100", phase="decode", batch=np.int64(8), seq_len=np.int32(2048))
    assert b.latency_s == a.latency_s and type(b.batch) is int and type(b.seq_len) is int
    c = api.predict("llama-3.1-8b", "h100", phase="chunked_prefill", batch=np.int64(2), seq_len=np.int64(256),
                    context=np.int64(512))
    assert c.latency_s == api.predict("llama-3.1-8b", "h100", phase="chunked_prefill", batch=2, seq_len=256,
                                      context=512).latency_s
    s = api.simulate("llama-3.1-8b", "dgx-h100", "tp:2", phase="decode", batch=np.int64(4), seq_len=np.int64(256))
    assert s.latency_s == api.simulate("llama-3.1-8b", "dgx-h100", "tp:2", phase="decode", batch=4,
                                       seq_len=256).latency_s
    d = api.predict("llama-3.1-8b", "h100", phase="decode", batch=np.int64(8), seq_len=2048, detail=True)
    assert d.latency_s == pytest.approx(a.latency_s, rel=1e-9)


@pytest.mark.parametrize("batch", [True, 8.0])
def test_bool_and_float_sizes_stay_refused_after_the_equal_int(batch):
    """After predict(batch=8) (or 1), batch=8.0 (or True) hit the one-case memo, whose key (8.0, ...) equals
    (8, ...): accepted and reported as batch=8.0, where a fresh process refused it."""
    api.predict("llama-3.1-8b", "h100", phase="decode", batch=int(batch), seq_len=2048)
    raises("batch must be a positive integer", api.predict, "llama-3.1-8b", "h100", phase="decode", batch=batch,
           seq_len=2048)


def test_a_model_folder_without_config_json_says_so(tmp_path, capsys):
    """A folder that exists but holds no config.json was reported as 'not found'."""
    from sim.cli import main
    (tmp_path / "mymodel").mkdir()
    assert main(["predict", "--model", str(tmp_path / "mymodel"), "--hardware", "h100"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no config.json" in err[0] and "not found" not in err[0]
