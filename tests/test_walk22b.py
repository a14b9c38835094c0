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
