"""The plain datasheet roofline every roofline tool computes: per op, max(FLOPs / peak, bytes / bandwidth)."""
from __future__ import annotations

_DT = {"bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "int8": "int8", "fp32": "tf32", "ternary": "int8"}


def roofline_time(graph, device) -> float:
    bw = device.main_memory.bandwidth_gbps * 1e9
    total = 0.0
    for op in graph.ops:
        if op.kind in ("matmul", "attention"):
            peak = device.peak(_DT.get(op.dtype, "bf16")) or device.peak("bf16")
        else:
            peak = device.peak("fp32") or device.peak("bf16")
        nbytes = sum(op.bytes.values())
        total += max(op.flops / peak if peak else 0.0, nbytes / bw) * op.repeat
    return total
