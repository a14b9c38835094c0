"""FPGA LLM-accelerator cost model (FlightLLM on Alveo U280 / Versal VHK158, TeLLMe on Kria KV260).

Why this shape: an FPGA LLM design is an instruction-driven overlay whose matrix engine is a set of
DSP chains and whose weights stream from HBM/DDR, so a step is bounded by
    compute = FLOPs / (DSPs x clock x ops per DSP per clock x dsp_eff x fill)
    memory  = off-chip bytes / (bandwidth x channels used / channels x efficiency)
    time    = max(compute, memory, special-function time) + a per-instruction overhead.
- ops per DSP per clock come from the preset (DSP48E2 packs two INT8 MACs = 4 ops, DSP58 three).
  Ternary and int4 weights use the INT8 datapath (TeLLMe's table-lookup ternary matmul runs in LUTs,
  so for it this is a bound, not its datapath). bf16/fp16/fp8 matmuls, where the preset lists no such
  mode, run as one 16-bit MAC per DSP per clock (`ops16_per_dsp`: after exponent alignment a bf16 or
  fp16 mantissa fits the 27x18 multiplier; stated estimate). fp32 without a DSP fp32 mode is an error.
- fill: a GEMM with M rows fills min(1, M / mm_parallel_m) of the matrix-mode array; a GEMV runs in
  the matrix-vector mode at `gemv_frac` of the matrix peak. Both from FlightLLM's released profiler
  config (MM parallelism (N,K,M) = (2,16,128) = 4096 MACs per SLR per clock; MV (64,16,1) = 1024).
- Memory efficiency: HBM 0.659, the bandwidth utilization FlightLLM (FPGA'24, Sec. on always-on-chip
  decode) reports with decode activations kept on chip (35.6% without), unless the preset's memory
  extra gives `same_channel_efficiency` (VHK158: 0.7 from FlightLLM's profiler config). DDR: `ddr_eff`.
  `channels_used` models a design that wires only some channels (FlightLLM's U280 bitstream writes
  24 of the 32 HBM pseudo-channels: the artifact's README output lists ch00-02, 04-06, ... 28-30).
- On-chip activations: an op's activation bytes up to `onchip_mb` stay in BRAM/URAM (always-on-chip
  decode), so decode moves only weights and KV cache off chip; large prefill activations spill.
- Norm, softmax, rotary and elementwise ops run on the special-function units (`sfu_ops_per_clock`).
- With `tiling_search` on, a GEMM's weights (and spilled activations) cross off-chip memory as often as the
  least-traffic tiling that fits half the on-chip BRAM/URAM says (hw_models/tiling.py, memoized per shape);
  without it every weight is read once (unbounded reuse, optimistic for large prefill GEMMs).
- A design description may narrow the datapath: `dsps_used` (the DSPs a bitstream instantiates) and
  `tlmm` (a table-lookup ternary engine such as TeLLMe's TLMM, timed cycle by cycle from its structure in
  hw_models/tlmm.py: weights in the engine's packed layout, independent of the DSPs). With `serial_weight_load`
  an op's weights load before it computes (TeLLMe's top function: load_weight, then the linear), so the op
  takes load + compute. `attn_lanes` gives an attention engine that multiplies that many elements per clock
  (QK and PV run as concurrent dataflow stages), plus `attn_head_loop` x heads clocks per key (a per-head
  softmax/exp loop after each key's block loop); `fused_elementwise` folds elementwise ops into the
  neighbouring linear's output stream (TeLLMe's apply_elem_wise), so they cost no time of their own.
The eager and fused profiles cost the same (an FPGA runs its own compiled instruction stream).
"""
from __future__ import annotations

from workloads.errors import HwsimError

from .cpu import DeviceModel, causal_work
from .opcost import OpCost
from .systolic import gemm_tiled_traffic
from .tlmm import load_bytes, tlmm_cycles

DEFAULTS = {
    "dsp_eff": 0.8,           # estimate: DSP-chain utilization on dense tiles (FlightLLM gives only a relative 1.6x)
    "gemv_frac": 0.25,        # FlightLLM profile/config.yaml: MV 64*16*1 = 1024 vs MM 2*16*128 = 4096 MACs per SLR
    "mm_parallel_m": 128,     # FlightLLM profile/config.yaml MM_PARALLEL_M
    "hbm_eff": 0.659,         # FlightLLM: HBM bandwidth utilization with always-on-chip decode
    "ddr_eff": 0.75,          # Xilinx UG585 (Zynq-7000 TRM) 22.3.2: PS DDR controller built for ~75% efficiency
    "channels_used": 0,       # memory channels the design wires (0: all the preset has)
    "onchip_mb": 2.0,         # estimate: activations up to this size per op stay on chip
    "sfu_ops_per_clock": 48.0,  # FlightLLM config: softmax/norm/eltwise parallelism 16 per SLR, x 3 SLRs of a U280
    "softmax_flops": 5.0,
    "op_overhead_us": 2.0,    # estimate: instruction issue, dependency sync and pipeline fill per op
    "ops16_per_dsp": 2.0,     # estimate: one 16-bit MAC per DSP per clock where the preset lists no 16-bit mode
    "dsps_used": 0,           # DSP slices the design instantiates (0: all the device has)
    "tlmm": None,             # dict: ternary matmuls run on a table-lookup engine of this structure (hw_models/tlmm.py)
    "serial_weight_load": 0,  # 1: a matmul's weight load does not overlap its compute (load, then compute)
    "attn_lanes": 0,          # >0: attention multiplies this many elements per clock (QK and PV stages concurrent)
    "attn_head_loop": 0,      # 1: per key, a pipelined loop over the heads (online softmax / exp) adds hq clocks
    "fused_elementwise": 0,   # 1: elementwise ops ride the linear's output stream (no time of their own)
    "tiling_search": 0,       # 1: GEMM weight/activation traffic from the searched tiling (hw_models/tiling.py)
    "tiling_time_limit_s": 0.05,
    "tile_rows": 16,          # FlightLLM profile/config.yaml: MM parallelism K = 16 (the block step along K and N)
}


class FPGAModel(DeviceModel):
    DEFAULTS = DEFAULTS

    def __init__(self, device, profile: str = "eager", params: dict = None):
        super().__init__(device, profile, params)
        self.dsp = device.engine_for("dsp") or next(iter(device.engines.values()))
        key = next(iter(device.memory))
        eff = self.p["hbm_eff"] if "hbm" in key.lower() else self.p["ddr_eff"]
        if "hbm" in key.lower() and "hbm_eff" not in self.given:    # a preset's own figure (VHK158: FlightLLM's 0.7)
            eff = self.mem.extra.get("same_channel_efficiency", eff)
        used, chans = self.p["channels_used"], self.mem.channels
        frac = min(1.0, used / chans) if used and chans else 1.0
        self.eff_bw = eff * frac                   # fraction of the datasheet bandwidth the design attains
        self.onchip = self.p["onchip_mb"] * 1e6

    def _ops_per_dsp(self, dtype: str) -> float:
        per = self.dsp.ops_per_unit_per_clock
        if dtype in per:
            return per[dtype]
        if dtype in ("ternary", "int4", "int8") and "int8" in per:
            return per["int8"]
        if dtype in ("bf16", "fp16", "fp8", "int8"):
            return per.get("fp16") or per.get("bf16") or self.p["ops16_per_dsp"]
        raise HwsimError(f"{self.device.name} DSPs have no {dtype} mode in this model; use --dtype bf16 or --quant w8a8")

    def mm_engine_per(self, op) -> dict:
        return {"bf16": self.p["ops16_per_dsp"], op.dtype: self._ops_per_dsp(op.dtype)}

    def _peak(self, dtype, clock_mhz):
        units = min(self.dsp.units, self.p["dsps_used"]) if self.p["dsps_used"] else self.dsp.units
        return units * self.hz(self.dsp, clock_mhz) * self._ops_per_dsp(dtype) * self.p["dsp_eff"]

    def _fill(self, m: float) -> float:
        return max(self.p["gemv_frac"], min(1.0, m / self.p["mm_parallel_m"]))

    def _offchip(self, op) -> float:
        act = float(op.bytes.get("activation", 0))
        rest = float(sum(op.bytes.values())) - act
        spilled = act > self.onchip
        a = op.attrs
        if self.p["tiling_search"] and op.kind == "matmul" and "m" in a and op.reads.get("weight"):
            w, a_in = float(op.reads["weight"]), float(op.reads.get("activation", 0))
            level = self.device.memory.get("onchip")
            buffer = (level.capacity_gb * 1e9 if level and level.capacity_gb else self.onchip * 2) / 2
            rows = int(self.p["tile_rows"])
            tiled = gemm_tiled_traffic(a["m"], a["n"], a["k"], w, a_in if spilled else 0.0, rows, rows, 1, buffer,
                                       self.p["tiling_time_limit_s"], batch=a.get("batch", 1))
            return rest - w + tiled + (act - a_in if spilled else 0.0)
        return rest + (act if spilled else 0.0)

    def cost(self, op, clock_mhz: float) -> OpCost:
        a = op.attrs
        if op.kind == "matmul" and op.dtype == "ternary" and self.p["tlmm"] and "m" in a:
            return self._tlmm_cost(op, clock_mhz)
        moved = self._offchip(op)
        memory = moved / (self.bw * self.eff_bw)
        over = self.p["op_overhead_us"] * 1e-6
        sfu = self.p["sfu_ops_per_clock"] * self.hz(self.dsp, clock_mhz)
        if op.kind == "matmul":
            fill = self._fill(a["m"]) if "m" in a else 1.0
            compute = op.flops / (self._peak(op.dtype, clock_mhz) * fill)
        elif op.kind == "attention" and self.p["attn_lanes"]:
            pairs = a["b"] * a["sq"] * a["sk"] * causal_work(a)
            cycles = pairs * (a["hq"] * max(a["d"], a["dv"]) / self.p["attn_lanes"] + a["hq"] * self.p["attn_head_loop"])
            compute = cycles / self.hz(self.dsp, clock_mhz)
        elif op.kind == "attention":
            group = max(a["hq"] // max(a["hkv"], 1), 1)
            work = causal_work(a)
            compute = op.flops * work / (self._peak(op.dtype, clock_mhz) * self._fill(a["sq"] * group))
            compute = max(compute, self.p["softmax_flops"] * a["b"] * a["hq"] * a["sq"] * a["sk"] * work / sfu)
        elif op.kind == "elementwise" and self.p["fused_elementwise"]:
            compute, memory, over = 0.0, 0.0, 0.0
        else:
            compute = op.flops / sfu
        return self.make(op, compute, memory, over, moved)

    def _tlmm_cost(self, op, clock_mhz: float) -> OpCost:
        """A ternary matmul on the table-lookup engine: its cycles, and its weights in the engine's packed layout."""
        a, d = op.attrs, self.p["tlmm"]
        m, rows = a["m"] * a.get("batch", 1), float(op.bytes.get("weight", 0))
        compute = tlmm_cycles(m, a["k"], a["n"], d) / self.hz(self.dsp, clock_mhz)
        moved = self._offchip(op) - rows + load_bytes(a["k"], a["n"], d)
        memory = moved / (self.bw * self.eff_bw)
        over = self.p["op_overhead_us"] * 1e-6
        if not self.p["serial_weight_load"]:
            return self.make(op, compute, memory, over, moved)
        return OpCost(time_s=compute + memory + over, compute_s=compute, memory_s=memory, overhead_s=over,
                      flops=float(op.flops), bytes=moved, bound="compute" if compute >= memory else "memory")


def dataflow_time(costs, overlap) -> float:
    """Time of ops streamed through an FPGA's engines as one segment: with `overlap` True the next op's weight
    and KV streams run during this op's compute (double buffers), so the segment takes the larger of all
    compute and all off-chip traffic; False adds them; "serial" runs op after op, each its own time (no op's
    traffic hides behind another's compute). Each op's issue overhead adds."""
    if overlap == "serial":
        return sum(c.time_s for c in costs)
    compute = sum(c.compute_s for c in costs)
    memory = sum(c.memory_s for c in costs)
    body = max(compute, memory) if overlap else compute + memory
    return body + sum(c.overhead_s for c in costs)
