"""Software stacks: how the same step is launched on a GPU system.

The stack moves a step's time as much as the hardware does (docs/tp8-h100-70b-references.md): kernel
granularity, whether sibling projections share one GEMM, and which all-reduce implementation runs.
- eager: PyTorch's own kernels as traced (captured in a CUDA graph), separate q/k/v and gate/up GEMMs, NCCL
  collectives. This is what benchmarks/gpu/measure.py runs on the lent GPUs.
- fused: a serving stack in the vLLM / TensorRT-LLM style: one kernel per elementwise op, QKV and gate/up
  merged into one GEMM each (workloads/fusion.py), a one-shot custom all-reduce for small messages where the
  link has one (the link's `custom_all_reduce`), NCCL above its size limit.
- eager-launch: PyTorch's kernels launched one by one from Python without a CUDA graph (Hugging Face
  `generate()` by default): an op takes at least its kernels x the host's cost per launched kernel. 35 us is
  measured here (benchmarks/gpu/measure_launch.py on the lent H100's host, data/h100-sxm-2026-11-24-launch):
  fitted on llama-3.1-8b (7 steps, 11.7% mean error), held-out TP8 shard of Llama-2-70B 12.0% (max 20%). It is
  a property of that host CPU and software (Python 3.12, torch 2.11): the H200 machine's host took about 20 us
  per kernel on the same steps (data/h200-2026-11-24-launch).
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
    host_launch_us: float = 0.0   # host time per launched kernel; 0: kernels replay from a CUDA graph


STACKS = {
    "eager": Stack("eager", "eager", False, False,
                   "PyTorch kernels as traced, in a CUDA graph; separate q/k/v and gate/up GEMMs; NCCL collectives"),
    "fused": Stack("fused", "fused", True, True,
                   "serving stack (vLLM/TensorRT-LLM style): fused elementwise kernels, merged QKV and gate/up GEMMs, "
                   "custom all-reduce for small messages"),
    "eager-launch": Stack("eager-launch", "eager", False, False,
                          "PyTorch kernels launched from Python without a CUDA graph (HF generate), 35 us of host "
                          "time per kernel (measured here)", host_launch_us=35.0),
}


def stack(name: str) -> Stack:
    if name not in STACKS:
        raise HwsimError(f"unknown software profile '{name}'; use {' or '.join(STACKS)}")
    return STACKS[name]


STACK_HELP = "software stack: " + "; ".join(f"{s.name}: {s.description}" for s in STACKS.values())
