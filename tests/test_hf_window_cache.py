"""A sliding-window cache layer of HF's past its window holds a view of the previous step's cat
(`full[:, :, -(window - 1):, :]`, transformers' DynamicSlidingWindowLayer.update), so the next cat reads an operand
with gaps between heads: torch's non-vectorized cat. `workloads.hf._prime` must prime such a view, not a dense
tensor (phi-3-mini past its 2,047-token window: HF decode 8x2048 ran 31 ms a step on the H100 against a host-bound
21 ms, and the dense prime priced both cats at the vectorized rate)."""
import torch

from workloads.hf import _prime
from workloads.tracer import _access


class DynamicSlidingWindowLayer:          # the name is what _prime checks; no transformers needed
    def __init__(self, window):
        self.sliding_window, self.cumulative_length = window, 0
        self.keys = self.values = None

    def lazy_initialization(self, key_states, value_states):
        pass


class DynamicLayer(DynamicSlidingWindowLayer):
    def __init__(self):
        super().__init__(None)
        self.get_seq_length = lambda: 0
        self.is_initialized = False


class _Cache:
    def __init__(self, *layers):
        self.layers = list(layers)


def _primed(layer, context):
    _prime(_Cache(layer), context, 1)
    new = torch.empty(2, 4, 1, 8, dtype=torch.bfloat16, device="meta")
    layer.lazy_initialization(new, new)
    return layer.keys, layer.values


def test_past_the_window_the_cache_is_a_gapped_view():
    for t in _primed(DynamicSlidingWindowLayer(16), 40):
        assert t.shape == (2, 4, 15, 8) and not t.is_contiguous()
        assert t.hwsim_class == "kv_cache"
        new = torch.empty(2, 4, 1, 8, dtype=torch.bfloat16, device="meta")
        out = torch.cat([t, new], dim=-2)
        assert _access(torch.ops.aten.cat.default, [t, new], [out]) == 1     # priced as a gapped cat


def test_below_the_window_and_full_attention_stay_dense():
    for layer, context in ((DynamicSlidingWindowLayer(16), 10), (DynamicSlidingWindowLayer(16), 15),
                           (DynamicLayer(), 40)):
        for t in _primed(layer, context):
            assert t.is_contiguous() and t.shape[-2] == min(context, 15 if layer.sliding_window else context)


def test_priming_is_not_the_steps_work():
    """The cache exists before the step: its allocation must not reach the tracer (no host views, no kernels)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    seen = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(str(func))
            return func(*args, **(kwargs or {}))

    layer = DynamicSlidingWindowLayer(16)
    _prime(_Cache(layer), 40, 1)
    new = torch.empty(2, 4, 1, 8, dtype=torch.bfloat16, device="meta")
    with Record():
        layer.lazy_initialization(new, new)
    assert seen == []
