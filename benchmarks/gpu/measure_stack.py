"""Kernels of optimized serving stacks on a real GPU (issue 12): FP8 GEMMs, paged GQA/MQA decode attention
with bf16 and FP8 KV caches, causal prefill attention, MoE layers, and sustained power at the cap.

Self-contained: torch, triton and the standard library (plus pynvml for the NVML parts), so that it runs from
any checkout. The sustained-step part needs hwsim's `workloads` package (from the checkout, or unpacked from
--workloads TAR) and is skipped without it.

Parts (each a CSV under --out; every row carries the NVML mean SM clock and power over its timing window):
  gemm.csv         bf16 torch.mm and FP8 torch._scaled_mm (per-tensor scales, per-tensor with fast
                   accumulation, per-row scales) over the projection shapes of 7B-70B models (and TP8
                   shards), M = 1..8192 tokens; weights rotate over several buffers so none runs from L2
  attn_decode.csv  one new token per sequence over a KV cache: torch SDPA (flash, enable_gqa, contiguous
                   cache) and a paged split-K ("flash-decoding") Triton kernel written here: KV cache in pages
                   [pages, page_size, kv_heads, head_dim] reached through a shuffled block table, all query
                   heads of a KV group in one tile (head-group sharing), splits over the context, a reduce
                   kernel; bf16 or FP8 (e4m3, per-tensor scale) KV; checked against a float32 reference
  attn_prefill.csv causal SDPA (flash) over batch x prompt x (query heads, KV heads); --per-graph 1,8 times each
                   shape as one call per graph replay and as 8 calls in one graph (column per_graph, seconds per call)
  moe.csv          one MoE FFN layer (router GEMM + softmax + top-k, token permutation, experts, weighted
                   un-permutation): a per-expert loop (HF style, counts known on the host) and one grouped
                   GEMM (torch._grouped_mm) per projection; routing uniform (exactly balanced), random,
                   skewed (Zipf 1.2 over experts) and identical (every token to the same top-k experts)
  router.csv       (--parts router only, not in the default list) the router of moe.csv alone (router GEMM bf16,
                   float32 softmax, top-k) on a synthetic grid: experts 8..160, top-k 1..8, tokens 1..4096, hidden
                   4096 (and 2048 at 60/64 experts, top-4/6); with the router GEMM alone and top-k alone timed too
  moegrid.csv      (--parts moegrid only, not in the default list) the per-expert loop and the grouped GEMM of
                   moe.csv (the same ops, no router) on a synthetic grid: expert FFNs (hidden, ffn) (2048, 1408),
                   (2048, 2816), (4096, 1408), (4096, 3584), (3072, 1024) x 1, 4, 16 active experts (top-1 for one,
                   top-2 otherwise) x 1..256 rows per expert, every expert the same rows; weight copies replayed in
                   turn so that no expert's weights stay in L2 between replays (weight_sets)
  w4a16.csv        (--parts w4a16 only, not in the default list) weight-only int4 GEMMs (torch's tinygemm,
                   aten._weight_int4pack_mm, group 128) beside bf16 and FP8 on the same shapes at M = 1..512
  moegrid-wide.csv (--parts moegrid-wide only, not in the default list) moegrid's grouped layer at 512-2048 rows
  (wide)           per expert (16 experts, three shapes; the loop too) and with empty groups (8-64 groups, 1-4 of
                   them with 1-64 rows; column groups), and moegrid-wide-kernels.csv: each case's device time per
                   kernel (torch.profiler, one eager call)
  power.csv        sustained runs (several seconds back to back): GEMMs of several sizes and dtypes, and
                   full prefill/decode steps of hwsim's eager modules (workloads package), NVML energy,
                   power and SM clock

Timing: CUDA-graph replays timed with CUDA events, median of >= 10 replays and >= 0.04 s, after warm-up.
usage: python3 benchmarks/gpu/measure_stack.py --out DIR [--budget 540] [--parts gemm,decode,prefill,moe,power]
       python3 benchmarks/gpu/measure_stack.py --out DIR --parts router
       python3 benchmarks/gpu/measure_stack.py --out DIR --parts moegrid
       python3 benchmarks/gpu/measure_stack.py --out DIR --parts moegrid-wide
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import traceback

import torch

T0 = time.perf_counter()
BUDGET = 540.0
LOG = None


def log(*a):
    msg = " ".join(str(x) for x in a)
    print(msg, flush=True)
    if LOG:
        LOG.write(msg + "\n")
        LOG.flush()


def left() -> float:
    return BUDGET - (time.perf_counter() - T0)


# --- NVML sampling -------------------------------------------------------------------------------------------
class Sampler(threading.Thread):
    """NVML power (W) and SM clock (MHz) every 10 ms, with timestamps, for the whole run."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples, self.stop, self.ok = [], False, False
        try:
            import pynvml as nvml
            nvml.nvmlInit()
            self.nvml, self.h = nvml, nvml.nvmlDeviceGetHandleByIndex(0)
            self.ok = True
        except Exception as exc:   # noqa: BLE001 - NVML missing: timings stay valid
            log("NVML unavailable:", exc)

    def run(self):
        while self.ok and not self.stop:
            try:
                p = self.nvml.nvmlDeviceGetPowerUsage(self.h) / 1e3
                c = self.nvml.nvmlDeviceGetClockInfo(self.h, self.nvml.NVML_CLOCK_SM)
                self.samples.append((time.perf_counter(), p, c))
            except Exception:   # noqa: BLE001
                pass
            time.sleep(0.01)

    def window(self, t0, t1):
        s = [(p, c) for t, p, c in self.samples[-4000:] if t0 <= t <= t1]
        if not s:
            return "", ""
        return f"{statistics.mean(p for p, _ in s):.0f}", f"{statistics.mean(c for _, c in s):.0f}"

    def energy_mj(self):
        return self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.h) if self.ok else None


SAMPLER: Sampler = None


def timed(fn, min_reps=10, min_time=0.04, graph=True):
    """(median seconds of one fn replay, reps, mean power W, mean SM MHz over the timing window).

    fn may be a list of callables doing the same work on different buffers (weight copies, so that none stays in
    L2 from one replay to the next): one graph each, replayed in turn, each replay timed alone."""
    fns = list(fn) if isinstance(fn, (list, tuple)) else [fn]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for f in fns:
            for _ in range(2):
                f()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    runs = fns
    if graph:
        graphs = []
        for f in fns:
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                f()
            graphs.append(g)
        runs = [g.replay for g in graphs]
        for run in runs:
            run()
    torch.cuda.synchronize()
    times, start = [], time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < min_time and len(times) < 200):
        run = runs[len(times) % len(runs)]
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        run()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    power, clock = SAMPLER.window(start, time.perf_counter()) if SAMPLER else ("", "")
    return statistics.median(times), len(times), power, clock


class Writer:
    def __init__(self, out, name, fields):
        self.f = open(os.path.join(out, name), "w", newline="")
        self.w = csv.DictWriter(self.f, fieldnames=fields)
        self.w.writeheader()

    def row(self, **r):
        self.w.writerow(r)
        self.f.flush()


# --- GEMMs -----------------------------------------------------------------------------------------------------
# (N, K) = (output features, input features) of the projections, as serving stacks store them (QKV and gate/up
# merged). Sources: the models' config.json files in workloads/zoo.
GEMM_SHAPES = {
    "llama8b.qkv": (6144, 4096), "llama8b.o": (4096, 4096), "llama8b.gate_up": (28672, 4096),
    "llama8b.down": (4096, 14336),
    "llama70b.qkv": (10240, 8192), "llama70b.o": (8192, 8192), "llama70b.gate_up": (57344, 8192),
    "llama70b.down": (8192, 28672),
    "llama70b-tp8.qkv": (1280, 8192), "llama70b-tp8.o": (8192, 1024), "llama70b-tp8.gate_up": (7168, 8192),
    "llama70b-tp8.down": (8192, 3584),
    "llama13b.qkv": (15360, 5120), "llama13b.down": (5120, 13824),
    "qwen7b.gate_up": (37888, 3584), "qwen7b.down": (3584, 18944),
    "mixtral.w1": (14336, 4096),
    "phi3.qkv": (9216, 3072), "phi3.o": (3072, 3072), "phi3.gate_up": (16384, 3072), "phi3.down": (3072, 8192),
}
GEMM_M = [1, 16, 64, 128, 256, 512, 1024, 2048, 4096, 8192]


def measure_gemm(out, quick):
    w = Writer(out, "gemm.csv", ["shape", "variant", "m", "n", "k", "seconds", "tflops", "reps", "power_w", "sm_mhz"])
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    f8 = torch.float8_e4m3fn
    shapes = list(GEMM_SHAPES.items())[:3] if quick else list(GEMM_SHAPES.items())
    if GEMM_ONLY:
        shapes = [(name, nk) for name, nk in shapes if name.startswith(GEMM_ONLY)]
    for name, (n, k) in shapes:
        if left() < 60:
            log("gemm: out of time budget at", name)
            return
        nsets = max(1, min(8, int(4 * l2 // (n * k)) + 1))     # weight copies so that none stays in L2
        wb = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(nsets)]
        w8 = [x.to(f8) for x in wb]
        sb_row = [torch.rand(1, n, device="cuda") + 0.5 for _ in range(nsets)]
        one = torch.ones((), device="cuda")
        for m in (GEMM_M[::3] if quick else GEMM_M):
            ab = [torch.randn(m, k, device="cuda", dtype=torch.bfloat16) for _ in range(nsets)]
            a8 = [x.to(f8) for x in ab]
            sa_row = [torch.rand(m, 1, device="cuda") + 0.5 for _ in range(nsets)]
            variants = {
                "bf16": lambda: [torch.mm(a, b.t()) for a, b in zip(ab, wb)],
                "fp8_tensor": lambda: [torch._scaled_mm(a, b.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
                                       for a, b in zip(a8, w8)],
                "fp8_tensor_fastacc": lambda: [torch._scaled_mm(a, b.t(), scale_a=one, scale_b=one,
                                                                out_dtype=torch.bfloat16, use_fast_accum=True)
                                               for a, b in zip(a8, w8)],
                "fp8_row": lambda: [torch._scaled_mm(a, b.t(), scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)
                                    for a, b, sa, sb in zip(a8, w8, sa_row, sb_row)],
            }
            for variant, fn in variants.items():
                try:
                    t, reps, pw, clk = timed(fn)
                except Exception as exc:   # noqa: BLE001 - e.g. a size the fp8 kernels refuse
                    log(f"gemm {name} {variant} m={m}: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
                    torch.cuda.synchronize()
                    continue
                t /= nsets
                w.row(shape=name, variant=variant, m=m, n=n, k=k, seconds=f"{t:.4e}",
                      tflops=f"{2 * m * n * k / t / 1e12:.1f}", reps=reps, power_w=pw, sm_mhz=clk)
            del ab, a8, sa_row
        log(f"gemm {name}: done ({time.perf_counter() - T0:.0f} s)")
        del wb, w8
        torch.cuda.empty_cache()


# --- weight-only int4 GEMMs (w4a16) ---------------------------------------------------------------------------
W4_SHAPES = ("llama8b.qkv", "llama8b.o", "llama8b.gate_up", "llama8b.down", "llama70b-tp8.qkv",
             "llama70b-tp8.gate_up", "llama70b-tp8.down", "phi3.gate_up")
W4_M = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]


def measure_w4a16(out, quick):
    """Weight-only int4 GEMMs at decode sizes: torch's tinygemm kernel (aten._weight_int4pack_mm, the kernel of
    gpt-fast and torchao's int4 weight-only layout: 4-bit weights in groups of 128 with bf16 scales and zeros,
    bf16 activations), beside bf16 torch.mm and FP8 _scaled_mm on the same shapes and rows. Answers whether a
    batch-1 w4a16 GEMM streams its half-byte weights (time flat in M) or is padded to a large tile."""
    w = Writer(out, "w4a16.csv", ["shape", "variant", "m", "n", "k", "group", "seconds", "tflops", "weight_gbps",
                                  "reps", "power_w", "sm_mhz"])
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    f8 = torch.float8_e4m3fn
    group, inner = 128, 8
    for name in (W4_SHAPES[:2] if quick else W4_SHAPES):
        if left() < 30:
            log("w4a16: out of time budget at", name)
            return
        n, k = GEMM_SHAPES[name]
        nsets = max(2, min(16, int(4 * l2 // (n * k // 2)) + 1))   # int4 copies so that none stays in L2
        nsets_b = max(1, min(8, int(4 * l2 // (n * k)) + 1))
        try:
            q = [torch.randint(0, 256, (n, k // 2), dtype=torch.uint8, device="cuda") for _ in range(nsets)]
            packed = [torch.ops.aten._convert_weight_to_int4pack(x, inner) for x in q]
            sz = [torch.rand(k // group, n, 2, device="cuda", dtype=torch.bfloat16) * 0.01 for _ in range(nsets)]
            del q
        except Exception as exc:   # noqa: BLE001 - a torch build without the CUDA kernel
            log(f"w4a16 {name}: int4 pack failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
            return
        wb = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(nsets_b)]
        w8 = [x.to(f8) for x in wb]
        one = torch.ones((), device="cuda")
        for m in (W4_M[::3] if quick else W4_M):
            ab = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            a8 = ab.to(f8)
            variants = {
                "int4_tinygemm": (nsets, lambda: [torch.ops.aten._weight_int4pack_mm(ab, b, group, s)
                                                  for b, s in zip(packed, sz)]),
                "bf16": (nsets_b, lambda: [torch.mm(ab, b.t()) for b in wb]),
                "fp8_tensor": (nsets_b, lambda: [torch._scaled_mm(a8, b.t(), scale_a=one, scale_b=one,
                                                                  out_dtype=torch.bfloat16) for b in w8]),
            }
            for variant, (sets, fn) in variants.items():
                try:
                    t, reps, pw, clk = timed(fn)
                except Exception as exc:   # noqa: BLE001
                    log(f"w4a16 {name} {variant} m={m}: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
                    torch.cuda.synchronize()
                    continue
                t /= sets
                wbytes = n * k * {"int4_tinygemm": 0.5, "bf16": 2.0, "fp8_tensor": 1.0}[variant]
                w.row(shape=name, variant=variant, m=m, n=n, k=k, group=group if variant.startswith("int4") else "",
                      seconds=f"{t:.4e}", tflops=f"{2 * m * n * k / t / 1e12:.2f}",
                      weight_gbps=f"{wbytes / t / 1e9:.0f}", reps=reps, power_w=pw, sm_mhz=clk)
        log(f"w4a16 {name}: done ({time.perf_counter() - T0:.0f} s)")
        del packed, sz, wb, w8
        torch.cuda.empty_cache()


# --- decode attention ------------------------------------------------------------------------------------------
_TRITON = []


def _triton_decode():
    """The two Triton kernels (built once: each new @jit function would compile again)."""
    if _TRITON:
        return _TRITON[0]
    import triton
    import triton.language as tl

    @triton.jit
    def split_kernel(Q, K, V, BT, LENS, OP, LSE, scale, k_scale, v_scale, split_len,
                     s_qb, s_qh, s_kp, s_kt, s_kh, s_btb, s_ob, s_oh, s_os, s_lb, s_lh,
                     GROUP: tl.constexpr, GP: tl.constexpr, D: tl.constexpr, PAGE: tl.constexpr,
                     BLOCK: tl.constexpr, FP8: tl.constexpr):
        b = tl.program_id(0)
        hkv = tl.program_id(1)
        s = tl.program_id(2)
        seq = tl.load(LENS + b)
        g = tl.arange(0, GP)
        d = tl.arange(0, D)
        gm = g < GROUP
        q = tl.load(Q + b * s_qb + (hkv * GROUP + g)[:, None] * s_qh + d[None, :], mask=gm[:, None], other=0.0)
        m_i = tl.full([GP], -float("inf"), tl.float32)
        l_i = tl.zeros([GP], tl.float32)
        acc = tl.zeros([GP, D], tl.float32)
        lo = s * split_len
        hi = tl.minimum(lo + split_len, seq)
        for start in range(lo, hi, BLOCK):
            t = start + tl.arange(0, BLOCK)
            valid = t < hi
            page = tl.load(BT + b * s_btb + t // PAGE, mask=valid, other=0)
            off = page.to(tl.int64) * s_kp + (t % PAGE) * s_kt + hkv * s_kh
            k = tl.load(K + off[:, None] + d[None, :], mask=valid[:, None], other=0.0)
            v = tl.load(V + off[:, None] + d[None, :], mask=valid[:, None], other=0.0)
            if FP8:
                k = k.to(tl.bfloat16)
                v = v.to(tl.bfloat16)
            qk = tl.dot(q, tl.trans(k)) * (scale * k_scale)
            qk = tl.where(valid[None, :], qk, -float("inf"))
            m_new = tl.maximum(m_i, tl.max(qk, 1))
            p = tl.exp(qk - m_new[:, None])
            alpha = tl.exp(m_i - m_new)
            l_i = l_i * alpha + tl.sum(p, 1)
            acc = acc * alpha[:, None] + tl.dot(p.to(tl.bfloat16), v)
            m_i = m_new
        empty = l_i == 0.0
        out = acc / tl.where(empty, 1.0, l_i)[:, None] * v_scale
        lse = tl.where(empty, -float("inf"), m_i + tl.log(tl.where(empty, 1.0, l_i)))
        heads = hkv * GROUP + g
        tl.store(OP + b * s_ob + heads[:, None] * s_oh + s * s_os + d[None, :], out, mask=gm[:, None])
        tl.store(LSE + b * s_lb + heads * s_lh + s, lse, mask=gm)

    @triton.jit
    def reduce_kernel(OP, LSE, O, n_splits, s_ob, s_oh, s_os, s_lb, s_lh, s_b, s_h,
                      SP: tl.constexpr, D: tl.constexpr):
        b = tl.program_id(0)
        h = tl.program_id(1)
        sp = tl.arange(0, SP)
        d = tl.arange(0, D)
        sm = sp < n_splits
        lse = tl.load(LSE + b * s_lb + h * s_lh + sp, mask=sm, other=-float("inf"))
        mx = tl.max(lse, 0)
        wgt = tl.where(sm, tl.exp(lse - mx), 0.0)
        o = tl.load(OP + b * s_ob + h * s_oh + sp[:, None] * s_os + d[None, :], mask=sm[:, None], other=0.0)
        res = tl.sum(o * wgt[:, None], 0) / tl.sum(wgt, 0)
        tl.store(O + b * s_b + h * s_h + d, res.to(tl.bfloat16))

    _TRITON.append((triton, split_kernel, reduce_kernel))
    return _TRITON[0]


class PagedDecode:
    """Paged split-K decode attention: KV cache [pages, page, hkv, d], block table [b, max_pages]."""

    def __init__(self, b, hq, hkv, ctx, d, page, fp8, sms):
        self.triton, self.split_k, self.reduce_k = _triton_decode()
        self.b, self.hq, self.hkv, self.d, self.page, self.fp8 = b, hq, hkv, d, page, fp8
        pages_per_seq = -(-ctx // page)
        npages = b * pages_per_seq
        dt = torch.float8_e4m3fn if fp8 else torch.bfloat16
        self.k = (torch.randn(npages, page, hkv, d, device="cuda", dtype=torch.bfloat16) * 0.5).to(dt)
        self.v = (torch.randn(npages, page, hkv, d, device="cuda", dtype=torch.bfloat16) * 0.5).to(dt)
        self.bt = torch.randperm(npages, device="cuda", dtype=torch.int32).view(b, pages_per_seq)
        self.lens = torch.full((b,), ctx, device="cuda", dtype=torch.int32)
        self.q = torch.randn(b, hq, d, device="cuda", dtype=torch.bfloat16)
        self.block = 64 if d <= 128 else 32
        # flash-decoding split heuristic: enough (sequence, KV head, split) programs to fill the SMs twice,
        # no split shorter than 256 tokens
        want = max(1, math.ceil(2 * sms / (b * hkv)))
        self.splits = max(1, min(want, ctx // 256, 64))
        self.split_len = -(-ctx // self.splits)
        self.split_len = -(-self.split_len // self.block) * self.block
        self.splits = -(-ctx // self.split_len)
        self.op = torch.empty(b, hq, self.splits, d, device="cuda", dtype=torch.float32)
        self.lse = torch.empty(b, hq, self.splits, device="cuda", dtype=torch.float32)
        self.o = torch.empty(b, hq, d, device="cuda", dtype=torch.bfloat16)
        self.group = hq // hkv
        self.gp = max(16, 1 << (self.group - 1).bit_length())

    def __call__(self):
        k, v, op, lse, o, q = self.k, self.v, self.op, self.lse, self.o, self.q
        self.split_k[(self.b, self.hkv, self.splits)](
            q, k, v, self.bt, self.lens, op, lse, 1.0 / math.sqrt(self.d), 1.0, 1.0, self.split_len,
            q.stride(0), q.stride(1), k.stride(0), k.stride(1), k.stride(2), self.bt.stride(0),
            op.stride(0), op.stride(1), op.stride(2), lse.stride(0), lse.stride(1),
            GROUP=self.group, GP=self.gp, D=self.d, PAGE=self.page, BLOCK=self.block, FP8=self.fp8, num_warps=4)
        self.reduce_k[(self.b, self.hq)](
            op, lse, o, self.splits, op.stride(0), op.stride(1), op.stride(2), lse.stride(0), lse.stride(1),
            o.stride(0), o.stride(1), SP=max(2, 1 << (self.splits - 1).bit_length()), D=self.d, num_warps=4)
        return o

    def reference(self):
        """float32 attention over the gathered (dequantized) cache."""
        pages = self.bt.long()
        kk = self.k.float()[pages].flatten(1, 2)[:, : int(self.lens[0])]   # [b, ctx, hkv, d]
        vv = self.v.float()[pages].flatten(1, 2)[:, : int(self.lens[0])]
        kk = kk.repeat_interleave(self.group, dim=2).transpose(1, 2)         # [b, hq, ctx, d]
        vv = vv.repeat_interleave(self.group, dim=2).transpose(1, 2)
        s = torch.einsum("bhd,bhtd->bht", self.q.float(), kk) / math.sqrt(self.d)
        return torch.einsum("bht,bhtd->bhd", torch.softmax(s, -1), vv)


DECODE_HEADS = [(32, 8), (64, 8), (32, 32), (32, 1), (28, 4), (8, 1)]
DECODE_B = [1, 16, 64, 256]
DECODE_CTX = [512, 4096, 32768]


def measure_decode(out, quick):
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    w = Writer(out, "attn_decode.csv", ["kernel", "kv_dtype", "page", "b", "hq", "hkv", "ctx", "d", "splits",
                                        "kv_bytes", "seconds", "gbps", "reps", "power_w", "sm_mhz", "max_err"])
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    d = 128
    triton_ok = True
    checked = set()
    for hq, hkv in (DECODE_HEADS[:2] if quick else DECODE_HEADS):
        for b in DECODE_B:
            for ctx in DECODE_CTX:
                kv_bytes = 2 * b * hkv * ctx * d * 2
                if kv_bytes > 24e9:
                    continue
                if left() < 40:
                    log("decode: out of time budget")
                    return
                # torch SDPA on a contiguous cache (flash backend, KV heads broadcast in the kernel)
                q = torch.randn(b, hq, 1, d, device="cuda", dtype=torch.bfloat16)
                k = torch.randn(b, hkv, ctx, d, device="cuda", dtype=torch.bfloat16)
                v = torch.randn(b, hkv, ctx, d, device="cuda", dtype=torch.bfloat16)
                for backend in ("flash", "default"):
                    try:
                        if backend == "flash":
                            with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
                                fn = lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=hkv != hq)  # noqa: E731
                                t, reps, pw, clk = timed(fn)
                        else:
                            fn = lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=hkv != hq)  # noqa: E731
                            t, reps, pw, clk = timed(fn)
                        w.row(kernel=f"sdpa_{backend}", kv_dtype="bf16", page="", b=b, hq=hq, hkv=hkv, ctx=ctx, d=d,
                              splits="", kv_bytes=kv_bytes, seconds=f"{t:.4e}", gbps=f"{kv_bytes / t / 1e9:.0f}",
                              reps=reps, power_w=pw, sm_mhz=clk, max_err="")
                        break
                    except Exception as exc:   # noqa: BLE001
                        log(f"sdpa {backend} b={b} {hq}/{hkv} ctx={ctx}: {str(exc).splitlines()[0][:100]}")
                        torch.cuda.synchronize()
                del q, k, v
                if not triton_ok:
                    continue
                for fp8, page in ((False, 16), (True, 16), (False, 64)):
                    if page == 64 and ctx != 4096:
                        continue
                    try:
                        pd = PagedDecode(b, hq, hkv, ctx, d, page, fp8, sms)
                        err = ""
                        key = (hq, hkv, fp8, page)
                        if key not in checked and b * ctx <= 64 * 4096:
                            got = pd().float()
                            ref = pd.reference()
                            err = float((got - ref).norm() / ref.norm())
                            if not err < 2e-2:
                                log(f"paged decode check FAILED {key} b={b} ctx={ctx}: rel err {err}")
                                triton_ok = False
                                break
                            checked.add(key)
                            err = f"{err:.1e}"
                        t, reps, pw, clk = timed(pd)
                        nbytes = kv_bytes // (2 if fp8 else 1)
                        w.row(kernel="triton_paged_splitk", kv_dtype="fp8" if fp8 else "bf16", page=page, b=b, hq=hq,
                              hkv=hkv, ctx=ctx, d=d, splits=pd.splits, kv_bytes=nbytes, seconds=f"{t:.4e}",
                              gbps=f"{nbytes / t / 1e9:.0f}", reps=reps, power_w=pw, sm_mhz=clk, max_err=err)
                        del pd
                    except Exception as exc:   # noqa: BLE001
                        log(f"paged decode b={b} {hq}/{hkv} ctx={ctx} fp8={fp8}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:200] if str(exc) else ''}")
                        traceback.print_exc(file=LOG)
                        torch.cuda.synchronize()
                        triton_ok = False
                        break
                torch.cuda.empty_cache()
        log(f"decode {hq}/{hkv}: done ({time.perf_counter() - T0:.0f} s)")


# --- prefill attention -----------------------------------------------------------------------------------------
HEAD_DIMS = [128]          # --head-dims
PER_GRAPH = [1]            # --per-graph: calls captured in one graph (1: a lone replay; 8: as inside a captured step)
GEMM_ONLY = ()             # --gemm-shapes: name prefixes
TOKEN_IDS = "zeros"        # --token-ids of the power part's steps: zeros (the modules' default, as lease8 ran) or random
PREFILL_HEADS = [(32, 8), (64, 8), (32, 32), (28, 4), (8, 1)]
PREFILL_BS = [(1, 128), (1, 512), (1, 2048), (1, 8192), (1, 16384), (1, 32768), (4, 2048), (16, 512), (8, 4096),
              (64, 128)]


def measure_prefill(out, quick):
    import torch.nn.functional as F
    w = Writer(out, "attn_prefill.csv", ["kernel", "b", "hq", "hkv", "s", "d", "seconds", "tflops_causal", "reps",
                                         "power_w", "sm_mhz", "per_graph"])
    cases = [(hq, hkv, 128) for hq, hkv in (PREFILL_HEADS[:1] if quick else PREFILL_HEADS) if 128 in HEAD_DIMS]
    # other head sizes (64: GPT-2/Phi-2 class, 96: Phi-3, 256: Gemma): two head layouts each, after d = 128
    cases += [(hq, hkv, d) for d in HEAD_DIMS if d != 128 for hq, hkv in PREFILL_HEADS[:3:2]]
    for hq, hkv, d in cases:
        for b, s in PREFILL_BS:
            if left() < 30:
                log("prefill: out of time budget")
                return
            q = torch.randn(b, hq, s, d, device="cuda", dtype=torch.bfloat16)
            k = torch.randn(b, hkv, s, d, device="cuda", dtype=torch.bfloat16)
            v = torch.randn(b, hkv, s, d, device="cuda", dtype=torch.bfloat16)
            for n in PER_GRAPH:
                try:
                    def calls(n=n):
                        for _ in range(n):
                            F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=hq != hkv)
                    t, reps, pw, clk = timed(calls)
                    t /= n
                    flops = 4 * b * hq * s * s * d / 2
                    w.row(kernel="sdpa", b=b, hq=hq, hkv=hkv, s=s, d=d, seconds=f"{t:.4e}",
                          tflops_causal=f"{flops / t / 1e12:.1f}", reps=reps, power_w=pw, sm_mhz=clk, per_graph=n)
                except Exception as exc:   # noqa: BLE001
                    log(f"prefill b={b} s={s} {hq}/{hkv} d={d} x{n}: {str(exc).splitlines()[0][:100]}")
            del q, k, v
        torch.cuda.empty_cache()
    log(f"prefill: done ({time.perf_counter() - T0:.0f} s)")


# --- MoE -------------------------------------------------------------------------------------------------------
# (experts, top_k, hidden, expert FFN width): Mixtral-8x7B, Qwen1.5-MoE-A2.7B (routed experts only),
# DeepSeek-V2-Lite (routed experts only); from their config.json files in workloads/zoo
MOE_CONFIGS = {"mixtral-8x7b": (8, 2, 4096, 14336), "qwen1.5-moe": (60, 4, 2048, 1408),
               "deepseek-v2-lite": (64, 6, 2048, 1408)}
MOE_TOKENS = [1, 8, 32, 128, 512, 2048, 8192]


def routing(kind, tokens, experts, top_k, gen):
    """[tokens, top_k] expert ids (distinct per token)."""
    if kind == "identical":
        return torch.arange(top_k).repeat(tokens, 1)
    if kind == "uniform":     # exactly balanced: token t takes experts t*k .. t*k+k-1 (mod E)
        return (torch.arange(tokens)[:, None] * top_k + torch.arange(top_k)[None, :]) % experts
    if kind == "random":
        w = torch.ones(experts)
    else:                     # skewed: Zipf(1.2) popularity over experts
        w = 1.0 / torch.arange(1, experts + 1, dtype=torch.float) ** 1.2
    return torch.multinomial(w.expand(tokens, experts), top_k, replacement=False, generator=gen)


def moe_loop(x, w13, w2, F_, experts, counts, bounds, tok_of, gate_w):
    """The per-expert loop of measure_moe's loop rows (HF style, counts known on the host): for the i-th expert
    (weights w13[experts[i]] = gate|up [2F, H], w2[experts[i]] [H, F]) with counts[i] rows, the permuted rows
    bounds[i]:bounds[i+1] (tokens tok_of[...]) gathered, gate and up projections, SiLU-gated down projection,
    scaled by gate_w and added into y [T, H]. Experts with no rows launch nothing."""
    import torch.nn.functional as F
    T, H = x.shape

    def loop():
        y = torch.zeros(T, H, device=x.device, dtype=torch.bfloat16)
        for i, e in enumerate(experts):
            if not counts[i]:
                continue
            idx = tok_of[bounds[i]:bounds[i + 1]]
            xe = x.index_select(0, idx)
            g = F.linear(xe, w13[e, :F_])
            u = F.linear(xe, w13[e, F_:])
            he = F.linear(F.silu(g) * u, w2[e])
            y.index_add_(0, idx, he * gate_w[bounds[i]:bounds[i + 1]])
        return y
    return loop


def moe_grouped(x, w13_t, w2_t, F_, offs, tok_of, gate_w):
    """measure_moe's grouped rows: one torch._grouped_mm per projection over the permuted rows (offs: the int32
    end of each expert's rows; w13_t [E, H, 2F], w2_t [E, F, H] column-major views)."""
    import torch.nn.functional as F
    T, H = x.shape

    def grouped():
        xs = x.index_select(0, tok_of)
        gu = torch._grouped_mm(xs, w13_t, offs=offs, out_dtype=torch.bfloat16)
        h = F.silu(gu[:, :F_]) * gu[:, F_:]
        o = torch._grouped_mm(h, w2_t, offs=offs, out_dtype=torch.bfloat16)
        y = torch.zeros(T, H, device=x.device, dtype=torch.bfloat16)
        y.index_add_(0, tok_of, o * gate_w)
        return y
    return grouped


def measure_moe(out, quick):
    import torch.nn.functional as F
    w = Writer(out, "moe.csv", ["config", "impl", "routing", "tokens", "experts", "top_k", "hidden", "ffn",
                                "active_experts", "max_tokens_per_expert", "seconds", "reps", "power_w", "sm_mhz"])
    gen = torch.Generator().manual_seed(0)
    grouped_ok = hasattr(torch, "_grouped_mm")
    for cname, (E, K, H, F_) in (list(MOE_CONFIGS.items())[:1] if quick else MOE_CONFIGS.items()):
        w13 = torch.randn(E, 2 * F_, H, device="cuda", dtype=torch.bfloat16) * 0.02   # gate|up, [out, in]
        w2 = torch.randn(E, H, F_, device="cuda", dtype=torch.bfloat16) * 0.02
        router = torch.randn(E, H, device="cuda", dtype=torch.bfloat16) * 0.02
        w13_t = w13.transpose(1, 2)     # [E, H, 2F] column-major views for the grouped GEMM
        w2_t = w2.transpose(1, 2)       # [E, F, H]
        for T in MOE_TOKENS:
            if left() < 30:
                log("moe: out of time budget")
                return
            x = torch.randn(T, H, device="cuda", dtype=torch.bfloat16)

            def route():
                logits = F.linear(x, router)
                p = torch.softmax(logits.float(), -1)
                return torch.topk(p, K, -1)
            t, reps, pw, clk = timed(route)
            w.row(config=cname, impl="router", routing="", tokens=T, experts=E, top_k=K, hidden=H, ffn=F_,
                  active_experts="", max_tokens_per_expert="", seconds=f"{t:.4e}", reps=reps, power_w=pw, sm_mhz=clk)
            for rkind in ("uniform", "random", "skewed", "identical"):
                ids = routing(rkind, T, E, K, gen)                       # [T, K]
                flat = ids.flatten()
                order = torch.argsort(flat, stable=True)
                counts = torch.bincount(flat, minlength=E).tolist()
                tok_of = (order // K).cuda()                             # token of each permuted row
                gate_w = torch.rand(T * K, 1, device="cuda", dtype=torch.bfloat16)
                bounds = [0]
                for c in counts:
                    bounds.append(bounds[-1] + c)
                active = sum(1 for c in counts if c)

                loop = moe_loop(x, w13, w2, F_, range(E), counts, bounds, tok_of, gate_w)
                t, reps, pw, clk = timed(loop)
                w.row(config=cname, impl="loop", routing=rkind, tokens=T, experts=E, top_k=K, hidden=H, ffn=F_,
                      active_experts=active, max_tokens_per_expert=max(counts), seconds=f"{t:.4e}", reps=reps,
                      power_w=pw, sm_mhz=clk)
                if grouped_ok:
                    offs = torch.tensor(bounds[1:], device="cuda", dtype=torch.int32)
                    grouped = moe_grouped(x, w13_t, w2_t, F_, offs, tok_of, gate_w)
                    try:
                        t, reps, pw, clk = timed(grouped)
                        w.row(config=cname, impl="grouped", routing=rkind, tokens=T, experts=E, top_k=K, hidden=H,
                              ffn=F_, active_experts=active, max_tokens_per_expert=max(counts), seconds=f"{t:.4e}",
                              reps=reps, power_w=pw, sm_mhz=clk)
                    except Exception as exc:   # noqa: BLE001
                        log(f"grouped_mm {cname} T={T}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                        torch.cuda.synchronize()
                        grouped_ok = False
        del w13, w2, router
        torch.cuda.empty_cache()
        log(f"moe {cname}: done ({time.perf_counter() - T0:.0f} s)")


# --- MoE router grid -------------------------------------------------------------------------------------------
# The router of measure_moe alone (router GEMM bf16, softmax in float32, top-k) over a synthetic grid of expert
# counts, top-k and tokens: calibration data for the router's cost that does not come from the three real models
ROUTER_EXPERTS = [8, 16, 32, 60, 64, 128, 160]
ROUTER_TOPK = [1, 2, 4, 6, 8]
ROUTER_TOKENS = [1, 8, 64, 512, 4096]


def router_cases(quick):
    """(experts, top_k, hidden) in measurement order: hidden 4096 over the whole grid, then hidden 2048 for the
    Qwen1.5-MoE / DeepSeek-V2-Lite class (60 and 64 experts, top-4 and top-6)."""
    if quick:
        return [(8, 2, 4096), (64, 6, 2048)]
    cases = [(e, k, 4096) for e in ROUTER_EXPERTS for k in ROUTER_TOPK if k <= e]
    return cases + [(e, k, 2048) for e in (60, 64) for k in (4, 6)]


def measure_router(out, quick):
    import torch.nn.functional as F
    w = Writer(out, "router.csv", ["experts", "top_k", "tokens", "hidden", "seconds", "reps", "power_w", "sm_mhz",
                                   "gemm_seconds", "topk_seconds", "topk_reps"])
    for E, K, H in router_cases(quick):
        router = torch.randn(E, H, device="cuda", dtype=torch.bfloat16) * 0.02      # as measure_moe's router
        for T in ((8, 512) if quick else ROUTER_TOKENS):
            if left() < 20:
                log("router: out of time budget at", f"E={E} k={K} H={H} T={T}")
                return
            x = torch.randn(T, H, device="cuda", dtype=torch.bfloat16)

            def route():             # the op sequence of measure_moe's router row
                logits = F.linear(x, router)
                p = torch.softmax(logits.float(), -1)
                return torch.topk(p, K, -1)
            t, reps, pw, clk = timed(route)
            # the parts alone: the router GEMM, and top-k over the softmax output (computed once, outside)
            tg, _, _, _ = timed(lambda: F.linear(x, router))
            probs = torch.softmax(F.linear(x, router).float(), -1)
            tk, reps_k, _, _ = timed(lambda: torch.topk(probs, K, -1))
            w.row(experts=E, top_k=K, tokens=T, hidden=H, seconds=f"{t:.4e}", reps=reps, power_w=pw, sm_mhz=clk,
                  gemm_seconds=f"{tg:.4e}", topk_seconds=f"{tk:.4e}", topk_reps=reps_k)
            del x, probs
        log(f"router E={E} k={K} H={H}: done ({time.perf_counter() - T0:.0f} s)")
        del router
    torch.cuda.empty_cache()


# --- MoE per-expert loop grid ----------------------------------------------------------------------------------
# measure_moe's per-expert loop (and grouped GEMM) over a synthetic grid of small expert FFNs, a few active experts
# and 1..256 rows per expert, independent of the three real models: calibration data for the loop's in-graph kernel
# floor and the small GEMMs' rate. Every active expert gets the same rows (uniform routing, counts on the host).
# 5 shapes x 3 expert counts x 8 row counts x (loop, grouped) = 240 timed calls: about 0.05-0.15 s each on an
# H100 (the router grid's and moe part's rates), 15-40 s in all.
MOEGRID_SHAPES = [(2048, 1408), (2048, 2816), (4096, 1408), (4096, 3584), (3072, 1024)]   # (hidden, expert FFN)
MOEGRID_ROWS = [1, 2, 4, 8, 16, 32, 64, 256]
MOEGRID_EXPERTS = [1, 4, 16]


def moegrid_cases(quick):
    """(hidden, ffn, active experts, top_k) in measurement order; top-1 for one expert, top-2 otherwise."""
    shapes, counts = (MOEGRID_SHAPES[:1], (1, 4)) if quick else (MOEGRID_SHAPES, MOEGRID_EXPERTS)
    return [(h, f, n, 1 if n == 1 else 2) for h, f in shapes for n in counts]


def moegrid_rows(quick):
    return (1, 32) if quick else MOEGRID_ROWS


def moegrid_sets(set_bytes, l2):
    """Weight copies replayed in turn so that no expert's weights stay in L2 between replays (as in measure_moe,
    whose real models' active experts never fit it): as measure_gemm's rotation."""
    return max(1, min(8, int(4 * l2 // set_bytes) + 1))


def moegrid_routing(n, k, rows):
    """(tokens, tok_of, counts, bounds) for n experts of `rows` rows each under top-k: tokens = n * rows / k
    (rows * n must divide by k), routed uniformly (routing("uniform")) and permuted as measure_moe does."""
    T = n * rows // k
    ids = routing("uniform", T, n, k, None)
    order = torch.argsort(ids.flatten(), stable=True)
    counts = torch.bincount(ids.flatten(), minlength=n).tolist()
    bounds = [0]
    for c in counts:
        bounds.append(bounds[-1] + c)
    return T, order // k, counts, bounds


def measure_moegrid(out, quick):
    w = Writer(out, "moegrid.csv", ["config", "impl", "routing", "tokens", "experts", "top_k", "hidden", "ffn",
                                    "active_experts", "max_tokens_per_expert", "rows_per_expert", "weight_sets",
                                    "seconds", "reps", "power_w", "sm_mhz"])
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    grouped_ok = hasattr(torch, "_grouped_mm")
    for H, F_, n, K in moegrid_cases(quick):
        if left() < 20:
            log("moegrid: out of time budget at", f"H={H} F={F_} experts={n}")
            return
        nsets = moegrid_sets(n * 3 * F_ * H * 2, l2)
        # nsets copies of n experts: copy r holds experts r*n .. r*n+n-1 (as measure_moe's w13 / w2)
        w13 = torch.randn(nsets * n, 2 * F_, H, device="cuda", dtype=torch.bfloat16) * 0.02
        w2 = torch.randn(nsets * n, H, F_, device="cuda", dtype=torch.bfloat16) * 0.02
        for rows in moegrid_rows(quick):
            if left() < 20:
                log("moegrid: out of time budget at", f"H={H} F={F_} experts={n} rows={rows}")
                return
            if n * rows % K:
                continue
            T, tok_of, counts, bounds = moegrid_routing(n, K, rows)
            x = torch.randn(T, H, device="cuda", dtype=torch.bfloat16)
            tok_of = tok_of.cuda()
            gate_w = torch.rand(T * K, 1, device="cuda", dtype=torch.bfloat16)
            common = dict(config="grid", routing="uniform", tokens=T, experts=n, top_k=K, hidden=H, ffn=F_,
                          active_experts=n, max_tokens_per_expert=max(counts), rows_per_expert=rows,
                          weight_sets=nsets)
            loops = [moe_loop(x, w13, w2, F_, range(r * n, (r + 1) * n), counts, bounds, tok_of, gate_w)
                     for r in range(nsets)]
            t, reps, pw, clk = timed(loops)
            w.row(impl="loop", seconds=f"{t:.4e}", reps=reps, power_w=pw, sm_mhz=clk, **common)
            if grouped_ok:
                offs = torch.tensor(bounds[1:], device="cuda", dtype=torch.int32)
                groups = [moe_grouped(x, w13[r * n:(r + 1) * n].transpose(1, 2),
                                      w2[r * n:(r + 1) * n].transpose(1, 2), F_, offs, tok_of, gate_w)
                          for r in range(nsets)]
                try:
                    t, reps, pw, clk = timed(groups)
                    w.row(impl="grouped", seconds=f"{t:.4e}", reps=reps, power_w=pw, sm_mhz=clk, **common)
                except Exception as exc:   # noqa: BLE001
                    log(f"moegrid grouped_mm H={H} F={F_} experts={n} rows={rows}: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:200]}")
                    torch.cuda.synchronize()
                    grouped_ok = False
            del x, tok_of, gate_w, loops
        log(f"moegrid H={H} F={F_} experts={n} ({nsets} weight sets): done ({time.perf_counter() - T0:.0f} s)")
        del w13, w2
        torch.cuda.empty_cache()


# --- MoE grid, wide: many rows per expert, and empty groups ------------------------------------------------------
# The moegrid's rows reach 256 rows per expert and every group of its grouped GEMM has rows; the real models' layers
# (moe.csv) reach 550-770 rows per expert at 8,192 tokens (qwen1.5-moe, deepseek-v2-lite) and at one token hand
# torch._grouped_mm 60-64 groups of which 4-6 have a row. Both ends are where hwsim's grouped layer is furthest off
# (held out, -13..-21% on both Hoppers), so this part measures them on synthetic shapes (calibration data, nothing
# of the real models): `moegrid_wide_cases`; every case is also profiled once (torch.profiler, outside a graph:
# device time per kernel) into moegrid-wide-kernels.csv, to say which kernel holds the time.
MOEWIDE_ROWS = [512, 1024, 2048]
MOEWIDE_SHAPES = [(2048, 1408), (4096, 1408), (2048, 2816)]
MOEWIDE_EMPTY = [(8, 1), (64, 1), (64, 4), (16, 4)]          # (groups, active experts)
MOEWIDE_EMPTY_ROWS = [1, 8, 64]


def moegrid_wide_cases(quick):
    """(hidden, ffn, groups, active experts, top_k, rows per active expert) in measurement order: 16 experts x 512..2048
    rows (top-2) on three shapes, then groups with few active experts (top-1 for one, top-2 otherwise) at 1..64
    rows on the (2048, 1408) shape."""
    shapes = MOEWIDE_SHAPES[:1] if quick else MOEWIDE_SHAPES
    wide = [(h, f, 16, 16, 2, r) for h, f in shapes for r in (MOEWIDE_ROWS[:1] if quick else MOEWIDE_ROWS)]
    empty = [(2048, 1408, g, n, 1 if n == 1 else 2, r) for g, n in (MOEWIDE_EMPTY[:2] if quick else MOEWIDE_EMPTY)
             for r in (MOEWIDE_EMPTY_ROWS[:1] if quick else MOEWIDE_EMPTY_ROWS)]
    return wide + empty


def measure_moegrid_wide(out, quick):
    cols = ["config", "impl", "routing", "tokens", "experts", "top_k", "hidden", "ffn", "active_experts",
            "max_tokens_per_expert", "rows_per_expert", "weight_sets", "groups", "seconds", "reps", "power_w", "sm_mhz"]
    w = Writer(out, "moegrid-wide.csv", cols)
    prof = Writer(out, "moegrid-wide-kernels.csv", ["case", "kernel", "count", "device_us"])
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    if not hasattr(torch, "_grouped_mm"):
        log("moegrid-wide: this torch has no _grouped_mm; nothing measured")
        return
    for H, F_, G, n, K, rows in moegrid_wide_cases(quick):
        if left() < 20:
            log("moegrid-wide: out of time budget at", f"H={H} F={F_} groups={G} active={n} rows={rows}")
            return
        nsets = moegrid_sets(n * 3 * F_ * H * 2, l2)
        T, tok_of, counts, bounds = moegrid_routing(n, K, rows)
        # the n active experts first, the G - n empty groups after them (offsets repeat the last end)
        w13 = torch.randn(nsets * G, 2 * F_, H, device="cuda", dtype=torch.bfloat16) * 0.02
        w2 = torch.randn(nsets * G, H, F_, device="cuda", dtype=torch.bfloat16) * 0.02
        x = torch.randn(T, H, device="cuda", dtype=torch.bfloat16)
        tok_of = tok_of.cuda()
        gate_w = torch.rand(T * K, 1, device="cuda", dtype=torch.bfloat16)
        offs = torch.tensor(bounds[1:] + [bounds[-1]] * (G - n), device="cuda", dtype=torch.int32)
        common = dict(config="grid-wide", routing="uniform", tokens=T, experts=n, top_k=K, hidden=H, ffn=F_,
                      active_experts=n, max_tokens_per_expert=max(counts), rows_per_expert=rows, weight_sets=nsets,
                      groups=G)
        try:
            groups = [moe_grouped(x, w13[r * G:(r + 1) * G].transpose(1, 2), w2[r * G:(r + 1) * G].transpose(1, 2),
                                  F_, offs, tok_of, gate_w) for r in range(nsets)]
            t, reps, pw, clk = timed(groups)
            w.row(impl="grouped", seconds=f"{t:.4e}", reps=reps, power_w=pw, sm_mhz=clk, **common)
            if G == n:       # the loop has no empty groups: only the wide rows
                loops = [moe_loop(x, w13, w2, F_, range(r * G, r * G + n), counts, bounds, tok_of, gate_w)
                         for r in range(nsets)]
                t, reps, pw, clk = timed(loops)
                w.row(impl="loop", seconds=f"{t:.4e}", reps=reps, power_w=pw, sm_mhz=clk, **common)
            profile_kernels(prof, f"grouped H={H} F={F_} groups={G} active={n} rows={rows}", groups[0])
        except Exception as exc:   # noqa: BLE001
            log(f"moegrid-wide H={H} F={F_} groups={G} active={n} rows={rows}: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200]}")
            torch.cuda.synchronize()
        del x, tok_of, gate_w, w13, w2
        torch.cuda.empty_cache()
        log(f"moegrid-wide H={H} F={F_} groups={G} active={n} rows={rows}: done ({time.perf_counter() - T0:.0f} s)")


# --- sustained power -------------------------------------------------------------------------------------------
POWER_STEPS = [("llama-2-13b", "prefill", 4, 2048), ("llama-2-13b", "prefill", 1, 512),
               ("qwen2.5-7b", "prefill", 4, 2048), ("phi-3-mini", "prefill", 4, 2048),
               ("phi-3-mini", "prefill", 16, 512),
               ("qwen3-14b", "prefill", 1, 8192), ("llama-3.1-8b", "prefill", 4, 2048),
               ("llama-3.1-8b", "decode", 128, 1024)]


def sustain(run, seconds):
    torch.cuda.synchronize()
    e0 = SAMPLER.energy_mj()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(4):
            run()
        n += 4
        torch.cuda.synchronize()
    t1 = time.perf_counter()
    e1 = SAMPLER.energy_mj()
    steady = [(p, c) for t, p, c in SAMPLER.samples[-4000:] if t0 + 0.3 * (t1 - t0) <= t <= t1]
    energy = (e1 - e0) / 1e3 if e0 is not None else float("nan")
    clocks = [c for _, c in steady] or [0]
    powers = [p for p, _ in steady] or [0]
    return {"step_seconds": f"{(t1 - t0) / n:.4e}", "steps": n, "avg_power_w": f"{energy / (t1 - t0):.1f}",
            "steady_power_w": f"{statistics.mean(powers):.1f}", "avg_sm_mhz": f"{statistics.mean(clocks):.0f}",
            "steady_sm_mhz": f"{statistics.mean(clocks):.0f}", "min_sm_mhz": min(clocks),
            "energy_j_per_step": f"{energy / n:.4e}", "seconds": f"{t1 - t0:.2f}"}


def profile_kernels(w, case, fn):
    """Device time per CUDA kernel name of one eager call (torch.profiler), right after the sustained run."""
    from torch.profiler import ProfilerActivity, profile
    try:
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            fn()
            torch.cuda.synchronize()
        for e in prof.key_averages():
            us = getattr(e, "device_time_total", None)
            if us is None:
                us = getattr(e, "cuda_time_total", 0)
            if us:
                w.row(case=case, kernel=e.key[:160], count=e.count, device_us=f"{us:.1f}")
    except Exception as exc:   # noqa: BLE001
        log(f"profile {case}: {type(exc).__name__}: {exc}")


def measure_power(out, quick, workloads_ok):
    w = Writer(out, "power.csv", ["case", "model", "phase", "batch", "seq_len", "first_seconds", "step_seconds",
                                  "steps", "avg_power_w", "steady_power_w", "avg_sm_mhz", "steady_sm_mhz",
                                  "min_sm_mhz", "energy_j_per_step", "seconds"])
    dur = 2.0 if quick else 4.0
    time.sleep(1.0)
    r = sustain(lambda: time.sleep(0.05), 2.0)
    w.row(case="idle", model="", phase="", batch=0, seq_len=0, first_seconds="", **r)
    log("power idle:", r["avg_power_w"], "W")
    for dtype, m, n, k in (("bf16", 8192, 8192, 8192), ("fp8", 8192, 8192, 8192), ("bf16", 2048, 8192, 8192),
                           ("bf16", 512, 8192, 8192), ("fp8", 2048, 8192, 8192)):
        if left() < 20:
            return
        a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
        if dtype == "fp8":
            a8, b8, one = a.to(torch.float8_e4m3fn), b.to(torch.float8_e4m3fn), torch.ones((), device="cuda")
            fn = lambda: torch._scaled_mm(a8, b8.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)  # noqa: E731
        else:
            fn = lambda: torch.mm(a, b.t())   # noqa: E731
        first, _, _, _ = timed(fn, min_reps=5, min_time=0.0)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(8):
                fn()
        r = sustain(g.replay, dur)
        r["step_seconds"] = f"{float(r['step_seconds']) / 8:.4e}"
        r["energy_j_per_step"] = f"{float(r['energy_j_per_step']) / 8:.4e}"
        w.row(case=f"gemm_{dtype}_{m}x{n}x{k}", model="", phase="", batch=0, seq_len=0, first_seconds=f"{first:.4e}",
              **r)
        log(f"power gemm {dtype} {m}x{n}x{k}: {r['avg_power_w']} W {r['steady_sm_mhz']} MHz "
            f"first {first * 1e3:.3f} ms sustained {float(r['step_seconds']) * 1e3:.3f} ms")
        del a, b, fn, g
        torch.cuda.empty_cache()
    if not workloads_ok:
        log("power steps skipped: no workloads package")
        return
    from workloads import load_spec
    from workloads.modules import CausalLM, Step
    built = {}
    kw = Writer(out, "kernels.csv", ["case", "kernel", "count", "device_us"])
    for name, phase, b, s in POWER_STEPS:
        if left() < 25:
            log("power steps: out of time budget")
            return
        try:
            if name not in built:
                built.clear()
                torch.cuda.empty_cache()
                spec = load_spec(name)
                torch.manual_seed(0)
                model = CausalLM(spec, dtype=torch.bfloat16, device="cuda", share_layers=False)
                with torch.no_grad():
                    for p in model.parameters():
                        p.normal_(0.0, 0.02)
                built[name] = model
            model = built[name]
            step = Step(phase, b, s, 0) if phase == "prefill" else Step(phase, b, 1, s)
            caches = model.allocate_caches(step, unique=False)
            for c in caches:
                c.normal_()
            ids = None
            if TOKEN_IDS == "random":     # uniform ids, as real text varies (the GEMMs draw more power than on zeros)
                gen = torch.Generator(device="cuda").manual_seed(0)
                ids = torch.randint(3, model.spec.vocab, (b, step.new_tokens), device="cuda", generator=gen)

            def fn():
                with torch.no_grad():
                    model(step, unique=False, caches=caches, ids=ids)
            first, _, _, _ = timed(fn, min_reps=5, min_time=0.0)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                fn()
            r = sustain(g.replay, dur)
            w.row(case="step", model=name, phase=phase, batch=b, seq_len=s, first_seconds=f"{first:.4e}", **r)
            log(f"power {name} {phase} b={b} s={s}: first {first * 1e3:.1f} ms sustained "
                f"{float(r['step_seconds']) * 1e3:.1f} ms, {r['avg_power_w']} W, {r['steady_sm_mhz']} MHz")
            if kw is not None and left() > 40:
                profile_kernels(kw, f"{name}/{phase}/{b}x{s}", fn)
            del caches, g
        except Exception as exc:   # noqa: BLE001
            log(f"power step {name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
            traceback.print_exc(file=LOG)
        torch.cuda.empty_cache()


# --- environment -----------------------------------------------------------------------------------------------
def environment(out):
    props = torch.cuda.get_device_properties(0)
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except Exception:   # noqa: BLE001
        pass
    env = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "device": props.name, "sms": props.multi_processor_count, "memory_bytes": props.total_memory,
           "l2_bytes": props.L2_cache_size, "torch": torch.__version__, "cuda": torch.version.cuda,
           "hostname": socket.gethostname(), "cpu": cpu, "cpus": os.cpu_count(), "kernel": platform.release(),
           "python": platform.python_version(), "script": "benchmarks/gpu/measure_stack.py", "token_ids": TOKEN_IDS}
    try:
        import triton
        env["triton"] = triton.__version__
    except Exception as exc:   # noqa: BLE001
        env["triton"] = f"missing: {exc}"
    try:
        import pynvml as nvml
        nvml.nvmlInit()
        h = nvml.nvmlDeviceGetHandleByIndex(0)
        env.update(driver=nvml.nvmlSystemGetDriverVersion(),
                   power_limit_w=nvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1e3,
                   max_sm_mhz=nvml.nvmlDeviceGetMaxClockInfo(h, nvml.NVML_CLOCK_SM),
                   max_mem_mhz=nvml.nvmlDeviceGetMaxClockInfo(h, nvml.NVML_CLOCK_MEM))
    except Exception as exc:   # noqa: BLE001
        env["nvml_error"] = str(exc)
    try:
        env["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,clocks.max.sm,power.limit,temperature.gpu",
                                            "--format=csv,noheader"], capture_output=True, text=True,
                                           timeout=20).stdout.strip()
    except Exception:   # noqa: BLE001
        pass
    with open(os.path.join(out, "env.json"), "w") as f:
        json.dump(env, f, indent=2)
    log(json.dumps(env))


PARTS = ("gemm", "decode", "prefill", "moe", "power", "router", "moegrid", "moegrid-wide", "w4a16")


def main():
    global BUDGET, LOG, SAMPLER, HEAD_DIMS, DECODE_HEADS, GEMM_ONLY, PER_GRAPH, TOKEN_IDS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget", type=float, default=540.0, help="seconds; parts stop starting new cases near it")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--token-ids", choices=("zeros", "random"), default="zeros",
                    help="token ids of the power part's steps: zeros (the modules' default) or random (real text)")
    ap.add_argument("--parts", default="gemm,decode,prefill,moe,power",
                    help="comma-separated, from " + ",".join(PARTS) +
                    " (router, moegrid, moegrid-wide: not in the default)")
    ap.add_argument("--head-dims", default="128",
                    help="prefill attention head sizes, comma-separated (128: every head layout; others: (32,8) and (32,32))")
    ap.add_argument("--per-graph", default="1",
                    help="prefill part: calls captured per CUDA graph, comma-separated (1: one replay per call, as the "
                         "2026-12-06 rows; 8: the replay's fixed cost spread as inside a captured step); the row's "
                         "seconds are per call")
    ap.add_argument("--decode-heads", default=None,
                    help="decode attention head layouts as HQ/HKV, comma-separated (default: "
                         + ",".join(f"{a}/{b}" for a, b in DECODE_HEADS) + ")")
    ap.add_argument("--gemm-shapes", default="",
                    help="gemm part: only the shapes whose names start with one of these comma-separated prefixes "
                         "(e.g. phi3. for the K = 3072 projections); default all")
    ap.add_argument("--workloads", help="a tar of hwsim's workloads package, unpacked and put on sys.path")
    args = ap.parse_args()
    BUDGET = args.budget
    unknown = [x for x in args.parts.split(",") if x not in PARTS]
    if unknown:
        ap.exit(2, f"measure_stack.py: --parts: unknown {','.join(unknown)}; choose from {','.join(PARTS)}\n")
    HEAD_DIMS = [int(x) for x in args.head_dims.split(",")]
    TOKEN_IDS = args.token_ids
    try:
        PER_GRAPH = [int(x) for x in args.per_graph.split(",")]
        assert PER_GRAPH and all(n >= 1 for n in PER_GRAPH)
    except (ValueError, AssertionError):
        ap.exit(2, f"measure_stack.py: --per-graph {args.per_graph!r}: give whole numbers >= 1, e.g. 1,8\n")
    GEMM_ONLY = tuple(x for x in args.gemm_shapes.split(",") if x)
    if args.decode_heads:
        try:
            DECODE_HEADS = [tuple(int(v) for v in x.split("/")) for x in args.decode_heads.split(",")]
            assert all(len(x) == 2 and x[0] % x[1] == 0 for x in DECODE_HEADS)
        except (ValueError, AssertionError):
            ap.exit(2, f"measure_stack.py: --decode-heads {args.decode_heads!r}: give HQ/HKV pairs with HKV dividing "
                       "HQ, e.g. 64/2,128/4\n")
    os.makedirs(args.out, exist_ok=True)
    LOG = open(os.path.join(args.out, "log.txt"), "w")
    environment(args.out)
    workloads_ok = False
    try:
        if args.workloads and os.path.isfile(args.workloads):
            import tarfile
            dest = "/tmp/measure_stack_pkg"
            with tarfile.open(args.workloads) as tf:
                tf.extractall(dest)
            sys.path.insert(0, dest)
        import workloads  # noqa: F401
        workloads_ok = True
        log("workloads from", workloads.__file__)
    except Exception as exc:   # noqa: BLE001
        log("no workloads package:", exc)
    SAMPLER = Sampler()
    SAMPLER.start()
    torch.backends.cuda.matmul.allow_tf32 = False
    parts = {"gemm": measure_gemm, "decode": measure_decode, "prefill": measure_prefill, "moe": measure_moe,
             "router": measure_router, "moegrid": measure_moegrid, "moegrid-wide": measure_moegrid_wide,
             "w4a16": measure_w4a16}
    for name in args.parts.split(","):
        t = time.perf_counter()
        try:
            if name == "power":
                measure_power(args.out, args.quick, workloads_ok)
            else:
                parts[name](args.out, args.quick)
        except Exception as exc:   # noqa: BLE001
            log(f"part {name} failed: {type(exc).__name__}: {exc}")
            traceback.print_exc(file=LOG)
            torch.cuda.synchronize()
        log(f"part {name}: {time.perf_counter() - t:.1f} s (total {time.perf_counter() - T0:.0f} s)")
    SAMPLER.stop = True
    return 0


if __name__ == "__main__":
    sys.exit(main())
