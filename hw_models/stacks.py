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

import numpy as np

from workloads.errors import HwsimError


@dataclass(frozen=True)
class Stack:
    name: str
    kernels: str                  # "eager" (traced aten kernels) or "fused" (one kernel per op)
    merge_projections: bool
    custom_all_reduce: bool
    description: str
    host_queue: bool = False      # the host issues every op (no CUDA graph): host and GPU timed as two queues
    per_step_host: bool = False   # generate()'s per-step host work and its draining sync end every step
    measured_on: str = ""         # the software it was checked against
    step_overhead_us: float = 0.0     # host time per iteration the GPU waits for (scheduling, sampling, inputs)
    request_overhead_us: float = 0.0  # host time per request before its first token (tokenize, admit, detokenize)
    request_overhead_per_rank: bool = False   # that cost is paid once per tensor-parallel rank (an MPI runtime that
                                              # sets each rank's session up in turn), not once per request
    decode_attention: str = "flash"   # decode attention kernel: flash (contiguous cache) or paged (block table)
    decode_attn_bw_eff: float = 0.0   # that kernel's attained fraction of DRAM bandwidth; 0: the device's bw_eff
    page_tokens: int = 0              # KV-cache page (block) size of a paged cache; 0: contiguous
    moe_kernel: str = "loop"          # MoE experts: loop (one GEMM per expert) or grouped (one grouped GEMM per
                                      # projection); hw_models/moe.py prices both. A loop under a host-issued stack
                                      # (host_queue) waits one sync for the counts, then issues every expert's kernels
    kv8_dequant_bound: bool = False   # an 8-bit KV cache is read at the device's `paged_fp8_bw_eff` (the split-K
                                      # Triton kernel measured here, bound by its in-register dequantization);
                                      # False: at the kernel's bf16 rate on half the bytes (an assumption for the
                                      # serving stacks' own FP8-KV kernels, XQA/FlashInfer, not measured here)
    splitk_query_tiles: bool = False  # decode attention is the split-K Triton kernel measured here, whose query
                                      # tiles (rows: the KV group, at least 16, a power of two) cost time of their
                                      # own where the device sets `paged_tile_eff` (hw_models/gpu.py splitk_tile_s)
    kv_group_sharing: bool = True     # decode attention reads a KV head once for all query heads of its group
    kv_group_reread: float = 1.0      # without sharing: fraction of the group's repeated KV reads that reach DRAM
                                      # (the rest hit L2); the kernel moves 1 + reread x (group - 1) times the KV
    kv16_group_reread: float = -1.0   # the same for a 16-bit KV cache where it differs (< 0: kv_group_reread);
                                      # kv_group_reread then holds for 8-bit caches (group_reread below)
    kv8_convert_b_clk_sm: float = 0.0  # without sharing, an 8-bit KV cache: bytes of FP8 KV one SM converts per
                                      # clock; every query head's thread block converts its group's KV itself, so
                                      # the kernel cannot beat KV x group / (SMs x clock x this) (0: no such bound)
    host_op_scale: float = 1.0        # host-issued stacks: the model code's per-op host cost against what
                                      # `hwsim probe-host` measures for it (applied to probed hosts only; hw_models/host.py)
    host_op_scale_by_probe: tuple = ()  # ((probe_version, scale), ...): the factor for host files of that probe
                                      # method (HostSpec.probe_version); others take host_op_scale
    device_classes: tuple = ()        # the device classes (DeviceSpec.device_class) the stack runs on; (): every class
    sources: tuple = ()


GPU = ("gpu",)                        # CUDA/ROCm stacks: paged-attention kernels, CUDA graphs, PyTorch launches


# the model code's per-op host cost against what each `hwsim probe-host` method reads for it: a property of the probe
# method, so every host-issued stack of model code takes it (fitted on hf-generate, docs/tracing-and-host.md)
PROBE_METHOD_SCALES = ((2, 1.16),)


STACKS = {
    "eager": Stack("eager", "eager", False, False,
                   "PyTorch kernels as traced, in a CUDA graph; separate q/k/v and gate/up GEMMs; NCCL collectives"),
    "fused": Stack("fused", "fused", True, True,
                   "serving stack (vLLM/TensorRT-LLM style): fused elementwise kernels, merged QKV and gate/up GEMMs, "
                   "custom all-reduce for small messages"),
    "eager-launch": Stack("eager-launch", "eager", False, False,
                          "PyTorch kernels launched one by one from Python: the host (--host, default the device's) "
                          "issues each op while the GPU runs the queue", host_queue=True, device_classes=GPU,
                          host_op_scale_by_probe=PROBE_METHOD_SCALES,
                          measured_on="torch 2.11 eager forward calls of hwsim's modules on the lent H100/H200 "
                                      "(benchmarks/gpu/data/*-launch)",
                          sources=("host costs: the host preset's, each sourced in its file (hw_models/presets/hosts); "
                                   "the lent hosts' launch cost fitted by benchmarks/host/fit_lent_hosts.py",
                                   "host_op_scale 1.16 for host files of probe version 2: hf-generate's factor for that "
                                   "probe method (it reads model-code costs low), carried over, nothing refitted: "
                                   "the same model code issues a forward's ops whichever stack prices it "
                                   "(docs/tracing-and-host.md, eleventh session)")),
    "hf-generate": Stack("hf-generate", "eager", False, False,
                         "one step of Hugging Face generate(): eager-launch plus generate()'s per-step host work and "
                         "the stopping check's sync (use with --impl hf)", host_queue=True, per_step_host=True,
                         device_classes=GPU,
                         measured_on="transformers 5.17.0 generate() on the lent H200 and H100, 2026-12-06 "
                                     "(benchmarks/gpu/data/h200-2026-12-06-hf-generate, h100-2026-12-06-hf-generate; "
                                     "traced with the same 5.17.0; hosts h200-lent-host-hf, h100-lent-host-hf). hwsim "
                                     "traces the transformers installed where it runs",
                         moe_kernel="grouped", host_op_scale=1.0, host_op_scale_by_probe=PROBE_METHOD_SCALES,
                         sources=("host costs and generate()'s per-step work: the host preset's (hw_models/presets/"
                                  "hosts; `hwsim probe-host` measures them)",
                                  "host_op_scale 1.0 (nothing fitted): HF code is priced per model-code Python call "
                                  "(py_call, hw_models/host.py), which charges the forward's work outside the decoder layers that the "
                                  "probe's 7-minus-1-layer difference cancels. benchmarks/host/fit_host_op_scale.py "
                                  "on h100-2026-12-06-lease5's calibration architectures (own probe) would take 1.09 "
                                  "(calibration TPOT 9.7% -> 5.3%) but held-out TPOT worsens on every quiet lease "
                                  "(lease5 5.9 -> 7.7%, lease4 8.2 -> 12.1%, first lease 6.4 -> 6.8%), so it is not "
                                  "taken (docs/tracing-and-host.md). That holds for host files of the first "
                                  "probe method (no machine.probe_version)",
                                  "host_op_scale 1.16 for host files of probe version 2 (sim/probe_host.py "
                                  "PROBE_VERSION: per-op loops before transformers' import; it reads launches "
                                  "4.7-4.9 us where the first method read 6.0-7.9 on the same lent H100): fitted by "
                                  "benchmarks/host/fit_host_op_scale.py on h100-2026-12-06-lease10's calibration "
                                  "architectures with that lease's own probe (host-before.yaml; calibration TPOT "
                                  "15% -> 4.8%); that lease's held-out architectures, not fitted: TPOT 10% -> 7% "
                                  "(host-before) and 9% -> 8% (host-after) (docs/tracing-and-host.md)",
                                  "moe_kernel grouped: transformers 5 runs MoE experts through torch._grouped_mm by "
                                  "default (integrations/moe.py, experts_implementation='grouped_mm'; 5.17.0 and "
                                  "5.25.0 alike, no per-expert loop and no host sync in it)")),
}


# Serving stacks as data. Every number is sourced in the profile's `sources`; "measured here" points at
# benchmarks/gpu/data/*-stack (benchmarks/gpu/measure_stack.py). Profiles differ in what the GPU runs (decode
# attention kernel, head-group sharing, all-reduce) and in host time the GPU waits for.
# A decode kernel with one thread block per query head (vLLM v0.2 PagedAttention, TensorRT-LLM's masked MHA before
# XQA) on a GQA model: the group's blocks read the same KV head, the first from DRAM, the others from DRAM or L2.
# The one published kernel measurement of such a kernel, FlashInfer's (blog 2024-02-02, Figure 9: Llama-2-70B TP2
# heads, 32 query / 4 KV heads, group 8, batch 64, FP16 KV, A100 and H100, L2 flushed before each kernel: a
# group-sharing kernel 3x faster than vLLM v0.2.6's PagedAttention), implies 3 = 1 + r x (8 - 1), r = 2/7 of the
# repeats reaching DRAM. trtllm-0.6 takes r = 2/7 for every cache precision; with an FP8 cache its kernel is bound
# by converting the group's KV once per query head (kv8_convert_b_clk_sm), which is why r = 2/7 alone had
# over-predicted the H100 FP8 Llama-2-70B rows by 52-55% (docs/serving.md, static batching; until the ninth session
# FP8 kept r = 1 for that reason).
GQA_REREAD_FLASHINFER = (3.0 - 1.0) / (8 - 1)

_TRT = ("TensorRT-LLM docs/source/performance.md @138f96d (v0.6.1, static batching, gptSessionBenchmark)",
        "TensorRT-LLM README news 2024/01/30: 'New XQA-kernel provides 2.4x more Llama-70B throughput'; v0.10.0 "
        "release notes: 'Integrated the new NVIDIA Hopper XQA kernels for LLaMA 2 70B' -- before XQA, GQA decode "
        "ran the masked multi-head attention kernel, one KV read per query head")
STACKS.update({
    "trtllm-0.6": Stack(
        "trtllm-0.6", "fused", True, False,
        "TensorRT-LLM v0.5-0.6 as in its published static-batch tables: one engine (fused kernels, merged QKV and "
        "gate/up), masked-MHA decode attention without head-group sharing, NCCL all-reduce, a fixed cost per "
        "request (session setup, sampling)",
        kv_group_sharing=False, kv_group_reread=GQA_REREAD_FLASHINFER, kv8_convert_b_clk_sm=13.5, device_classes=GPU,
        request_overhead_us=3000.0, request_overhead_per_rank=True,
        sources=_TRT + (
            "kv_group_reread 2/7: FlashInfer blog 2024-02-02, Figure 9, the one published measurement of a "
            "per-query-head decode kernel on GQA heads (FP16 KV, A100 and H100): the group's repeats cost 2/7 of a "
            "DRAM read each (L2 serves the rest); TensorRT-LLM v0.6 masked_multihead_attention launches one thread "
            "block per (query head, sequence). Nothing fitted: the published A100 FP16 Llama-2-70B TP4 rows are "
            "held out (docs/stack-accuracy.md, 'A100 TP>1')",
            "kv8_convert_b_clk_sm 13.5 (8-bit KV cache): every query head's block converts its group's FP8 KV to 16 "
            "bits itself, so the kernel converts group x the KV at a rate set by SMs and clock (the split-K kernel "
            "measured here reads FP8 KV at the same ~1.6 TB/s on the H100 and the H200 too: paged_fp8_bw_eff). "
            "Fitted on the four H100 FP8 Llama-2-70B throughput rows of the v0.6.1 tables (MAPE 7.5 -> 2.7%); "
            "held out: the v0.9.0 Mistral-7B H100 / H200 rows (15.4 -> 10.5%, 11.6 -> 12.2%; H200 / H100 at "
            "56 x 2048 -> 2048 1.41 -> 1.05, published 1.04) and the Mixtral rows (docs/stack-accuracy.md, 'FP8 KV "
            "conversion bound')",
            "request_overhead_us: fitted on one row, H100 FP8 Llama-2-7B first-token latency at 128 tokens (7 ms "
            "published; benchmarks/stack_accuracy.py holds the other first-token rows out)",
            "request_overhead_per_rank: an assumption, nothing fitted: v0.6 runs one MPI process per rank and its "
            "gptSessionBenchmark sets each rank's session up per request, so the TP1 row's 3 ms is paid per rank; "
            "the TP4 first-token rows (H100 FP8 and A100 FP16, 128 and 2048 tokens) are held out and move from "
            "-35/-11/-5/+2% to +0/+8/+3/+4% (docs/stack-accuracy.md)",)),
    "trtllm": Stack(
        "trtllm", "fused", True, True,
        "TensorRT-LLM v0.10+: XQA decode attention (KV head shared by its query group), paged KV (64-token "
        "blocks), custom one-shot all-reduce, in-flight batching in C++",
        decode_attention="paged", page_tokens=64, request_overhead_us=3000.0, moe_kernel="grouped", device_classes=GPU,
        sources=_TRT + (
            "tokens_per_block 64: TensorRT-LLM docs, KV cache management (default block size)",
            "moe_kernel grouped: TensorRT-LLM's MoE plugin runs the experts as grouped GEMMs (CUTLASS); priced as "
            "torch._grouped_mm measured here, its own efficiency not measured")),
    "vllm": Stack(
        "vllm", "fused", True, True,
        "vLLM (v0.6+, CUDA graphs for decode): paged decode attention (FlashAttention/FlashInfer, 16-token "
        "blocks) with head-group sharing, custom all-reduce, Python scheduler between steps",
        decode_attention="paged", page_tokens=16, step_overhead_us=0.0, moe_kernel="grouped", device_classes=GPU,
        sources=(
            "vLLM blog 2024-09-05 'vLLM v0.6.0: 2.7x Throughput Improvement': v0.5.3 on Llama-3-8B/H100 spent 33% "
            "of the time in the API server and 29% in scheduling; v0.6 overlaps them with the GPU (multi-step "
            "scheduling, asynchronous output processing), so no per-step host time is added here",
            "block_size 16: vLLM engine argument default",
            "moe_kernel grouped: vLLM runs MoE experts as one fused Triton kernel over all experts "
            "(vllm/model_executor/layers/fused_moe); priced as torch._grouped_mm measured here, its own efficiency "
            "not measured")),
    "sglang": Stack(
        "sglang", "fused", True, True,
        "SGLang (CUDA graphs, overlap scheduler): FlashInfer paged decode attention (1-token pages) with "
        "head-group sharing, custom all-reduce",
        decode_attention="paged", page_tokens=1, moe_kernel="grouped", device_classes=GPU, sources=(
            "SGLang v0.4 blog (2024-12-04): zero-overhead batch scheduler overlaps CPU scheduling with the GPU",
            "page_size 1: SGLang server argument default",
            "moe_kernel grouped: SGLang's fused_moe Triton kernel (from vLLM's); priced as torch._grouped_mm "
            "measured here, its own efficiency not measured")),
    "triton-splitk": Stack(
        "triton-splitk", "fused", True, True,
        "the paged split-K decode kernel measured here (benchmarks/gpu/measure_stack.py, Triton, 16-token pages, "
        "head-group sharing; an 8-bit KV cache dequantized in registers), otherwise as vllm: the stack whose "
        "decode attention benchmarks/gpu/fit_stack.py fits",
        decode_attention="paged", page_tokens=16, moe_kernel="grouped", kv8_dequant_bound=True,
        splitk_query_tiles=True, device_classes=GPU, sources=(
            "measured here: benchmarks/gpu/data/*-stack/attn_decode.csv (paged_bw_eff, paged_fp8_bw_eff, "
            "paged_tile_eff, paged_row_ns per GPU)",)),
})


def op_scale_for(profile: str, host) -> float:
    """The host_op_scale `profile` applies to `host` (a HostSpec): the one fitted for its probe method where the
    stack has one, else the stack's host_op_scale (1.0 for profiles that are not stacks)."""
    st = STACKS.get(profile)
    if st is None:
        return 1.0
    return dict(st.host_op_scale_by_probe).get(host.probe_version, st.host_op_scale)


def group_reread(st: Stack, kv_bits=16):
    """Fraction of a non-sharing decode kernel's repeated KV reads that reach DRAM, for a cache of `kv_bits` (a
    number or an array): the stack's `kv16_group_reread` for 16-bit caches where it sets one, else
    `kv_group_reread`."""
    if st.kv16_group_reread < 0:
        return st.kv_group_reread
    return np.where(np.greater(kv_bits, 8), st.kv16_group_reread, st.kv_group_reread) if np.ndim(kv_bits) \
        else (st.kv16_group_reread if kv_bits > 8 else st.kv_group_reread)


def step_host_wait_s(profile: str) -> float:
    """Host time per iteration the GPU waits for under a stack (its `step_overhead_us`; 0 for unknown names and for
    host-issued stacks, whose host is timed as a queue). The one place a step's latency takes it: sim/predict.py
    and sim/engine.py add it to every step; per-request costs (`request_overhead_us`) belong to whoever times
    requests (serving, benchmarks/stack_accuracy.py's first-token rows)."""
    st = STACKS.get(profile)
    return st.step_overhead_us * 1e-6 if st is not None and not st.host_queue else 0.0


def request_host_s(profile: str, ranks: int = 1) -> float:
    """Host time a request spends before its first token under a stack (`request_overhead_us`, times the
    tensor-parallel ranks where the stack pays it per rank); 0 for unknown names."""
    st = STACKS.get(profile)
    if st is None:
        return 0.0
    return st.request_overhead_us * 1e-6 * (max(1, int(ranks)) if st.request_overhead_per_rank else 1)


def kv8_conversion_bound(st: Stack, kv8: bool) -> bool:
    """Whether the stack's decode attention is bound by converting an 8-bit KV cache once per query head
    (`kv8_convert_b_clk_sm`; hw_models/gpu.py kv8_convert_s): a kernel without head-group sharing, an 8-bit cache."""
    return bool(kv8 and not st.kv_group_sharing and st.kv8_convert_b_clk_sm)


def require_host_issued(profile: str, what: str = "first_pass"):
    """HwsimError unless `profile` is a host-issued stack (eager-launch, hf-generate): a first pass (cuDNN graph
    builds on the host) means nothing where the step replays CUDA graphs."""
    if not (profile in STACKS and STACKS[profile].host_queue):
        raise HwsimError(f"{what} applies to host-issued profiles (eager-launch, hf-generate), not '{profile}', "
                         f"which replays CUDA graphs")


def profiles_for(device_class: str) -> list:
    """The stacks that run on devices of `device_class`."""
    return [s.name for s in STACKS.values() if not s.device_classes or device_class in s.device_classes]


def require_device(profile: str, device):
    """HwsimError where `profile` is a stack of other device classes than `device`'s (a DeviceSpec): a GPU serving
    stack or PyTorch's host launches on an NPU, PIM, FPGA or CPU would price the step as eager under its name."""
    st = STACKS.get(profile)
    if st is None or not st.device_classes or device.device_class in st.device_classes:
        return
    raise HwsimError(f"profile '{profile}' applies to {' and '.join(st.device_classes)} devices; {device.id} is a "
                     f"device of class {device.device_class}, for which the profiles are {' or '.join(profiles_for(device.device_class))}")


def stack(name: str) -> Stack:
    if name not in STACKS:
        raise HwsimError(f"unknown software profile '{name}'; use {' or '.join(STACKS)}")
    return STACKS[name]


STACK_HELP = "software stack: " + "; ".join(f"{s.name}: {s.description}" for s in STACKS.values())
