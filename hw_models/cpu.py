"""CPU / edge cost model, plus `DeviceModel`, the small base the non-GPU models share.

A CPU runs an LLM as eager kernels on a thread pool: GEMMs reach a fraction of the SIMD (or AMX)
peak, everything else streams DRAM at a fraction of its bandwidth, and each kernel pays a fork/join
of a few microseconds. Where a preset keeps a measured GEMM rate (`measured_<dtype>_tops_MxKxN` in
an engine's `extra`, or in `power.extra` of a one-engine part), the attained rate and a fixed cost per
GEMM are fitted to those points and the same fraction of peak is used for the engine's other dtypes.
A measured rate pins the engine's absolute rate: drop it from a copied preset whose engine you change.

Clocks: the power model passes one clock, `clock_mhz`, between its f_min and f_max (the preset's
`max_clock_mhz`, else the fastest engine clock). Each engine runs at its own preset clock scaled by
clock_mhz / f_max: a preset's engine clock is the clock it sustains under load (the Xeon's AMX runs at
the 2.0 GHz base, not the 3.8 GHz single-core turbo).
"""
from __future__ import annotations

import re

from workloads.errors import HwsimError

from .opcost import OpCost

# dtype -> what runs it where the engine lacks it (same width or wider, so results stay exact)
FALLBACK = {"bf16": ("bf16", "fp16"), "fp16": ("fp16", "bf16"), "fp8": ("fp8", "bf16", "fp16"),
            "int8": ("int8", "fp16", "bf16"), "ternary": ("ternary", "int8", "fp16", "bf16"), "fp32": ("fp32",)}
_MEASURED = re.compile(r"measured_([a-z0-9]+)_t(?:ops|flops)_(\d+)x(\d+)x(\d+)$")


class DeviceModel:
    """Shared plumbing: parameters, engine clocks, dtype fallback, measured-rate fits, OpCost."""
    DEFAULTS: dict = {}
    CHAIN_EXTRA: tuple = ()          # dtypes every op may fall back to on this class (CPU: fp32)

    def __init__(self, device, profile: str = "eager", params: dict = None):
        from .stacks import stack
        self.device, self.profile = device, stack(profile).kernels     # kernel granularity of the stack
        cal = device.calibration.params if device.calibration else {}
        self.given = {**cal, **(params or {})}
        self.p = {**self.DEFAULTS, **self.given}
        self.mem = device.main_memory
        self.bw = self.mem.bandwidth_gbps * 1e9
        self.f_ref = device.power.extra.get("max_clock_mhz") or max(e.clock_mhz for e in device.engines.values())

    def hz(self, engine, clock_mhz: float) -> float:
        return engine.clock_mhz * 1e6 * clock_mhz / self.f_ref

    def chain(self, dtype: str) -> tuple:
        return FALLBACK.get(dtype, (dtype,)) + tuple(d for d in self.CHAIN_EXTRA if d not in FALLBACK.get(dtype, ()))

    def measured(self, engine) -> dict:
        """dtype -> [(m, k, n, ops/s)] from the preset's measured GEMM rates (at the preset clock)."""
        extras = [engine.extra]
        if len(self.device.engines) == 1:
            extras.append(self.device.power.extra)
        out = {}
        for extra in extras:
            for key, val in extra.items():
                hit = _MEASURED.match(key)
                if hit:
                    m, k, n = (int(x) for x in hit.groups()[1:])
                    out.setdefault(hit.group(1), []).append((m, k, n, val * 1e12))
        return out

    def fitted(self, engine, dtype: str):
        """(fraction of peak, fixed seconds per GEMM) fitted to measured points, or None.

        Two or more points: least squares of t = a + flops / r. One point: a = op_overhead_us."""
        meas = self.measured(engine)
        if not meas:
            return None
        dt, pts = (dtype, meas[dtype]) if dtype in meas else next(iter(meas.items()))
        if not engine.peak(dt):
            return None
        flops = [2.0 * m * k * n for m, k, n, _ in pts]
        times = [f / r for f, (_, _, _, r) in zip(flops, pts)]
        a = self.p.get("op_overhead_us", 0.0) * 1e-6
        if len(pts) >= 2:
            fm, tm = sum(flops) / len(pts), sum(times) / len(pts)
            var = sum((f - fm) ** 2 for f in flops)
            slope = sum((f - fm) * (t - tm) for f, t in zip(flops, times)) / var if var else 0.0
            if slope > 0 and tm - slope * fm >= 0:
                return 1.0 / slope / engine.peak(dt), tm - slope * fm
        rate = sum(flops) / max(sum(times) - a * len(pts), 1e-12)
        return rate / engine.peak(dt), a

    def stream(self, nbytes: float, eff: float) -> float:
        return nbytes / (self.bw * eff)

    def energy_flops(self, op) -> float:
        """FLOPs weighted by datapath cost: an 8-bit op costs about half a 16-bit one."""
        per = self.mm_engine_per(op) if op.kind == "matmul" else {}
        base = per.get("bf16") or per.get("fp16")
        dt = next((d for d in self.chain(op.dtype) if d in per), None)
        return op.flops * base / per[dt] if base and dt else float(op.flops)

    def mm_engine_per(self, op) -> dict:
        return {}

    @staticmethod
    def make(op, compute, memory, over, nbytes, kernels=1) -> OpCost:
        body = max(compute, memory)
        bound = "latency" if over > body else ("compute" if compute >= memory else "memory")
        return OpCost(time_s=body + over, compute_s=compute, memory_s=memory, overhead_s=over,
                      flops=float(op.flops), bytes=float(nbytes), bound=bound, kernels=kernels)


def causal_work(a: dict) -> float:
    """Fraction of the attention FLOPs a causal / windowed kernel really computes."""
    work = 0.5 if a.get("causal") and a.get("sq", 1) == a.get("sk", 1) and a.get("sq", 1) > 1 else 1.0
    if a.get("window") and a["window"] < a.get("sk", 0):
        work = min(work, a["window"] / a["sk"])
    return work


DEFAULTS = {
    "mm_eff": 0.55,          # estimate: oneDNN / llama.cpp-class GEMMs reach ~50-60% of SIMD/AMX peak at LLM sizes
    "attn_eff": 0.35,        # estimate: attention kernels on CPUs (softmax and layout work between the GEMMs)
    "vec_eff": 0.5,          # estimate: elementwise math at half the fp32 SIMD peak
    "bw_eff": 0.7,           # estimate: STREAM-triad on DDR5 servers / LPDDR5X phones reaches ~65-80% of peak
    "op_overhead_us": 4.0,   # estimate: thread-pool fork/join per kernel (OpenMP barrier, a few us)
}


class CPUModel(DeviceModel):
    """SIMD cores (and AMX tiles where the preset has them) over DDR/LPDDR."""
    DEFAULTS = DEFAULTS
    CHAIN_EXTRA = ("fp32",)      # a CPU can always widen to fp32

    def _best(self, dtype: str, clock_mhz: float, kinds=("matrix", "simd")):
        """(peak ops/s, attained fraction, fixed s per GEMM, engine): the fastest way to run `dtype`."""
        best = None
        for e in self.device.engines.values():
            if e.kind not in kinds:
                continue
            fit = self.fitted(e, dtype)
            eff, fixed = fit if fit else (self.p["mm_eff"], 0.0)
            for d in self.chain(dtype):
                if d in e.ops_per_unit_per_clock:
                    peak = e.peak(d, self.hz(e, clock_mhz) / 1e6)
                    if best is None or peak * eff > best[0] * best[1]:
                        best = (peak, eff, fixed, e)
        if best is None:
            raise HwsimError(f"{self.device.name} has no SIMD path for {dtype}; use --dtype bf16 or fp32")
        return best

    def mm_engine_per(self, op) -> dict:
        return self._best(op.dtype, self.f_ref)[3].ops_per_unit_per_clock

    def cost(self, op, clock_mhz: float) -> OpCost:
        nbytes = float(sum(op.bytes.values()))
        over = self.p["op_overhead_us"] * 1e-6
        bw_eff = self.p["bw_eff"]
        if op.kind == "matmul":
            peak, eff, fixed, _ = self._best(op.dtype, clock_mhz)
            return self.make(op, op.flops / (peak * eff), self.stream(nbytes, bw_eff), over + fixed, nbytes)
        if op.kind == "attention":
            peak, eff, _, _ = self._best(op.dtype, clock_mhz)
            compute = op.flops * causal_work(op.attrs) / (peak * min(eff, self.p["attn_eff"]))
            return self.make(op, compute, self.stream(nbytes, bw_eff), over, nbytes)
        vec = self._best("fp32", clock_mhz, kinds=("simd", "vector"))[0] * self.p["vec_eff"]
        kernels = op.kernels if self.profile == "eager" and op.kernels else ()
        if not kernels:
            return self.make(op, op.flops / vec, self.stream(nbytes, bw_eff), over, nbytes)
        compute = sum(k.flops for k in kernels) / vec
        memory = sum(self.stream(sum(k.bytes.values()), bw_eff) for k in kernels)
        moved = float(sum(sum(k.bytes.values()) for k in kernels))
        return self.make(op, compute, memory, over * len(kernels), moved, len(kernels))
