"""Processing-in-memory cost model (NeuPIMs/Newton HBM2-PIM, Samsung HBM-PIM, SK hynix GDDR6-AiM).

Why DRAM timing and not bandwidth: in-bank PIM does not use the external bus. Every bank streams the
rows it holds through its own multipliers, all banks at once, so a GEMV's time is set by how many rows
each bank opens and how many column bursts it reads:

    misses  = passes x rows_per_bank x (tRCD + tRP)
    bursts  = passes x cols_per_bank x tCCD
    MACs    = FLOPs / (banks x 2 x multipliers x clock)
    time    = misses + max(bursts, MACs) + host side (input vector broadcast, results read out, launch)

A row activation is a row-buffer miss (tRCD + tRP); the column bursts inside an open row are hits
(tCCD each; a burst feeds one element to each multiplier). The matrix is spread evenly over all banks.
The bank's input registers hold `vec_regs` input vectors (Newton-style: one), so a GEMV with M input
vectors re-opens every row ceil(M / vec_regs) times. tCCD is in command-clock cycles and scales with the
clock the power model picks (so a power cap throttles PIM throughput); tRCD and tRP are analog, in ns.
The whole in-bank time is reported as compute_s (sim.predict stretches compute_s under a power cap).

Which ops run in-bank: only GEMV-shaped ones, i.e. matmuls with at most `gemv_max_m` rows (decode
projections) and attention with at most `gemv_max_m` query rows per KV head (decode over the KV cache),
and only when that is faster than the fallback. FALLBACK (everything else: prefill GEMMs, norms,
elementwise, embedding, KV append): the op runs on the host at the memory's external bandwidth x
bw_eff; its compute is charged at `host_tflops` if given, else at the in-bank peak (a PIM part has no
other compute, so it is not credited with free FLOPs).

Decode attention on a preset with full DRAM command timing (memory extra: tFAW, tRRD_S, tRAS,
multipliers_per_bank ..., as neupims-hbm-pim) is timed by hw_models.pim_timing instead: each request's
KV cache in one channel, QK^T and PV as all-bank tiles limited by tFAW/tRCD/tRP/tRAS and column bursts,
requests of equal length spread evenly, so the busiest channel holds ceil(batch / channels) of them.

`mode` (parameter or params["mode"]): "blocked" - the host cannot touch memory while PIM runs, so the
host side of a GEMV adds to its time; "concurrent" - with dual row buffers (memory extra
`dual_row_buffer: 1`, NeuPIMs) host traffic overlaps the in-bank work. A single-device op-by-op cost
can only show the overlap inside one op; overlapping NPU GEMMs with PIM attention is a system-level
schedule (NeuPIMs sub-batch interleaving) for the heterogeneous simulator.
"""
from __future__ import annotations

import math

from workloads.errors import HwsimError

from .cpu import DeviceModel
from .opcost import OpCost
from .pim_timing import NEEDED, PIMTiming

DEFAULTS = {
    "tRCD_ns": 14.0,         # JEDEC-class HBM2/GDDR6 timings, used where the preset's memory extra has none
    "tRP_ns": 14.0,
    "tCCD_cycles": 2.0,      # tCCD_L in clock cycles where the preset gives neither tCCD_L_ns nor an internal bandwidth
    "vec_regs": 1.0,         # input vectors held per bank (Newton: one global-buffer vector)
    "gemv_max_m": 8.0,       # estimate: at most this many input vectors per matrix still counts as a GEMV
    "launch_us": 1.0,        # estimate: host issues the PIM command sequence (mode register, all-bank commands)
    "bw_eff": 0.85,          # estimate: fallback host streams, attained fraction of the external bandwidth
    "host_tflops": 0.0,      # 0: fallback compute at the in-bank peak
    "op_overhead_us": 1.0,   # estimate: fallback ops, per op
}


class PIMModel(DeviceModel):
    DEFAULTS = DEFAULTS

    def __init__(self, device, profile: str = "eager", params: dict = None, mode: str = None):
        params = dict(params or {})
        mode = mode or params.pop("mode", None)
        super().__init__(device, profile, params)
        self.pim = device.engine_for("pim")
        if self.pim is None:
            raise HwsimError(f"{device.id} has no pim engine; a pim-class preset needs engines.<name>.kind: pim")
        x, m = self.mem.extra, self.mem
        dual = bool(x.get("dual_row_buffer", 0))
        self.mode = mode or ("concurrent" if dual else "blocked")
        if self.mode not in ("blocked", "concurrent"):
            raise HwsimError(f"unknown PIM mode '{self.mode}'; use blocked or concurrent")
        if self.mode == "concurrent" and not dual:
            raise HwsimError(f"{device.id} has one row buffer per bank, so the host cannot run beside PIM; use mode=blocked")
        self.banks = self.pim.units
        self.row = m.row_buffer_bytes or 1024
        self.channels = m.channels or 1
        self.t_miss = (x.get("tRCD_ns", self.p["tRCD_ns"]) + x.get("tRP_ns", self.p["tRP_ns"])) * 1e-9
        self.x = x
        self.timing = PIMTiming(device) if all(k in x for k in NEEDED) else None

    def _dtype(self, dtype):
        per = self.pim.ops_per_unit_per_clock
        d = next((d for d in self.chain(dtype) if d in per), None)
        if d is None:
            raise HwsimError(f"{self.device.name} multiplies {', '.join(per)} only; use --dtype {next(iter(per))}")
        return d

    def mm_engine_per(self, op) -> dict:
        return self.pim.ops_per_unit_per_clock

    def _tccd(self, mult, clock_mhz):
        """Seconds per column burst at this clock (the preset's tCCD_L, scaled by f_max / clock)."""
        scale = self.f_ref / clock_mhz
        if "tCCD_L_ns" in self.x:
            return self.x["tCCD_L_ns"] * 1e-9 * scale
        internal = self.pim.extra.get("internal_bandwidth_gbps") or self.x.get("internal_bandwidth_gbps")
        if internal:                    # one burst feeds every bank's multipliers: banks x mult x 2 B / internal bw
            return self.banks * mult * 2 / (internal * 1e9) * scale
        return self.p["tCCD_cycles"] / (self.pim.clock_mhz * 1e6) * scale

    def inbank_s(self, matrix_bytes, vectors, flops, dtype, clock_mhz):
        """(row-miss s, column-burst s, MAC s) of a GEMV over matrix_bytes with `vectors` input vectors."""
        d = self._dtype(dtype)
        per = self.pim.ops_per_unit_per_clock[d]
        mult = per / 2
        elem = 1 if d in ("int8", "fp8") else 2
        per_bank = matrix_bytes / self.banks
        rows = math.ceil(per_bank / self.row)
        cols = math.ceil(per_bank / (mult * elem))
        passes = math.ceil(vectors / self.p["vec_regs"])
        macs = flops / (self.banks * per * self.hz(self.pim, clock_mhz))
        return passes * rows * self.t_miss, passes * cols * self._tccd(mult, clock_mhz), macs

    def _host(self, op, nbytes, clock_mhz) -> OpCost:
        rate = self.p["host_tflops"] * 1e12 or self.pim.peak(self._dtype_or_any(op.dtype), self.hz(self.pim, clock_mhz) / 1e6)
        return self.make(op, op.flops / rate, self.stream(nbytes, self.p["bw_eff"]),
                         self.p["op_overhead_us"] * 1e-6, nbytes)

    def _dtype_or_any(self, dtype):
        per = self.pim.ops_per_unit_per_clock
        return next((d for d in self.chain(dtype) if d in per), next(iter(per)))

    def cost(self, op, clock_mhz: float) -> OpCost:
        nbytes = float(sum(op.bytes.values()))
        host = self._host(op, nbytes, clock_mhz)
        a, limit = op.attrs, self.p["gemv_max_m"]
        acts = float(op.reads.get("activation", 0))
        if op.kind == "matmul" and "m" in a and a["m"] <= limit:
            matrix = float(op.reads.get("weight", 0)) or acts * a["n"] / (a["m"] + a["n"])
            vectors, launches = a["m"], a.get("batch", 1)
        elif op.kind == "attention" and self.timing and a["sq"] == 1 and a["hq"] == a["hkv"]:
            return self._timed_attention(op, nbytes, acts, host, clock_mhz)
        elif op.kind == "attention" and a["sq"] * max(a["hq"] // max(a["hkv"], 1), 1) <= limit:
            matrix = float(op.reads.get("kv_cache", 0)) or float(op.bytes.get("kv_cache", 0))
            vectors, launches = a["sq"] * max(a["hq"] // max(a["hkv"], 1), 1), 2     # QK^T, then PV
        else:
            return host
        if not matrix:
            return host
        miss, burst, macs = self.inbank_s(matrix, vectors, op.flops, op.dtype, clock_mhz)
        inbank = miss + max(burst, macs)        # multipliers consume the bursts; nothing streams while a row opens
        vec_in = acts if op.reads.get("weight") or op.kind == "attention" else acts - matrix   # broadcast per channel
        out = max(nbytes - matrix - vec_in, 0.0)                       # results read back
        side = (vec_in * self.channels + out) / (self.bw * self.p["bw_eff"])
        launch = self.p["launch_us"] * 1e-6 * launches
        extra = side if self.mode == "blocked" else max(side - inbank, 0.0)
        # compute_s is the whole in-bank time (it runs on the PIM clock, so sim.predict stretches it under a
        # power cap; the row-miss part is analog and is stretched too, a small overestimate); memory_s is
        # its DRAM-timing part. The bound says which limits the in-bank work at this clock.
        cost = OpCost(time_s=inbank + extra + launch, compute_s=inbank, memory_s=miss + burst,
                      overhead_s=extra + launch, flops=float(op.flops), bytes=nbytes,
                      bound="compute" if macs > burst else "memory")
        return cost if cost.time_s < host.time_s else host

    def _timed_attention(self, op, nbytes, acts, host, clock_mhz) -> OpCost:
        """Decode attention from DRAM command timing (hw_models.pim_timing), equal-length requests."""
        a = op.attrs
        per_request = float(self.timing.attention_ns([a["sk"]], a["hq"], a["d"])["total"][0]) * 1e-9
        inbank = math.ceil(a["b"] / self.channels) * per_request * self.f_ref / clock_mhz
        out = max(nbytes - float(op.reads.get("kv_cache", 0)) - acts, 0.0)
        side = (acts * self.channels + out) / (self.bw * self.p["bw_eff"])
        extra = side if self.mode == "blocked" else max(side - inbank, 0.0)
        launch = self.p["launch_us"] * 2e-6
        cost = OpCost(time_s=inbank + extra + launch, compute_s=inbank, memory_s=inbank, overhead_s=extra + launch,
                      flops=float(op.flops), bytes=nbytes, bound="memory")
        return cost if cost.time_s < host.time_s else host
