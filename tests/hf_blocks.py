"""Shared by tests of the one-case path's tables on HF-traced steps: a compiled block of a small model."""
import copy

import numpy as np

from hw_models import load_device
from sim import api
from sim.fastpath import CompiledStep
from workloads.linear_step import mono_row, step_code


def compiled_hf_block(model, batch, seq, device="h100"):
    """(CompiledStep, step, its quantity rows q [1, quantities]) of a `--impl hf` prefill step of `model` (a
    config path), the template fitted on short prompts first so the block is a linear step, not a trace."""
    for s in (16, 32, 64, 128):
        api.workload(model, "prefill", 1, s, impl="hf")
    recipe = api.workload(model, "prefill", batch, seq, impl="hf").recipe
    cs = CompiledStep(recipe, load_device(device), "eager")
    code, classes = step_code(cs.tpl, batch, seq)
    step = cs._block(code, (batch, seq, 0))[0]
    q = np.array(mono_row(step.names, batch, seq, 0, classes), dtype=float)[None] @ step.Q
    return cs, step, q


def relaid(step, **changes):
    """A copy of a linear step with some fields changed and its cached GPU layout dropped (rebuilt on use)."""
    out = copy.copy(step)
    out.__dict__.pop("_gpu_layout", None)
    for k, v in changes.items():
        setattr(out, k, v)
    return out
