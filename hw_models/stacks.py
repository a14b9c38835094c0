"""Software stacks: how the same step is launched on a GPU system (stacks as data: one record each).

The stack moves a step's time as much as the hardware does (docs/tp8-h100-70b-references.md): kernel
granularity, whether sibling projections share one GEMM, which all-reduce implementation runs, and who issues
the kernels.
- eager: PyTorch's own kernels as traced (captured in a CUDA graph), separate q/k/v and gate/up GEMMs, NCCL
  collectives. This is what benchmarks/gpu/measure.py runs on the lent GPUs. One graph launch per step: the host
  is not on the step's path.
- fused: a serving stack in the vLLM / TensorRT-LLM style: one kernel per elementwise op, QKV and gate/up
  merged into one GEMM each (workloads/fusion.py), a one-shot custom all-reduce for small messages where the
  link has one (the link's `custom_all_reduce`), NCCL above its size limit. CUDA graphs: as eager.
- eager-launch: PyTorch's kernels launched one by one from Python without a CUDA graph. Two queues: the host
  issues every op (its kernels, views and module calls, priced by the host model, hw_models/host.py, of the
  device's default host or --host), the GPU runs what is queued and idles when the host falls behind; an op that
  needs a value back (nonzero, .item()) drains the queue. The step is timed from the first issue to the last
  kernel, as benchmarks/gpu/measure_launch.py times its eager runs.
- hf-generate: one step of Hugging Face `generate()`: eager-launch, plus the host's own per-step work outside the
  model (logits processing, cache and stopping-criteria bookkeeping) and the stopping check's sync, which drains
  the queue every step. Use it with --impl hf so the ops are HF's own.
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
    host_queue: bool = False      # the host issues every op (no CUDA graph): timed as two queues
    per_step_host: bool = False   # generate()'s per-step host work and its draining sync end every step
    measured_on: str = ""         # the software it was checked against


STACKS = {
    "eager": Stack("eager", "eager", False, False,
                   "PyTorch kernels as traced, in a CUDA graph; separate q/k/v and gate/up GEMMs; NCCL collectives"),
    "fused": Stack("fused", "fused", True, True,
                   "serving stack (vLLM/TensorRT-LLM style): fused elementwise kernels, merged QKV and gate/up GEMMs, "
                   "custom all-reduce for small messages"),
    "eager-launch": Stack("eager-launch", "eager", False, False,
                          "PyTorch kernels launched one by one from Python: the host (--host, default the device's) "
                          "issues each op while the GPU runs the queue", host_queue=True,
                          measured_on="torch 2.11 eager forward calls of hwsim's modules on the lent H100/H200 "
                                      "(benchmarks/gpu/data/*-launch)"),
    "hf-generate": Stack("hf-generate", "eager", False, False,
                         "one step of Hugging Face generate(): eager-launch plus generate()'s per-step host work and "
                         "the stopping check's sync (use with --impl hf)", host_queue=True, per_step_host=True,
                         measured_on="transformers 5.25.0 traced here; step times not yet checked against a GPU "
                                     "(benchmarks/gpu/measure_hf_generate.py)"),
}


def stack(name: str) -> Stack:
    if name not in STACKS:
        raise HwsimError(f"unknown software profile '{name}'; use {' or '.join(STACKS)}")
    return STACKS[name]


STACK_HELP = "software stack: " + "; ".join(f"{s.name}: {s.description}" for s in STACKS.values())
