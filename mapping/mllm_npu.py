"""mllm-NPU / llm.npu on-phone prefill (arXiv 2407.05858) as a task graph on the NPU and the CPU.

The subgraph split follows the public QNN backend (github UbiquitousLearning/mllm, branch v1,
mllm/models/qwen/modeling_qwen_npu_v2.hpp): per layer and chunk, one NPU graph holds the Q/K/V linears
(with the input RMSNorm folded in), the CPU runs RoPE, the KV cache and float attention, and a second
NPU graph holds the O linear, residual, RMSNorm and the whole FFN. In the layers whose outliers are kept
(the 15% most important, at the ends of the stack: paper section 3.3) the CPU adds the shadow outlier
MatMul of the down projection after the NPU graph and runs the next layer's input norm, so the next NPU
graph waits for it. Prompts are cut into fixed chunks; the NPU always runs a full (padded) chunk.

Schedules: "in_order" runs each processor's subgraphs in prompt order (chunk by chunk, layer by layer:
the paper's naive overlapping, Fig. 13a); "out_of_order" starts any ready subgraph, picking by the
paper's rule (section 3.4): a CPU subgraph whose NPU successors are longest first, an NPU subgraph whose
CPU successors are shortest first. Cross-chunk dependency: chunk c's attention in a layer needs the K/V
that chunk c-1 appended in that layer.
"""
from __future__ import annotations

from functools import lru_cache

from hw_models import load_device
from hw_models.costs import cost_model
from hw_models.hexagon import HexagonNPU, npu_engine, solve_int8_rate
from workloads.errors import HwsimError
from workloads.recipe import build_workload

from .taskgraph import Task

CHUNK = 256                 # paper section 4: default chunk length
PRUNE = 0.85                # paper section 4: outliers of the 85% least important layers pruned
OUTLIER_CHANNELS = 15       # paper Fig. 10: about 5-15 outlier channels per layer (the upper end)
MODES = ("in_order", "out_of_order")
CALIBRATION_MODEL = "qwen1.5-1.8b"


@lru_cache(maxsize=None)
def layer_ops(model: str, chunk: int) -> dict:
    """The ops of one decoder layer at `chunk` rows, cut into the mllm-NPU subgraphs, plus the rest."""
    graph = build_workload(model, "prefill", 1, chunk, 0, quant="w8a8")
    if len(graph.layer_groups) != 1:
        raise HwsimError(f"the mllm-NPU schedule handles models whose layers are all alike; {model} has "
                         f"{len(graph.layer_groups)} kinds of layer")
    group = next(iter(graph.layer_groups))
    ops = [op for op in graph.ops if op.group == group]
    attn = next(i for i, op in enumerate(ops) if op.kind == "attention")
    first_cpu = next(i for i, op in enumerate(ops) if op.kind in ("elementwise", "memcpy") and i > 0 and
                     ops[i - 1].kind == "matmul")
    outside = [op for op in graph.ops if op.group is None]
    first_layer = min(op.index for op in ops)
    return {"norm": [op for op in ops[:first_cpu] if op.kind == "norm"],
            "qkv": [op for op in ops[:first_cpu] if op.kind != "norm"],
            "attn": ops[first_cpu:attn + 1], "ffn": ops[attn + 1:],
            "down": next(op for op in reversed(ops) if op.kind == "matmul"),
            "head": [op for op in outside if op.index < first_layer],
            "tail": [op for op in outside if op.index > first_layer],
            "layers": sorted(graph.layer_groups[group])}


def kept_outlier_layers(layers: list, prune: float) -> set:
    """The (1 - prune) share of layers whose outliers are kept: the most important are nearest the ends."""
    if not 0.0 <= prune <= 1.0:
        raise HwsimError(f"outlier pruning rate must be between 0 and 1 (got {prune})")
    keep = round(len(layers) * (1.0 - prune))
    ends_first = list(dict.fromkeys(x for pair in zip(layers, reversed(layers)) for x in pair))
    return set(ends_first[:keep])


def chunks_of(prompt: int, chunk: int) -> list:
    """[(start, tokens)] of the prompt's chunks; the last may be short (the NPU pads it to `chunk`)."""
    if prompt < 1 or chunk < 1:
        raise HwsimError(f"prompt and chunk must be positive (got {prompt}, {chunk})")
    return [(s, min(chunk, prompt - s)) for s in range(0, prompt, chunk)]


class Costs:
    """Seconds of each subgraph: NPU graphs from the Hexagon model, CPU work from the phone-CPU model."""

    def __init__(self, npu: HexagonNPU, cpu_device, cpu_scale: float = 1.0):
        self.npu, self.cpu, self.cpu_scale = npu, cost_model(cpu_device), cpu_scale
        self.clock = self.cpu.f_ref

    def cpu_s(self, ops) -> float:
        """Float work on the Kryo CPU (FP32, mllm's CPU backend), times the calibration scale."""
        return self.cpu_scale * sum(self.cpu.cost(op.scaled(dtype="fp32") if op.kind != "matmul" else op,
                                                  self.clock).time_s for op in ops)

    def attention_s(self, ops, start: int, tokens: int, chunk: int) -> float:
        """RoPE, KV append and float attention of `tokens` queries over start + tokens keys."""
        out = []
        for op in ops:
            rows = tokens / chunk
            if op.kind == "attention":
                a = dict(op.attrs, sq=tokens, sk=start + tokens)
                keys = (start + tokens) / op.attrs["sk"]
                op = op.scaled(attrs=a, flops=int(op.flops * rows * keys),
                               bytes={c: b * (keys if c == "kv_cache" else rows) for c, b in op.bytes.items()})
            else:
                op = op.scaled(flops=int(op.flops * rows), bytes={c: b * rows for c, b in op.bytes.items()})
            out.append(op)
        return self.cpu_s(out)

    def outlier_s(self, down, chunk: int) -> float:
        """Shadow outlier MatMul (a few float input channels of the down projection) plus the merge."""
        n = down.attrs["n"]
        mm = down.scaled(dtype="fp32", flops=2 * chunk * OUTLIER_CHANNELS * n,
                         attrs=dict(down.attrs, k=OUTLIER_CHANNELS),
                         bytes={"weight": 4 * OUTLIER_CHANNELS * n, "activation": 4 * chunk * (OUTLIER_CHANNELS + n)})
        merge = down.scaled(kind="elementwise", dtype="fp32", flops=chunk * n, attrs={},
                            bytes={"activation": 3 * 4 * chunk * n}, kernels=())
        return self.cpu_s([mm, merge])


def build_tasks(model: str, costs: Costs, prompt: int, chunk: int = CHUNK, prune: float = PRUNE,
                mode: str = "out_of_order") -> list:
    if mode not in MODES:
        raise HwsimError(f"unknown schedule '{mode}'; use one of {', '.join(MODES)}")
    ops = layer_ops(model, chunk)
    layers, kept = ops["layers"], kept_outlier_layers(ops["layers"], prune)
    qkv_fold = costs.npu.graph_s(ops["norm"] + ops["qkv"], chunk)
    qkv_bare, ffn = costs.npu.graph_s(ops["qkv"], chunk), costs.npu.graph_s(ops["ffn"], chunk)
    norm_cpu, outlier = costs.cpu_s(ops["norm"]), costs.outlier_s(ops["down"], chunk)
    tasks = []

    def add(name, resource, seconds, deps):
        tasks.append(Task(name, resource, seconds, [d for d in deps if d]))
        return name

    for c, (start, tokens) in enumerate(chunks_of(prompt, chunk)):
        x = add(f"{c}:embed", "cpu", costs.cpu_s(ops["head"]) * tokens / chunk, [])
        for i, layer in enumerate(layers):
            on_cpu_norm = i == 0 or layers[i - 1] in kept
            if on_cpu_norm:
                x = add(f"{c}:{layer}:norm", "cpu", norm_cpu * tokens / chunk, [x])
            q = add(f"{c}:{layer}:qkv", "npu", qkv_bare if on_cpu_norm else qkv_fold, [x])
            a = add(f"{c}:{layer}:attn", "cpu", costs.attention_s(ops["attn"], start, tokens, chunk),
                    [q, f"{c - 1}:{layer}:attn" if c else None])
            x = add(f"{c}:{layer}:ffn", "npu", ffn, [a])
            if layer in kept:
                x = add(f"{c}:{layer}:outlier", "cpu", outlier, [x])
    add("tail", "cpu", costs.cpu_s(ops["tail"]), [x])
    return _in_order(tasks) if mode == "in_order" else _by_npu_stall(tasks)


def _in_order(tasks: list) -> list:
    """Each processor runs its subgraphs in prompt order: chain every task to its resource's previous one."""
    last = {}
    for t in tasks:
        if t.resource in last:
            t.deps.append(last[t.resource])
        last[t.resource] = t.name
    return tasks


def _by_npu_stall(tasks: list) -> list:
    """Priorities from the paper's contribution C: +T(successors) for CPU work, -T(successors) for NPU work."""
    by_name = {t.name: t for t in tasks}
    succ = {t.name: 0.0 for t in tasks}
    for t in tasks:
        for d in t.deps:
            if by_name[d].resource != t.resource:
                succ[d] += t.duration
    for t in tasks:
        t.priority = -succ[t.name] if t.resource == "cpu" else succ[t.name]
    return tasks


@lru_cache(maxsize=None)
def calibrated(npu_rate: str = "sec3.4", cpu_rate: str = "sec3.4", device_id: str = "snapdragon-8gen3") -> Costs:
    """Subgraph costs. NPU: the Table 3 fit, then its INT8 rate from section 3.4's 315 ms NPU busy time for a
    256-token Qwen1.5-1.8B prompt ("sec3.4") or the 73 TOPS peak ("peak", so only Table 3 binds). CPU: the
    phone-CPU preset's model ("preset") or that model scaled so the same prompt keeps the CPU busy for half
    the NPU's time ("sec3.4": "about twice that of the CPU")."""
    device, cpu = load_device(device_id), load_device("phone-cpu")
    extra = npu_engine(device).extra
    base = HexagonNPU.from_device(device)
    if npu_rate not in ("sec3.4", "peak") or cpu_rate not in ("sec3.4", "preset"):
        raise HwsimError(f"unknown rate source ({npu_rate}, {cpu_rate}); NPU: sec3.4 or peak, CPU: sec3.4 or preset")

    def busy(costs, resource):
        return sum(t.duration for t in build_tasks(CALIBRATION_MODEL, costs, 256) if t.resource == resource)

    npu = base
    if npu_rate == "sec3.4":
        rate = solve_int8_rate(lambda r: busy(Costs(base.with_rate(r), cpu), "npu"),
                               extra["qwen1_5_1_8b_prompt256_npu_ms"] * 1e-3)
        npu = base.with_rate(rate)
    scale = 1.0
    if cpu_rate == "sec3.4":
        scale = extra["qwen1_5_1_8b_prompt256_cpu_ms"] * 1e-3 / busy(Costs(npu, cpu), "cpu")
    return Costs(npu, cpu, scale)


