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
