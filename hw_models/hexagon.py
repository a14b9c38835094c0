"""Hexagon NPU cost of one static QNN subgraph, as mllm-NPU (arXiv 2407.05858) runs its INT8 linear layers.

Why this shape of model: the six NPU rows of mllm-NPU Table 3 (M = 32 or 64 rows) follow the weight
size, not the FLOPs. A fit t = t_graph + (K*N bytes) / weight_rate leaves 0.15 ms rms; a fit on FLOPs
leaves 0.74 ms, and a three-term fit gives the FLOP term a negative cost. At these M the NPU is bound by
loading its stationary weight tiles (HeteroInfer, SOSP'25, calls this "weight-stall"); M rows then
stream through each loaded tile. So each INT8 MatMul in a graph costs

    max(K*N / weight_rate, 2*M*K*N / int8_rate)

plus one fixed t_graph per graph execution (Table 3 ran every MatMul as its own graph). t_graph and
weight_rate are fitted to Table 3 (least squares over its six rows). Table 3 only bounds int8_rate from
below (every row is weight-bound), so the rate at prefill-sized M needs another source: by default it is
solved so that a 256-token Qwen1.5-1.8B prompt keeps the NPU busy for the 315 ms of the paper's section
3.4 (an NPU busy time, not the end-to-end rates of Fig. 14 / Table 5 that the study then predicts).
Float ops the graph keeps on the NPU (norms, SiLU, residual adds, (de)quantize) stream their bytes at
the LPDDR rate.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from workloads.errors import HwsimError

_POINT = re.compile(r"int8_ms_(\d+)x(\d+)x(\d+)$")
BW_EFF = 0.85                      # estimate: attained LPDDR5X fraction on long streams (as SystolicModel)


def table3_points(device) -> list:
    """[(m, k, n, seconds)] of the preset's Table 3 NPU column (the `int8_ms_MxKxN` keys of the NPU engine)."""
    npu = npu_engine(device)
    pts = []
    for key, ms in npu.extra.items():
        hit = _POINT.match(key)
        if hit:
            m, k, n = (int(x) for x in hit.groups())
            pts.append((m, k, n, ms * 1e-3))
    if len(pts) < 2:
        raise HwsimError(f"{device.name} lists fewer than two int8_ms_MxKxN NPU points; the Hexagon model needs them")
    return sorted(pts)


def npu_engine(device):
    for name, e in device.engines.items():
        if "hexagon" in name or "npu" in name:
            return e
    raise HwsimError(f"{device.name} has no Hexagon/NPU engine")


def fit_weight_bound(points) -> tuple:
    """(t_graph s, weight bytes/s): least squares of t = t_graph + K*N / rate over the points."""
    xs = [k * n for _, k, n, _ in points]
    ts = [t for *_, t in points]
    xm, tm = sum(xs) / len(xs), sum(ts) / len(ts)
    var = sum((x - xm) ** 2 for x in xs)
    slope = sum((x - xm) * (t - tm) for x, t in zip(xs, ts)) / var
    if slope <= 0:
        raise HwsimError("the NPU points do not grow with the weight size; cannot fit a weight rate")
    return max(tm - slope * xm, 0.0), 1.0 / slope


@dataclass(frozen=True)
class HexagonNPU:
    t_graph_s: float               # fixed cost of one graph execution
    weight_rate: float             # stationary-weight bytes loaded per second
    int8_rate: float               # INT8 ops/s once the weights are loaded (large M)
    stream_rate: float             # LPDDR bytes/s for the float ops inside a graph

    @classmethod
    def from_device(cls, device, int8_rate: float = None) -> "HexagonNPU":
        t_graph, rate = fit_weight_bound(table3_points(device))
        npu = npu_engine(device)
        return cls(t_graph, rate, int8_rate or npu.peak("int8"), device.main_memory.bandwidth_gbps * 1e9 * BW_EFF)

    def with_rate(self, int8_rate: float) -> "HexagonNPU":
        return HexagonNPU(self.t_graph_s, self.weight_rate, int8_rate, self.stream_rate)

    def matmul_s(self, m: int, k: int, n: int) -> float:
        return max(k * n / self.weight_rate, 2.0 * m * k * n / self.int8_rate)

    def graph_s(self, ops, rows: int) -> float:
        """One execution of a graph holding `ops` (Op objects) with `rows` activation rows."""
        t = self.t_graph_s
        for op in ops:
            if op.kind == "matmul" and "k" in op.attrs:
                a = op.attrs
                t += self.matmul_s(rows, a["k"], a["n"]) * a.get("batch", 1)
            else:
                t += sum(op.bytes.values()) / self.stream_rate
        return t

    def table3_s(self, m: int, k: int, n: int) -> float:
        """A lone MatMul run as its own graph, as Table 3 measured it."""
        return self.t_graph_s + self.matmul_s(m, k, n)


def solve_int8_rate(busy_s, target_s: float, lo: float = 1e11, hi: float = 1e15) -> float:
    """The INT8 rate at which busy_s(rate) (NPU seconds, falling with the rate) equals target_s (bisection)."""
    if busy_s(hi) > target_s:
        raise HwsimError(f"even at {hi / 1e12:.0f} TOPS the NPU needs more than {target_s * 1e3:.0f} ms")
    if busy_s(lo) < target_s:
        return lo
    for _ in range(60):
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if busy_s(mid) > target_s else (lo, mid)
    return (lo * hi) ** 0.5
