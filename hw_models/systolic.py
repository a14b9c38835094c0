"""Systolic-array NPU cost model (TPU v4/v5e, the NeuPIMs NPU) and the SoC NPU (Snapdragon Hexagon).

Why tiling rather than a roofline: on an R x C weight-stationary array a GEMM's utilization is set by
its shape. The stationary operand (K x N) is cut into ceil(K/R) * ceil(N/C) tiles; each tile is loaded
and then M rows stream through it, paying a pipeline fill of R + C cycles per tile. Tiles are spread
over the `units` arrays in waves. A small M (decode) therefore spends most cycles filling the array,
and K or N just above a multiple of the array size wastes a whole tile: utilization falls out.
When M is so large that the partial sums of one tile (M x C x 4 B per array) outgrow the on-chip
buffer, M is processed in chunks, each re-loading the tiles (and re-reading the weights from DRAM if
they do not fit the buffer). Input activations are read once if they fit the buffer, else once per
pass over the N tiles. An array whose preset sets `weight_double_buffer: 1` (TPU MXUs, the NeuPIMs NPU)
shifts the next tile's weights in while rows stream, so tiles run back to back and the R + C fill is paid
once per GEMM; without it every tile pays its fill (SCALE-Sim's accounting). The cost parameter of the same
name overrides the preset.

With `tiling_search` on, a GEMM's DRAM traffic comes instead from the tiling search (hw_models/tiling.py):
the on-chip blocks and loop order with the least traffic that fit `buffer_mb`, found within
`tiling_time_limit_s` and memoized per shape; it never exceeds the default tiling's traffic.

Memory time is the resulting DRAM traffic over bandwidth x efficiency; time = max(compute, memory)
+ a per-op dispatch cost. Attention is two GEMMs on the arrays (QK^T with K stationary, PV with V
stationary; grouped query heads share the stationary tile) plus the softmax on the vector units;
at decode the same formula makes it a memory-bound GEMV over the KV cache, or the vector units do it
if faster. Elementwise, norm and softmax ops run on the vector units (lanes x units x clock).

Engines without an array geometry (the SoC's Hexagon NPU and Adreno GPU) use an attained fraction of
their peak; where the preset keeps measured MatMul rates (mllm-NPU Table 3) that fraction and a fixed
cost per MatMul are fitted to them (see cpu.DeviceModel.fitted). Matmuls go to the engine that runs
their dtype fastest: on the Snapdragon INT8 goes to the NPU and bf16/fp16 to the GPU.
These devices run compiled graphs, so the eager and fused profiles cost the same here.
"""
from __future__ import annotations

import math

from workloads.errors import HwsimError

from .cpu import DeviceModel, causal_work
from .opcost import OpCost

DEFAULTS = {
    "array_eff": 0.9,        # estimate: tile cycles not lost to stalls, sync and weight double-buffer misses
    "bw_eff": 0.85,          # estimate: attained fraction of HBM/LPDDR bandwidth on long streams
    "buffer_mb": 16.0,       # estimate: on-chip buffer for reuse (TPU v4 has 32 MiB VMEM + 128 MiB CMEM per chip)
    "vec_eff": 0.7,          # estimate: vector-unit utilization on elementwise/reduction ops
    "vector_flops_per_clock": 4096.0,   # estimate, used only where the preset lists no vector engine
    "mm_eff": 0.5,           # estimate: engines with no array geometry and no measured rate
    "op_overhead_us": 1.0,   # estimate: dispatch/sync per op in a compiled graph
    "softmax_flops": 5.0,    # max, sub, exp, sum, div per score
    "tiling_search": 0,      # 1: GEMM DRAM traffic from the searched tiling (hw_models/tiling.py)
    "tiling_time_limit_s": 0.05,   # search time per distinct GEMM shape (then memoized)
    "weight_double_buffer": None,  # 1/0: override the preset's engine setting (next tile's weights shift in while rows stream)
}


def gemm_tiled_traffic(m, n, k, b_bytes, a_bytes, rows, cols, arrays, buffer_bytes, time_limit_s,
                       which: str = "searched", batch: int = 1) -> float:
    """DRAM bytes of a GEMM (A: M x K activations, B: K x N weights) under the least-traffic searched tiling
    (or the default tiling: `which="default"`). Only the traffic is used; clock and bandwidth do not change it."""
    from .tiling import reuse, tiled               # imported only when the search is asked for
    m, n, k = (max(1, int(round(x))) for x in (m, n, k))
    element = (a_bytes + b_bytes) / ((m * k + k * n) * max(batch, 1)) or 1.0
    searched, default = tiled(m, n, k, rows, cols, arrays, 1e9, 1e12, buffer_bytes, element, time_limit_s)
    a_reuse, b_reuse = reuse(searched if which == "searched" else default, m, n, k)
    return a_bytes * a_reuse + b_bytes * b_reuse


class SystolicModel(DeviceModel):
    DEFAULTS = DEFAULTS

    def __init__(self, device, profile: str = "eager", params: dict = None):
        super().__init__(device, profile, params)
        engines = list(device.engines.values())
        arrays = [e for e in engines if e.kind == "systolic"]
        self.mm_engines = arrays or engines
        self.vector = next((e for e in engines if e.kind == "vector"), None)
        self.buf = self.p["buffer_mb"] * 1e6

    # --- engine choice -----------------------------------------------------------------------
    def _eff(self, e, dtype):
        fit = self.fitted(e, dtype) if not e.array_rows else None
        if fit:
            return fit
        return (self.p["array_eff"] if e.array_rows else self.p["mm_eff"]), 0.0

    def _mm(self, dtype: str):
        """(engine, dtype it runs as, efficiency, fixed s) of the fastest engine for `dtype`."""
        best = None
        for e in self.mm_engines:
            eff, fixed = self._eff(e, dtype)
            for d in self.chain(dtype):
                if d in e.ops_per_unit_per_clock and (best is None or e.peak(d) * eff > best[0].peak(best[1]) * best[2]):
                    best = (e, d, eff, fixed)
        if best is None:
            have = sorted({d for e in self.mm_engines for d in e.ops_per_unit_per_clock})
            floats = [d for d in ("bf16", "fp16") if d in have]
            fix = f"--dtype {floats[0]}" if floats else "--quant w8a8"
            raise HwsimError(f"{self.device.name} cannot run {dtype} matmuls (it has {', '.join(have)}); use {fix}")
        return best

    def mm_engine_per(self, op) -> dict:
        return self._mm(op.dtype)[0].ops_per_unit_per_clock

    # --- building blocks -----------------------------------------------------------------------
    def gemm_s(self, m, n, k, batch, dtype, clock_mhz, units: int = None):
        """(compute seconds, M chunks, engine, fixed seconds) of one GEMM on `units` arrays (default: all)."""
        e, d, eff, fixed = self._mm(dtype)
        units = units or e.units
        hz = self.hz(e, clock_mhz)
        if not e.array_rows:
            return 2.0 * m * n * k * batch / (e.peak(d, hz / 1e6) * eff), 1, e, fixed
        R, C = e.array_rows, e.array_cols or e.array_rows
        per_pe = e.ops_per_unit_per_clock[d] / (2 * R * C)          # MACs per PE per clock
        m_chunk = max(R, int(self.buf / 2 / (units * C * 4)))      # fp32 partial sums held per array
        chunks = math.ceil(m / m_chunk)
        rows = math.ceil(m / chunks)
        tiles = math.ceil(k / R) * math.ceil(n / C) * batch * chunks
        waves = math.ceil(tiles / units)
        double = self.p["weight_double_buffer"]
        if double is None:
            double = e.extra.get("weight_double_buffer", 0.0)
        if double:                                  # tiles pipeline back to back (TPU-style shadow weights)
            cycles = waves * max(rows / per_pe, R) + R + C
        else:
            cycles = waves * (rows / per_pe + R + C)
        return cycles / (hz * eff), chunks, e, fixed

    def _vector_rate(self, dtype, clock_mhz):
        v = self.vector
        if v is not None:
            d = next((d for d in self.chain(dtype) + ("fp16", "bf16", "fp32") if d in v.ops_per_unit_per_clock), None)
            if d:
                return v.peak(d, self.hz(v, clock_mhz) / 1e6) * self.p["vec_eff"]
        ref = self.mm_engines[0]
        return self.p["vector_flops_per_clock"] * self.hz(ref, clock_mhz) * self.p["vec_eff"]

    def _traffic(self, op, n, e, chunks, units: int = None) -> float:
        """DRAM bytes of a GEMM after on-chip reuse."""
        total = float(sum(op.bytes.values()))
        w, a = float(op.reads.get("weight", 0)), float(op.reads.get("activation", 0))
        rest = total - w - a
        if not w:                       # activation x activation: the K x N operand is the stationary one
            at = op.attrs
            share = at["k"] * at["n"] / (at["m"] * at["k"] + at["k"] * at["n"])
            w, a = a * share, a * (1 - share)
        if not e.array_rows:
            return total
        if self.p["tiling_search"]:
            at = op.attrs
            return gemm_tiled_traffic(at["m"], at["n"], at["k"], w, a, e.array_rows, e.array_cols or e.array_rows,
                                      e.units, self.buf, self.p["tiling_time_limit_s"], batch=at.get("batch", 1)) + rest
        a_passes = 1 if a <= self.buf / 2 else math.ceil(math.ceil(n / (e.array_cols or e.array_rows)) / (units or e.units))
        w_passes = 1 if w <= self.buf / 2 else chunks
        return w * w_passes + a * a_passes + rest

    # --- ops -------------------------------------------------------------------------------------
    def cost(self, op, clock_mhz: float) -> OpCost:
        nbytes = float(sum(op.bytes.values()))
        over = self.p["op_overhead_us"] * 1e-6
        eff = self.p["bw_eff"]
        if op.kind == "matmul" and "m" in op.attrs:
            a = op.attrs
            best = None
            # the compiler may leave arrays idle when more of them would mean more M chunks (each re-reading the
            # weights) than the compute they add is worth: the fastest of all, half, a quarter ... of the arrays
            units = self._mm(op.dtype)[0].units
            for use in sorted({max(1, units >> i) for i in range(units.bit_length())}, reverse=True):
                compute, chunks, e, fixed = self.gemm_s(a["m"], a["n"], a["k"], a.get("batch", 1), op.dtype, clock_mhz, use)
                moved = self._traffic(op, a["n"], e, chunks, use)
                memory = self.stream(moved, eff)
                if best is None or max(compute, memory) < max(best[0], best[1]):
                    best = (compute, memory, fixed, moved)
            compute, memory, fixed, moved = best
            return self.make(op, compute, memory, over + fixed, moved)
        if op.kind == "matmul":
            e, d, mm_eff, fixed = self._mm(op.dtype)
            compute = op.flops / (e.peak(d, self.hz(e, clock_mhz) / 1e6) * mm_eff)
            return self.make(op, compute, self.stream(nbytes, eff), over + fixed, nbytes)
        if op.kind == "attention":
            return self._attention(op, nbytes, clock_mhz, over)
        compute = op.flops / self._vector_rate(op.dtype, clock_mhz)
        return self.make(op, compute, self.stream(nbytes, eff), over, nbytes)

    def _attention(self, op, nbytes, clock_mhz, over):
        a = op.attrs
        group = max(a["hq"] // max(a["hkv"], 1), 1)
        m, batch = a["sq"] * group, a["b"] * a["hkv"]
        work = causal_work(a)
        qk, _, _, fixed = self.gemm_s(m, a["sk"], a["d"], batch, op.dtype, clock_mhz)
        pv, _, _, _ = self.gemm_s(m, a.get("dv", a["d"]), a["sk"], batch, op.dtype, clock_mhz)
        vec = self._vector_rate(op.dtype, clock_mhz)
        softmax = self.p["softmax_flops"] * a["b"] * a["hq"] * a["sq"] * a["sk"] * work / vec
        arrays = (qk + pv) * work
        if a["sq"] <= 16:               # decode: a GEMV over the KV cache, arrays or vector units
            arrays = min(arrays, op.flops / vec)
        compute = max(arrays, softmax) if a["sq"] > 16 else arrays + softmax
        return self.make(op, compute, self.stream(nbytes, self.p["bw_eff"]), over + fixed, nbytes)
