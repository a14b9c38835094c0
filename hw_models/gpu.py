"""GPU cost model: roofline with calibrated efficiency.

- GEMMs: the best of a few CTA tile shapes, each with wave quantization over the SMs and a
  relative efficiency (smaller tiles reuse less), times an attained fraction of the clock-scaled
  peak; the memory side is the operands over an achievable bandwidth. Time = max(compute, memory)
  + a per-kernel floor.
- Attention: FlashAttention-style prefill does the causal half of the FLOPs at its own efficiency;
  decode streams the KV cache at the achievable bandwidth.
- Everything else runs as the eager kernels the tracer recorded (profile "eager"), each bytes over
  bandwidth plus the floor, or as one fused kernel per op (profile "fused").
The clock is an input: the power model lowers it when a step would exceed the power cap.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from workloads.errors import HwsimError
from workloads.graph import FFMA_FP32, WEIGHT_ONLY, gemm_dtype

from .eager_access import _set_or, eager_kernel_eff, kernel_energy_rel  # noqa: F401 - re-exported
from .opcost import OpCost
from .stacks import group_reread, kv8_conversion_bound

from .gemm_tiles import SMALL_M_TILES, TILES  # noqa: F401  (TILES: also the grouped GEMM's, hw_models/moe.py)
_TILE_M, _TILE_N, _TILE_REL = (np.array(x, dtype=float) for x in zip(*(TILES + SMALL_M_TILES)))

DEFAULTS = {
    "mm_eff": 0.92,              # attained fraction of the clock-scaled tensor peak on large GEMMs
    "mm_min_tile_m": 64,         # fewest rows of a GEMM tile (SMALL_M_TILES below 64 only where a preset sets it)
    "mm_even_waves": 0,          # 1: a tensor-core GEMM's tiles spread evenly over the SMs (stream-K style: no
                                 # partial last wave, no idle SMs below one wave); 0: whole waves after split-K
    "mm_eff_fp8": 0.84,
    "mm_epilogue_fp8": 0,        # > 0: an 8-bit tensor-core GEMM stores this share of its bf16 output after its K loop
                                 # (not hidden under the math; gemm_epilogue_s), fitted with mm_eff_fp8; 0: none
    "ffma_eff": 0,               # > 0: attained fraction of the CUDA-core fp32 peak by FFMA GEMMs (cuBLAS SGEMM without
                                 # TF32); 0: mm_eff. Either way FFMA GEMMs take no tensor-core tile penalty
                                 # (gemm_plan) and store their output after the K loop (gemm_epilogue_s)
    "fp8_row_eff": 0,            # > 0: an FP8 GEMM with per-row scales (attrs scaling "row") priced as the rowwise
    "fp8_row_sm_gbps": 0,        # kernel measured here (row_scaled_gemm: no split-K, its own rate, operands
    "fp8_row_tile_us": 0,        # streamed per SM, a cost per wave); 0: the split-K GEMM model at mm_eff_fp8
    "sdpa_tile_eff": 0,          # > 0: torch SDPA's flash decode (sdpa_flash_decode: split-KV heuristic, padded query
    "sdpa_bw_eff": 0,            # tiles, combine kernel) at these numbers; 0: bytes over decode_bw_eff or bw_eff
    "sdpa_combine_gbps": 10.0,   # (only benchmarks/gpu/fit_stack.py's SDPA rows use it: no serving stack runs it)
    "bw_eff": 0.87,              # attained fraction of datasheet DRAM bandwidth on large streams
    "kernel_floor_us": 2.0,      # per kernel inside a captured step (launch + tail)
    "mm_floor_us": 4.0,          # extra fixed cost of a GEMM kernel (prologue/epilogue, split-K reduce)
    "attn_eff": 0.50,            # prefill flash attention: fraction of tensor peak on the causal FLOPs
    "attn_floor_us": 6.0,
    "attn_causal_tile": 0,       # > 0: causal self-attention priced per query tile (causal_tile_work), at its own
                                 # attn_causal_eff and attn_causal_floor_us; 0: the causal half at attn_eff
    "attn_causal_eff": 0.59,     # (H200 SDPA, fit_stack.py; used only where attn_causal_tile > 0)
    "attn_causal_floor_us": 11.0,
    "attn_causal_wave_us": 0,    # the causal-tile model's cost per wave of its query-tile CTAs over the SMs (prologue,
                                 # epilogue: causal_waves); 0: none (as every preset was fitted before it)
    "attn_causal_tail": 0,       # the causal-tile model's tail: this share of its longest CTA (the last query tile,
                                 # every key tile) beyond the SMs' share of the work, and never less than that CTA
                                 # (causal_tail_s); 0: the work over the SMs alone (as presets fitted before it)
    "attn_rel_d64": 1.0,         # attention's attained rate at head size 64, 96, 256 relative to 128 (a ratio,
    "attn_rel_d96": 1.0,         # not an efficiency: above 1 where a larger head runs faster; head_dim_factor);
    "attn_rel_d256": 1.0,        # 1.0: one rate whatever the head size (devices without a head-size fit)
    "attn_mask_rel": 0,          # > 0: a prefill attention kernel handed an explicit mask (attrs mask: HF's sliding
                                 # window once the keys reach it; an eager window of hwsim's own op: window_masked)
                                 # attains this share of the unmasked kernel's rate
                                 # (it loads and applies a bias tile per block); 0: the same rate (mask_factor)
    "attn_mask_rel_d256": 1.0,   # the masked kernel's share at head size 256 over its share at <= 128 (linear between)
    "small_bw_bytes": 4e6,       # transfers below ~this size reach less of the bandwidth
    "eager_bw_eff": 0.87,        # eager elementwise/reduction kernels: fraction of datasheet bandwidth
    "strided_bw_eff": 0.54,      # eager kernels on gapped operands (halves of a fused projection); H100 fit
    "vec_bw_eff": 0,             # > 0: eager kernels torch vectorizes (Kernel.strided 0: contiguous operands of one
                                 # layout and dtype) at this fraction; 0: eager_bw_eff (eager_kernel_eff)
    "nonvec_bw_eff": 0,          # > 0: gap-free eager kernels torch does not vectorize (Kernel.strided 2: broadcast
                                 # operand, mixed layouts, widening cast); 0: eager_bw_eff
    "cat_bw_eff": 0,             # > 0: a cat of non-contiguous parts (Kernel.strided 1 or 2); 0: its class's fraction
    "index_add_gbps": 0,         # > 0: index_add_ (torch's indexFuncLargeIndex: an atomic add per element into the
                                 # indexed rows) at this many GB/s of its bytes, the atomics' rate, not the DRAM's;
                                 # 0: its class's fraction (hwsim's MoE modules and hw_models/moe.py's layer
                                 # add their experts' rows back with it)
    "mask_bw_eff": 0,            # > 0: masked_fill (a bool mask beside the values: torch's non-vectorized kernel of
                                 # two dtypes, HF's MoE experts zero their padding with it); 0: its class's fraction
    "energy_kernel_bytes": 0,    # share (0-1) of an eager op's kernels' extra bytes (fp32 intermediates written and
                                 # re-read) counted in its bytes (OpCost.bytes, charged e_byte by the power model);
                                 # 0: its operands' bytes, as every preset was fitted (H100 trial with 1:
                                 # docs/stack-accuracy.md "Power at the cap over long steps")
    "e_nonvec_rel": 0,           # > 0: energy per byte of an eager kernel torch does not vectorize (Kernel.strided
                                 # 1 or 2) over a vectorized one's (e_byte_pj); 0: the same (kernel_energy_rel)
    "e_cat_rel": 0,              # > 0: the same for a cat of non-contiguous parts; 0: e_nonvec_rel's
    "eager_l2_rel": 0,           # > 0: an eager op whose operands fit in eager_l2_bytes (its fp32 intermediates,
    "eager_l2_bytes": 0,         # about that size, stay in L2) takes this share off the memory time of its
                                 # kernels' extra bytes (eager_l2_share); 0: every kernel byte streams from DRAM
}

_MM_DTYPE = {"bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "int8": "int8", "fp32": "tf32", "ternary": "int8",
             "bf16" + WEIGHT_ONLY: "bf16", "fp16" + WEIGHT_ONLY: "fp16"}
# the fewest rows a weight-only quantized GEMM (w4a16, w8a16) is padded to: mixed-input kernels put the tokens on
# the MMA's narrow side (Marlin: m16n8k16 MMAs, 16-token blocks; Machete on Hopper: the weight as wgmma's A operand,
# tokens on its N side of 8-256) and stay weight-streaming with close to the ideal 4x speedup over fp16 up to
# batch 16-32 (MARLIN, Frantar et al., PPoPP 2025, arXiv 2408.11743), where 64-row bf16 tiles would make a batch-1
# int4 GEMM compute-bound
WEIGHT_ONLY_MIN_TILE_M = 16


@dataclass
class GPUModel:
    device: object
    profile: str = "eager"
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        cal = self.device.calibration.params if self.device.calibration else {}
        self.p = {**DEFAULTS, **cal, **self.params}
        self.tensor = self.device.engine_for("matrix")
        self.vector = self.device.engine_for("vector")
        self.bw = self.device.main_memory.bandwidth_gbps * 1e9
        # index_add_'s atomic rate is a rate of its own (L2 atomics), not a share of DRAM bandwidth: kept absolute
        # when a what-if changes the bandwidth
        gbps = self.p["index_add_gbps"]
        self.p["index_add_eff"] = min(1.0, gbps * 1e9 / self.bw) if gbps else 0.0
        self.sms = self.tensor.units
        from .stacks import stack
        self.stack = stack(self.profile)
        self.profile = self.stack.kernels            # kernel granularity: eager (as traced) or fused

    @classmethod
    def stacked(cls, models, index) -> "GPUModel":
        """One model for many points on several GPUs (sweeps over device overrides): every device number (each
        calibration parameter, bandwidth, SM count, tensor rates) an array [points, 1] gathered by `index` from
        `models` (GPUModels of one stack whose calibrations have the same keys), so the formulas broadcast over
        points. Rates of a dtype some model lacks are 0 (the error of an unsupported dtype names the first)."""
        index = np.asarray(index)
        first = models[0]
        out = cls.__new__(cls)
        out.device, out.params, out.stack, out.profile = first.device, first.params, first.stack, first.profile

        def col(values):
            return np.asarray(values, dtype=float)[index][:, None]
        out.p = {k: col([m.p[k] for m in models]) for k in first.p}
        out.bw = col([m.bw for m in models])
        out.sms = col([m.sms for m in models])
        dtypes = set().union(*(m.tensor.ops_per_unit_per_clock for m in models))
        out.tensor = _StackedEngine(col([m.tensor.units for m in models]), {
            dt: col([m.tensor.ops_per_unit_per_clock.get(dt, 0.0) for m in models]) for dt in dtypes})
        return out

    # --- building blocks --------------------------------------------------------------------
    def _stream(self, nbytes: float, eff: float = None) -> float:
        """Seconds to move nbytes: achievable bandwidth, reached only by large enough transfers."""
        bw = self.bw * (self.p["bw_eff"] if eff is None else eff)
        return nbytes / bw * (1.0 + self.p["small_bw_bytes"] / (nbytes + self.p["small_bw_bytes"]) * 0.5)

    def _peak(self, dtype: str, clock_mhz: float) -> float:
        dt = _MM_DTYPE.get(dtype, dtype)
        rate = self.tensor.peak(dt, clock_mhz)
        if not (rate if isinstance(rate, float) else np.all(rate)):
            supported = ", ".join(sorted(self.tensor.ops_per_unit_per_clock))
            raise HwsimError(f"{self.device.name} has no tensor-core support for {dtype}; pick a --dtype/--quant "
                             f"it runs ({supported})")
        return rate

    def _ffma_peak(self, clock_mhz: float) -> float:
        """FP32 GEMMs without TF32 (torch's default, `torch.backends.cuda.matmul.allow_tf32 = False`) run on the CUDA
        cores (cuBLAS `..._ffma` kernels): the vector engine's fp32 rate."""
        rate = self.vector.peak("fp32", clock_mhz) if self.vector is not None else 0.0
        if not rate:
            raise HwsimError(f"{self.device.name} gives no fp32 CUDA-core rate (vector engine fp32) for an fp32 GEMM "
                             f"without TF32")
        return rate

    def gemm_compute_s(self, m: int, n: int, k: int, batch: int, dtype: str, clock_mhz: float) -> float:
        """`dtype` as `gemm_dtype` gives it (FFMA_FP32: an fp32 GEMM on the CUDA cores)."""
        return self.gemm_time(m, self.gemm_plan(n, k, batch, dtype, clock_mhz, np.ndim(m)))

    def gemm_epilogue_s(self, m, n, batch, dtype: str):
        """Seconds an FFMA GEMM (`dtype` FFMA_FP32) spends storing its fp32 output after its K loop, added to its
        compute: cuBLAS's CUDA-core kernels (`sm80_xmma_gemm_f32f32_..._ffma`, multistage, not persistent) store a
        CTA's C tile only once its K loop is done, and the CTAs of a wave reach that point together, so the write
        does not overlap the math. Where K is short the write is most of the kernel: SDPA's math path computes
        Q K^T (K = the head size) into an fp32 score matrix. 8-bit tensor-core GEMMs (torch._scaled_mm, measured
        here: benchmarks/gpu/data/*-stack/gemm.csv) store `mm_epilogue_fp8` of their bf16 output the same way: their
        K loop is half the bf16 one's time per byte of output, and at K = 1024 (llama70b-tp8's o projection) the
        measured kernel takes the math plus the whole write (model without it: 27-30% fast at m >= 1024); fitted
        with mm_eff_fp8 on the calibration shapes (H100 and H200: 1.0, the whole write). bf16 tensor-core GEMMs: 0
        (their fit.py efficiency carries what overlap they lack). m, n, batch: numbers or arrays."""
        if dtype == FFMA_FP32:
            return self._stream(np.multiply(np.multiply(m, n), batch) * 4.0)
        rel = self.p.get("mm_epilogue_fp8", 0) if dtype in ("fp8", "int8", "ternary") else 0
        if not np.any(rel):
            return 0.0
        return rel * self._stream(np.multiply(np.multiply(m, n), batch) * 2.0)

    def gemm_plan(self, n, k, batch, dtype: str, clock_mhz, ndim: int = 0) -> tuple:
        """What a GEMM's compute time needs besides m, for m of `ndim` axes (`gemm_time(m, plan)`): a caller
        costing many m at the same n, k, batch builds it once. numpy ops, so that m, n, k (and the device's
        numbers, for a stacked model) may be arrays (one entry per case, for sweeps); the tile shapes go on a
        first axis (the minimum over them is then elementwise). Tiles of fewer rows than the device's
        `mm_min_tile_m` are not used."""
        ffma = dtype == FFMA_FP32
        eff = self.p["mm_eff_fp8"] if dtype in ("fp8", "int8", "ternary") else self.p["mm_eff"]
        if ffma:
            # an FFMA GEMM (cuBLAS's CUDA-core SGEMM): the CUDA-core rate at the device's measured FFMA fraction
            # (ffma_eff; H100 0.788 on fp32 GEMMs of 16 shapes, benchmarks/gpu/fit_ffma_mask.py), else mm_eff. Its
            # tiles (128x128x8, 128x64x8 in a profile) keep each thread's 8x8 register block whatever the tile, so
            # they take no tensor-core tile penalty, only the padding of the last tiles
            eff = _set_or(self.p.get("ffma_eff", 0), eff)
        peak = (self._ffma_peak(clock_mhz) if ffma else self._peak(dtype, clock_mhz)) * eff
        min_m = self.p["mm_min_tile_m"]
        if dtype.endswith(WEIGHT_ONLY):
            min_m = np.minimum(min_m, WEIGHT_ONLY_MIN_TILE_M)
        n, k, batch, sms, peak, min_m, even = (np.asarray(x, dtype=float) for x in
                                               (n, k, batch, self.sms, peak, min_m,
                                                0.0 if ffma else self.p.get("mm_even_waves", 0)))
        tail = (1,) * max(ndim, n.ndim, k.ndim, batch.ndim, sms.ndim, peak.ndim, min_m.ndim)
        tm, tn, rel = (t.reshape(-1, *tail) for t in (_TILE_M, _TILE_N, np.ones_like(_TILE_REL) if ffma else _TILE_REL))
        # whole numbers below 2**53: these products are exact, so grouping them does not change the result
        even = bool(even) if even.ndim == 0 else even > 0        # a plain bool for one device (the fast path)
        return tm, np.ceil(n / tn) * batch, sms, sms * tm * tn, k, peak * rel, tm >= min_m, even

    @staticmethod
    def gemm_time(m, plan):
        """Seconds of the GEMMs of m rows under `plan` (gemm_plan). Whole waves of tiles over the SMs, fewer tiles
        than SMs split along K; or, where the plan's `mm_even_waves` is set, the tiles' work spread evenly over the
        SMs (stream-K style: no partial last wave; the H200's measured bf16 GEMMs of 80 output tiles take about
        80/132 of a full wave's time, not a whole wave; benchmarks/gpu/fit_stack.py)."""
        tm, n_tiles, sms, span, k, rate, allowed, even = plan
        tiles = np.ceil(np.asarray(m, dtype=float) / tm) * n_tiles
        # fewer tiles than SMs: split-K cuts the K loop into `split` parts to occupy the idle SMs
        split = np.maximum(1, np.floor(sms / tiles))
        waves = tiles * split / sms
        if even is False:
            waves = np.ceil(waves)
        elif even is not True:                    # per point (a stacked model of several devices)
            waves = np.where(even, waves, np.ceil(waves))
        padded = waves * span * k / split * 2
        return np.where(allowed, padded / rate, np.inf).min(axis=0)

    def energy_flops(self, op) -> float:
        """FLOPs weighted by tensor-core work: an 8-bit FLOP costs `e_fp8_rel` of a bf16 one (fitted from NVML
        energy where measured, benchmarks/gpu/fit_power.py; else the ratio of the per-clock rates, about half).
        Attention counts the FLOPs its kernel executes, as its time does (`attention_work`: the causal half of a
        causal prefill, not the full square the op counts), each at `e_attn_rel` of a bf16 GEMM FLOP (fitted from
        NVML energy where measured, benchmarks/gpu/fit_power.py: the softmax and rescaling beside the tensor work;
        else 1)."""
        if op.kind == "attention":
            work = self.attention_work(op.attrs)[0] * self.p.get("e_attn_rel", 1.0)
            return op.flops * work if np.ndim(work) else op.flops * float(work)
        if op.kind == "matmul":
            dt = _MM_DTYPE.get(op.dtype, op.dtype)
            per = self.tensor.ops_per_unit_per_clock
            if dt in ("fp8", "int8") and self.p.get("e_fp8_rel"):
                return op.flops * self.p["e_fp8_rel"]
            if dt in per and "bf16" in per:
                return op.flops * per["bf16"] / per[dt]
        return op.flops + 0.0

    def _grouped(self, op, nbytes, clock_mhz):
        """A grouped GEMM (hw_models/moe.py grouped_parts): a routed expert's GEMM under a grouped MoE stack, its
        share of its layer's grouped GEMM (`group_experts` marks it); or a traced `torch._grouped_mm` (HF's experts:
        attrs m rows per expert with rows, `batch` such experts, the expected ones under uniform routing), the whole
        kernel, its bytes as traced."""
        from .moe import grouped_parts, operand_bytes
        a = op.attrs
        dtype = gemm_dtype(op)
        dtype = "bf16" if dtype == FFMA_FP32 else dtype
        w_bytes, a_bytes = operand_bytes(a, dtype)
        if "grouped_classes" in a:
            parts = grouped_parts(self, a["grouped_classes"], a["grouped_n"], a["k"], clock_mhz, dtype=dtype,
                                  w_bytes=w_bytes, a_bytes=a_bytes)
            share = a["grouped_share"]
        else:
            parts = grouped_parts(self, [(a["m"], a.get("batch", 1))], a["n"], a["k"], clock_mhz, nbytes, dtype,
                                  w_bytes, a_bytes)
            share = 1.0
        compute, memory, over = (x * share for x in parts)
        return self._make(op, compute, memory, over, nbytes, 1)

    # --- ops ----------------------------------------------------------------------------------
    def cost(self, op, clock_mhz: float) -> OpCost:
        """The op's device cost. Its numbers may be numpy arrays (one entry per case): costs come back as arrays.
        Host-issued stacks (eager-launch, hf-generate) add the host's time in the two-queue timing
        (sim/hostqueue.py), not here."""
        return self._device_cost(op, clock_mhz)

    def _device_cost(self, op, clock_mhz: float) -> OpCost:
        nbytes = sum(op.bytes.values()) + 0.0
        floor = self.p["kernel_floor_us"] * 1e-6
        if op.kind == "matmul" and "m" in op.attrs:
            a = op.attrs
            if "grouped_classes" in a and self.stack.moe_kernel == "grouped" or a.get("grouped"):
                return self._grouped(op, nbytes, clock_mhz)
            if a.get("scaling") == "row" and np.any(self.p["fp8_row_eff"]):
                compute, memory, over = row_scaled_gemm(self, a["m"], a["n"], a["k"], a.get("batch", 1), clock_mhz,
                                                        nbytes)
                return self._make(op, compute, memory, over, nbytes, 1)
            dtype = gemm_dtype(op)
            compute = self.gemm_compute_s(a["m"], a["n"], a["k"], a.get("batch", 1), dtype, clock_mhz) + \
                self.gemm_epilogue_s(a["m"], a["n"], a.get("batch", 1), dtype)
            memory = self._stream(nbytes)
            over = floor + self.p["mm_floor_us"] * 1e-6
            if a.get("scaling") == "row":        # FP8 with per-row scales: the scaling epilogue (measured here)
                over = over + self.p.get("fp8_row_us", 0.0) * 1e-6
            return self._make(op, compute, memory, over, nbytes, 1)
        if op.kind == "attention":
            return self._attention(op, nbytes, clock_mhz, floor)
        if self.profile == "fused":
            if "grouped_share" in op.attrs and self.stack.moe_kernel == "grouped":
                floor = floor * op.attrs["grouped_share"]
            return self._make(op, 0.0, self._stream(nbytes), floor, nbytes, 1)
        kernels = op.kernels or ()
        if "grouped_share" in op.attrs and self.stack.moe_kernel == "grouped":
            # a routed expert's elementwise op in a grouped MoE layer: one kernel per role over all the layer's
            # rows, so its floors once per layer (hw_models/moe.py group_experts)
            floor = floor * op.attrs["grouped_share"]
        memory = sum(self._stream(sum(k.bytes.values()), eager_kernel_eff(self.p, int(k.strided), k.aten == "cat",
                                                                                    k.aten.startswith("masked_fill"),
                                                                                    k.aten.startswith("index_add")))
                     for k in kernels)
        if kernels and np.any(self.p["eager_l2_rel"]):
            memory = memory * (1.0 - eager_l2_share(self.p, nbytes, sum(sum(k.bytes.values()) for k in kernels)))
        # energy_kernel_bytes moves the op's bytes (what the power model charges e_byte for) toward what its kernels
        # move (what its memory time streams): unfused kernels write and re-read fp32 intermediates, ~2x the op's
        # operands for an eager RMSNorm; an op with no traced kernels keeps its operands' bytes
        moved = nbytes
        if kernels and np.any(self.p["energy_kernel_bytes"]):
            moved = nbytes + self.p["energy_kernel_bytes"] * (sum(sum(k.bytes.values()) for k in kernels) - nbytes)
        if kernels and (np.any(self.p["e_nonvec_rel"]) or np.any(self.p["e_cat_rel"])):
            # non-vectorized kernels draw more energy per byte (kernel_energy_rel): their extra, as bytes at e_byte
            moved = moved + sum((kernel_energy_rel(self.p, int(k.strided), k.aten == "cat") - 1.0)
                                * sum(k.bytes.values()) for k in kernels)
        return self._make(op, 0.0, memory, floor * max(len(kernels), 1), moved, max(len(kernels), 1))

    def _attention(self, op, nbytes, clock_mhz, floor):
        a = op.attrs
        decode = np.logical_and(np.less_equal(a["sq"], 1), np.greater(op.reads.get("kv_cache", 0), 0))
        if np.any(decode) and self.profile == "fused":
            # a serving stack's decode kernel: the KV cache streamed at that kernel's attained bandwidth; a kernel
            # without head-group sharing (TensorRT-LLM's masked MHA before XQA) reads each KV head once per query
            # head of its group, the repeats partly served by L2 (the stack's kv_group_reread)
            kv = op.reads.get("kv_cache", 0) + 0.0
            group = 1.0 if self.stack.kv_group_sharing else \
                1.0 + group_reread(self.stack, a.get("kv_bits", 16)) * (np.asarray(a["hq"], dtype=float) / a["hkv"] - 1.0)
            paged = self.p.get("paged_bw_eff") if self.stack.decode_attention == "paged" else None
            if paged and a.get("kv_bits", 16) <= 8 and self.stack.kv8_dequant_bound and self.p.get("paged_fp8_bw_eff"):
                # an 8-bit KV cache read by the split-K kernel measured here (benchmarks/gpu/measure_stack.py), which
                # dequantizes in registers and reads FP8 KV at well under half the bytes per second of bf16 KV; the
                # serving stacks' own FP8-KV kernels are not measured here and keep their bf16 rate (stacks.py)
                paged = self.p["paged_fp8_bw_eff"]
            eff = self.stack.decode_attn_bw_eff or paged or self.p.get("decode_bw_eff") or self.p["bw_eff"]
            moved = nbytes + kv * (group - 1.0)
            memory = self._stream(moved, eff)
            over = floor + self.p.get("decode_attn_floor_us", self.p["attn_floor_us"]) * 1e-6
            tiles = 0.0
            if self.stack.splitk_query_tiles and np.any(self.p.get("paged_tile_eff", 0)):
                # the split-K kernel's query tiles (measured here): their own time, the kernel's bound where it
                # exceeds the KV stream (32-row tiles: group 32)
                tiles = splitk_tile_s(self, op.flops, a["hq"], a["hkv"], a["sk"], a.get("d", 128),
                                      a.get("dv", a.get("d", 128)), clock_mhz)
            if kv8_conversion_bound(self.stack, a.get("kv_bits", 16) <= 8):
                tiles = np.maximum(tiles, kv8_convert_s(self, kv, a["hq"], a["hkv"], clock_mhz))
            if np.all(decode):
                return self._make(op, tiles, memory, over, nbytes, 1)
            other = self._attention_prefill(op, nbytes, clock_mhz, floor)
            return self._make(op, np.where(decode, tiles, other.compute_s), np.where(decode, memory, other.memory_s),
                              np.where(decode, over, other.overhead_s), nbytes, 1)
        return self._attention_prefill(op, nbytes, clock_mhz, floor)

    def attention_work(self, a):
        """(the fraction of an attention op's counted FLOPs its kernel executes, where the causal-tile model prices
        it or None): the causal half of a square causal op, a fused kernel's band of a sliding window (eager SDPA
        computes every block of a masked window), the causal tiles where the device sets attn_causal_tile.
        `a`: the op's attrs (numbers or arrays). The time (`_attention_prefill`) and the energy (`energy_flops`)
        take the same fraction."""
        square = np.logical_and(np.equal(a["sq"], a["sk"]), np.greater(a["sq"], 1))
        causal_work = np.where(np.logical_and(bool(a.get("causal")), square), 0.5, 1.0)
        if np.any(a.get("window", 0)):
            # eager SDPA takes a window as an explicit mask and computes every block (memory-efficient
            # kernel); a fused window-aware kernel skips the blocks outside the band
            banded = banded_window(a["window"], a["sk"])
            narrowed = 1.0 if self.profile == "eager" else np.minimum(causal_work, a["window"] / a["sk"])
            causal_work = np.where(banded, narrowed, causal_work)
        tile = self.p.get("attn_causal_tile", 0)
        tiled = None
        if np.any(tile):
            # a flash kernel's causal tiles (measured here): each query tile computes its diagonal key tile in full
            tiled = tiled_causal(a, square, tile)
            causal_work = np.where(tiled, causal_tile_work(a["sq"], a["sk"], tile), causal_work)
        return causal_work, tiled

    def window_masked(self, a):
        """Whether an eager attention op's kernel gets its sliding window as an explicit mask (a window narrower than
        the keys; a fused stack's window-aware kernel needs none): a bool, or an array of them for array attrs."""
        if self.profile != "eager" or not np.any(a.get("window", 0)) or a.get("mask") is not None:
            return False           # a traced SDPA call (HF) records whether it got a mask: that decides
        return banded_window(a["window"], a["sk"])

    def _attention_prefill(self, op, nbytes, clock_mhz, floor):
        a = op.attrs
        causal_work, tiled = self.attention_work(a)
        eff, floor_us = self.p["attn_eff"], self.p["attn_floor_us"]
        if tiled is not None:
            eff = np.where(tiled, self.p["attn_causal_eff"], eff)
            floor_us = np.where(tiled, self.p["attn_causal_floor_us"] + self.p["attn_causal_wave_us"]
                                * causal_waves(op.flops, a["sq"], a["sk"], a.get("d", 128), a.get("dv", a.get("d", 128)),
                                               self.p["attn_causal_tile"], self.sms), floor_us)
        # the kernel's rate at the op's head size relative to d = 128 (H100 SDPA: d = 96 takes d = 128's time), and
        # with an explicit mask: HF's SDPA calls carry it (attrs mask); an eager sliding window narrower than the
        # keys is one too (workloads/modules/attention_op.py hands SDPA the window as a mask, as HF does)
        d = a.get("d", 128)
        recorded = a.get("mask")
        masked = np.logical_or(False if recorded is None else recorded, self.window_masked(a))
        eff = eff * head_dim_factor(d, self.p) * mask_factor(masked, d, self.p)
        rate = self._peak(op.dtype if op.dtype in _MM_DTYPE else "bf16", clock_mhz) * eff
        compute = op.flops * causal_work / rate
        if tiled is not None and np.any(self.p.get("attn_causal_tail", 0)):
            longest = causal_tail_s(a["sq"], a.get("d", 128), a.get("dv", a.get("d", 128)),
                                    self.p["attn_causal_tile"], self.sms, rate)
            compute = np.where(tiled, np.maximum(compute + self.p["attn_causal_tail"] * longest, longest), compute)
        memory = self._stream(nbytes)
        return self._make(op, compute, memory, floor + floor_us * 1e-6, nbytes, 1)

    @staticmethod
    def _make(op, compute, memory, over, nbytes, kernels) -> OpCost:
        body = np.maximum(compute, memory)
        bound = np.where(over > body, "latency", np.where(compute >= memory, "compute", "memory"))
        if np.ndim(body) == 0:
            body, bound, compute = float(body), str(bound), float(compute)
        return OpCost(time_s=body + over, compute_s=compute, memory_s=memory, overhead_s=over,
                      flops=op.flops + 0.0, bytes=nbytes, bound=bound, kernels=kernels)


def rowwise_tiles(m, n, sms):
    """(CTA tiles of rows, tiles of columns, tile rows) of an FP8 GEMM with per-row scales as torch's rowwise kernel
    runs it on Hopper (the dispatch of aten/src/ATen/native/cuda/RowwiseScaledMM.cu, described, not copied): with m and
    n rounded up to 64, a shape rule picks whether the operands are swapped (the problem then runs as n x m) and a
    thread-block cluster of 2 x 1 or 1 x 2; 64 x 128 tiles where their clusters fit the SMs (sms // 2 of them), else
    128 x 128. Numbers or arrays."""
    m, n = np.asarray(m, dtype=float), np.asarray(n, dtype=float)
    M, N = np.ceil(m / 64) * 64, np.ceil(n / 64) * 64
    small = M * N <= 4096.0 * 4096.0
    odd_m, odd_n = np.mod(M, 256) > 0, np.mod(N, 256) > 0
    # (swapped, cluster of 2 rows) by the first rule that holds
    rules = [((M == 64) & (N >= 3072), False, False), ((N == 64) & (M >= 3072), True, False),
             ((M == 192) & (N >= 4096), True, False), ((N == 192) & (M >= 4096), False, False),
             (small & odd_m & ~odd_n, True, True), (small & odd_n & ~odd_m, False, True),
             (odd_m & odd_n, np.logical_xor(M <= N, M * N <= 1024.0 * 1024.0), True),
             ((M >= 4096) & (N >= 4096), M < N, True),
             (np.logical_xor(M <= N, (M >= 2048) & (N >= 2048)), True, False)]
    swapped, rows2 = np.full(np.shape(M), True), np.full(np.shape(M), True)     # the last case: swapped, 2 x 1
    for cond, sw, r2 in reversed(rules):
        swapped, rows2 = np.where(cond, sw, swapped), np.where(cond, r2, rows2)
    a, b = np.where(swapped, n, m), np.where(swapped, m, n)
    cx, cy = np.where(rows2, 2.0, 1.0), np.where(rows2, 1.0, 2.0)
    fits = np.ceil(a / (64 * cx)) * np.ceil(b / (128 * cy)) <= np.floor(np.asarray(sms, dtype=float) / 2)
    tm = np.where(fits, 64.0, 128.0)
    return np.ceil(a / tm), np.ceil(b / 128), tm


def row_scaled_gemm(model, m, n, k, batch, clock_mhz, nbytes):
    """(compute, memory, overhead) seconds of an FP8 GEMM with per-row (per-token x per-channel) scales as torch's
    rowwise `_scaled_mm` kernel runs it (a CUTLASS kernel with the scales in its epilogue; measured here,
    benchmarks/gpu/data/*-stack/gemm.csv fp8_row): no split-K, so a GEMM of few output tiles runs on few SMs (at one
    token: 1.5-2.3x the per-tensor kernel's time on the same shape where the per-tensor one splits K, about the same
    where the output has many tiles). Its CTA tiles (rowwise_tiles: the kernel's own choice) run in waves over the
    SMs: compute is the waves at `fp8_row_eff` of the clock-scaled FP8 peak; a tile streams its k-deep operand slabs
    (1 byte an element) at most `fp8_row_sm_gbps` per SM, the whole at most the DRAM rate (memory: the larger);
    overhead `fp8_row_tile_us` per wave (the epilogue: row scales, bf16 out) and the kernel's floors plus
    `fp8_row_us`. Numbers or arrays (broadcast), as grouped_parts (hw_models/moe.py)."""
    p = model.p
    peak = model._peak("fp8", clock_mhz) * p["fp8_row_eff"]
    sm_bw = np.asarray(p["fp8_row_sm_gbps"], dtype=float) * 1e9
    ta, tb, tm = rowwise_tiles(m, n, model.sms)
    waves = np.ceil(ta * tb * np.asarray(batch, dtype=float) / model.sms)
    compute = waves * model.sms * tm * 128 * np.asarray(k, dtype=float) * 2 / peak
    stream = waves * (tm + 128) * np.asarray(k, dtype=float) / np.where(np.greater(sm_bw, 0), sm_bw, 1.0) \
        * np.greater(sm_bw, 0)
    memory = np.maximum(stream, model._stream(nbytes))
    over = waves * p["fp8_row_tile_us"] * 1e-6 + (p["kernel_floor_us"] + p["mm_floor_us"] + p.get("fp8_row_us", 0.0)) * 1e-6
    if all(np.ndim(x) == 0 for x in (compute, memory, over)):
        return float(compute), float(memory), float(over)
    return compute, memory, over


def kv8_convert_s(model, kv_bytes, hq, hkv, clock_mhz):
    """Conversion time of an 8-bit KV cache in a decode kernel without head-group sharing (numbers or arrays): each
    query head's thread block converts its group's FP8 KV to 16 bits itself, so the GPU converts the KV `hq / hkv`
    times, at the stack's `kv8_convert_b_clk_sm` bytes per SM per clock -- a bound set by the SMs and the clock, the
    same on an H100 and an H200, where DRAM bandwidth differs by 1.43x."""
    rate = model.sms * np.asarray(clock_mhz, dtype=float) * 1e6 * model.stack.kv8_convert_b_clk_sm
    out = np.asarray(kv_bytes, dtype=float) * np.asarray(hq, dtype=float) / np.asarray(hkv, dtype=float) / rate
    return float(out) if np.ndim(out) == 0 else out


def splitk_tile_s(model, flops, hq, hkv, sk, d, dv, clock_mhz):
    """Query-tile time of the paged split-K Triton decode kernel measured here (benchmarks/gpu/measure_stack.py
    PagedDecode; numbers or arrays). A CTA per (sequence, KV head, split) runs its KV group's query heads as one
    tile of rows = the group rounded up to a power of two, at least 16 (the mma.sync M size), over its split's
    key blocks (64 keys, 32 above d = 128); splits as the kernel's heuristic: enough CTAs to fill twice the SMs,
    no split under 256 keys, at most 64. Two bounds, the larger: the padded tiles' FLOPs (every row, masked ones
    too) at `paged_tile_eff` of the bf16 tensor peak (the whole GPU's rate on these small tiles), and one CTA's
    key blocks x rows x `paged_row_ns` (a CTA's loop cannot go faster however few CTAs run). The 32-row tiles
    (group 32) run the kernel at 255 registers with spills; at groups <= 16 both bounds sit under the KV stream."""
    p = model.p
    hq, hkv, sk = (np.asarray(x, dtype=float) for x in (hq, hkv, sk))
    group = np.ceil(hq / hkv)
    rows = np.maximum(16.0, 2.0 ** np.ceil(np.log2(np.maximum(group, 1.0))))
    b = np.asarray(flops, dtype=float) / (2.0 * hq * np.maximum(sk, 1.0) * (d + dv))
    block = np.where(np.asarray(d) <= 128, 64.0, 32.0)
    want = np.ceil(2.0 * model.sms / np.maximum(b * hkv, 1.0))
    splits = np.maximum(1.0, np.minimum(np.minimum(want, np.floor(sk / 256.0)), 64.0))
    split_len = np.ceil(np.ceil(sk / splits) / block) * block
    blocks = np.ceil(np.minimum(split_len, sk) / block)
    padded = np.asarray(flops, dtype=float) * hkv * rows / hq
    rate = model._peak("bf16", clock_mhz) * p["paged_tile_eff"]
    out = np.maximum(padded / rate, blocks * rows * p.get("paged_row_ns", 0.0) * 1e-9)
    return float(out) if np.ndim(out) == 0 else out


def fa2_num_splits(bhm, slots, n_blocks, max_splits=128):
    """FlashAttention-2's split-KV count (flash_api.cpp num_splits_heuristic, as torch's copy of FA2 calls it from
    set_params_splitkv with twice the SM count as `slots`; described, not copied): one split where the
    (sequence, head, query block) CTAs fill 80% of the slots; else the fewest splits whose wave efficiency
    (CTAs / slots over its ceiling) reaches 85% of the best, skipping split counts that give the same key blocks
    per split as one fewer."""
    if bhm >= 0.8 * slots:
        return 1
    max_splits = min(max_splits, slots, n_blocks)
    effs, best = [], 0.0
    for n in range(1, max_splits + 1):
        if n > 1 and -(-n_blocks // n) == -(-n_blocks // (n - 1)):
            effs.append(0.0)
            continue
        waves = bhm * n / slots
        effs.append(waves / np.ceil(waves))
        best = max(best, effs[-1])
    for n, e in enumerate(effs, 1):
        if e >= 0.85 * best:
            return n
    return 1


def sdpa_flash_decode(model, b, hq, hkv, ctx, d, clock_mhz):
    """(compute, memory, overhead) seconds of one decode step's attention (one query per sequence, a contiguous
    bf16 KV cache) under torch SDPA's flash backend (FlashAttention-2 as torch ships it): the backend
    benchmarks/gpu/measure_stack.py's `sdpa_flash` rows force, which no serving stack runs. Its kernels:
      - GQA: the group's query heads become the query rows of one KV head (seqlenq_ngroups_swapped);
      - split-KV: `fa2_num_splits` over b x heads x query blocks of 64 with twice the SMs as slots, key blocks of
        128 (d <= 128); split, the split kernel's CTAs take 64-row query tiles and ceil(blocks / splits) key blocks,
        then a combine kernel reads every split's fp32 partial output, 4 query rows per CTA, at `sdpa_combine_gbps`
        per CTA (its one CTA per 4 rows is what costs at long contexts and few sequences);
      - unsplit (enough CTAs), the forward kernel's 128-row query tiles (d <= 128; 64 above): a decode's group of
        1-32 queries pads to a whole tile, so the tile's QK^T and PV at `sdpa_tile_eff` of the clock-scaled bf16
        peak, not the KV bytes, bound it (about 2.7 TB/s of KV on both the H100 and the H200).
    Each CTA's keys stream at its SM's share of DRAM x `sdpa_bw_eff` and its tile work at its SM's share of the
    peak x `sdpa_tile_eff`, in waves of CTAs over the SMs. Overhead: the kernel floor and decode_attn_floor_us,
    plus the combine kernel's floor and reads where split."""
    p = model.p
    sms = int(model.sms)
    swapped = hq > hkv
    rows, heads = (hq // hkv, hkv) if swapped else (1, hq)
    block_n = 256 if d <= 64 else (128 if d <= 128 else 64)
    n_blocks = -(-ctx // block_n)
    bhm = b * heads * -(-rows // 64)
    splits = fa2_num_splits(bhm, 2 * sms, n_blocks)
    if splits == 1:
        tile_m = 128 if d <= 128 else 64
        ctas, keys = b * heads * -(-rows // tile_m), ctx
    else:
        tile_m = 64
        ctas, keys = bhm * splits, min(ctx, -(-n_blocks // splits) * block_n)
    bw = model.bw * _set_or(p.get("sdpa_bw_eff", 0), p["bw_eff"])
    rate = model._peak("bf16", clock_mhz) * p["sdpa_tile_eff"]
    waves = -(-ctas // sms)
    memory = waves * keys * d * 2 * 2 * sms / bw
    compute = waves * 4.0 * tile_m * keys * d * sms / rate
    over = (p["kernel_floor_us"] + p.get("decode_attn_floor_us", p["attn_floor_us"])) * 1e-6
    if splits > 1:
        c_ctas = -(-(b * hq) // 4)
        c_bytes = splits * 4 * (d + 1) * 4.0
        over += p["kernel_floor_us"] * 1e-6 + (-(-c_ctas // sms)) * c_bytes / (p["sdpa_combine_gbps"] * 1e9)
    return compute, memory, over


def eager_l2_share(p, own, kernel_bytes):
    """The share of an eager op's kernel memory time that L2 serves: `eager_l2_rel` x its kernels' extra bytes
    (the unfused kernels' intermediates, written and re-read: kernel_bytes - own) over all their bytes, where the
    op's own operand bytes `own` fit in `eager_l2_bytes` (an RMSNorm's fp32 intermediate is about its bf16 operands'
    size: at 2-4M elements, 8-17 MB, it stays in the H100's 50 MB L2; at 16M, 67 MB, not); else 0. Fitted on the
    unfused RMSNorm of elementwise.csv (benchmarks/gpu/fit_eager.py). Numbers or arrays (gpu_table.py)."""
    own, kernel_bytes = np.asarray(own, dtype=float), np.asarray(kernel_bytes, dtype=float)
    fits = np.logical_and(np.less_equal(own, p["eager_l2_bytes"]), np.greater(kernel_bytes, own))
    out = np.where(fits, (kernel_bytes - own) / np.where(kernel_bytes > 0, kernel_bytes, 1.0), 0.0) * p["eager_l2_rel"]
    return float(out) if np.ndim(out) == 0 else out


def tiled_causal(a, square, tile):
    """Where the causal-tile model prices an attention op: causal self-attention (sq = sk > 1) without a window
    narrower than the keys, on a device that sets attn_causal_tile. `a`: the op's attrs (or their columns)."""
    out = np.logical_and(np.logical_and(bool(a.get("causal")), square), np.greater(tile, 0))
    window = a.get("window", 0)
    if np.any(window):
        out = np.logical_and(out, np.logical_not(np.logical_and(np.greater(window, 0), np.less(window, a["sk"]))))
    return out


def head_dim_factor(d, p):
    """A flash kernel's attained rate at head size `d` relative to d = 128, from the device's `attn_rel_d64`,
    `attn_rel_d96`, `attn_rel_d256` (1 at 128): piecewise linear in d between those sizes, the end values below 64
    and above 256. Fitted on the H100's SDPA at d = 64, 96, 256 (benchmarks/gpu/fit_stack.py): a d = 96 kernel
    takes about the time of the d = 128 one (0.75 of its rate). `d` and the parameters may be arrays."""
    points = ((64.0, p["attn_rel_d64"]), (96.0, p["attn_rel_d96"]), (128.0, 1.0), (256.0, p["attn_rel_d256"]))
    d = np.asarray(d, dtype=float)
    out = points[0][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        out = out + (np.asarray(y1, dtype=float) - y0) * np.clip((d - x0) / (x1 - x0), 0.0, 1.0)
    return out


def mask_factor(mask, d, p):
    """A prefill attention kernel's attained rate with an explicit mask (`mask`: the op's attrs mask, a bool or an
    array of them) relative to the unmasked kernel at head size `d`: the device's `attn_mask_rel` (where set, > 0;
    else 1) up to d = 128, times `attn_mask_rel_d256` at d = 256, linear between. On the H100 the level is fitted on
    the calibration architecture whose HF forwards pass SDPA a mask in every layer (phi-3-mini, d = 96: its sliding
    window of 2047 is reached at 2,048 positions; `benchmarks/gpu/hf_prefill_breakdown.py --masked-attention`), the
    head-size ratio on synthetic SDPA calls, masked against causal (`benchmarks/gpu/fit_ffma_mask.py`: 0.60-0.63 of
    the causal kernel's rate per executed FLOP at d = 64-128, 0.43 at 256). Numbers or arrays (stacked models,
    gpu_table.py)."""
    rel = _set_or(p.get("attn_mask_rel", 0), 1.0)
    big = p.get("attn_mask_rel_d256", 1.0)
    rel = rel * (1.0 + (np.asarray(big, dtype=float) - 1.0) * np.clip((np.asarray(d, dtype=float) - 128.0) / 128.0,
                                                                       0.0, 1.0))
    if np.ndim(mask) == 0 and np.ndim(rel) == 0:
        return float(rel) if mask else 1.0
    return np.where(np.asarray(mask, dtype=bool), rel, 1.0)


def banded_window(window, sk):
    """Whether a sliding window is narrower than the keys it sees (so it bands the scores, and an eager kernel gets
    it as a mask). Numbers or arrays."""
    return np.logical_and(np.greater(window, 0), np.less(window, sk))


def causal_waves(flops, sq, sk, d, dv, tile, sms):
    """Waves of a causal flash kernel's CTAs over the SMs: one CTA per (sequence, query head, query tile of `tile`),
    b x hq taken from the op's FLOPs (attention_flops: 2 b hq sq sk (d + dv)), so that the linear path's columns give
    the same count (gpu_table.py). Each wave pays a CTA's prologue and epilogue (attn_causal_wave_us; fitted on the
    stack kernels, benchmarks/gpu/fit_stack.py). Numbers or arrays."""
    t = np.where(np.greater(tile, 0), tile, 1.0)
    heads = np.rint(np.asarray(flops, dtype=float) / np.maximum(2.0 * np.multiply(sq, sk) * (np.add(d, dv)), 1.0))
    return np.ceil(heads * np.ceil(np.maximum(sq, 1) / t) / sms)


def causal_tail_s(sq, d, dv, tile, sms, rate):
    """Seconds of a causal flash kernel's longest CTA: the last query tile of `tile` rows computes every one of the
    ceil(sq / tile) key tiles, one SM at `rate` / sms (the kernel's attained rate over the whole GPU). Work spread
    over the SMs ends with this CTA's tail: a few long rows (one sequence, few heads, long prompts) leave SMs idle
    while it runs (attn_causal_tail; benchmarks/gpu/fit_stack.py fits it on SDPA's measured kernels). Numbers or
    arrays."""
    t = np.where(np.greater(tile, 0), tile, 1.0)
    n = np.ceil(np.maximum(sq, 1) / t)
    return n * 2.0 * t * t * np.add(d, dv) * sms / rate


def causal_tile_work(sq, sk, tile):
    """The fraction of the full sq x sk score matrix a causal flash kernel computes with query/key tiles of `tile`:
    query tile i of n = ceil(sq / tile) computes i + 1 key tiles, the diagonal one in full (at sq = tile the whole
    square, 2x the causal half; 1.06x it at 2048). Fitted on the H200's SDPA (benchmarks/gpu/fit_stack.py)."""
    t = np.where(np.greater(tile, 0), tile, 1.0)
    n = np.ceil(np.maximum(sq, 1) / t)
    return n * (n + 1) / 2 * t * t / np.maximum(np.multiply(sq, sk), 1)


class _StackedEngine:
    """The tensor engine of a stacked GPUModel: units and rates per point ([points, 1])."""

    def __init__(self, units, ops_per_unit_per_clock):
        self.units, self.ops_per_unit_per_clock = units, ops_per_unit_per_clock

    def peak(self, dtype: str, clock_mhz):
        per = self.ops_per_unit_per_clock.get(dtype)
        if per is None or not np.all(per > 0):
            return 0.0
        return self.units * clock_mhz * 1e6 * per
