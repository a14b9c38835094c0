"""Software stacks: how the same step is launched on a GPU system.

The stack moves a step's time as much as the hardware does (docs/tp8-h100-70b-references.md): kernel
granularity, whether sibling projections share one GEMM, and which all-reduce implementation runs.
- eager: PyTorch's own kernels as traced (captured in a CUDA graph), separate q/k/v and gate/up GEMMs, NCCL
  collectives. This is what benchmarks/gpu/measure.py runs on the lent GPUs.
- fused: a serving stack in the vLLM / TensorRT-LLM style: one kernel per elementwise op, QKV and gate/up
  merged into one GEMM each (workloads/fusion.py), a one-shot custom all-reduce for small messages where the
  link has one (the link's `custom_all_reduce`), NCCL above its size limit.
"""
from __future__ import annotations

from dataclasses import dataclass

from workloads.errors import HwsimError


@dataclass(frozen=True)
class Stack:
    name: str
    kernels: str                  # "eager" (traced aten kernels) or "fused" (one kernel per op)
    merge_projections: bool
    custom_all_reduce: bool
    description: str


STACKS = {
    "eager": Stack("eager", "eager", False, False,
                   "PyTorch kernels as traced, in a CUDA graph; separate q/k/v and gate/up GEMMs; NCCL collectives"),
    "fused": Stack("fused", "fused", True, True,
                   "serving stack (vLLM/TensorRT-LLM style): fused elementwise kernels, merged QKV and gate/up GEMMs, "
                   "custom all-reduce for small messages"),
}


def stack(name: str) -> Stack:
    if name not in STACKS:
        raise HwsimError(f"unknown software profile '{name}'; use {' or '.join(STACKS)}")
    return STACKS[name]


STACK_HELP = "software stack: " + "; ".join(f"{s.name}: {s.description}" for s in STACKS.values())
