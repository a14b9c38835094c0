"""How fast an Ampere-generation GEMM kernel (mma.sync, cp.async, CTA tiles of at most 128x128x64) runs on a Hopper
GPU, against the cuBLAS kernels hwsim's GEMM model was fitted on (issue 12, the Mixtral rows).

Why: TensorRT-LLM v0.9.0's MoE plugin sends sm >= 90 to its `cutlass::arch::Sm80` grouped-GEMM kernels
(moe_gemm_kernels_template.h @250d9c2, `dispatchToArch`: "TODO Update the arch to Sm90 once CUTLASS hopper
specialisations are available"), so the published H100/H200 Mixtral-8x7B rows ran their expert GEMMs without wgmma.
hwsim prices every Hopper GEMM at cuBLAS's (wgmma) efficiency, which is one reason the compute-bound Mixtral rows
read 27-38% too fast on Hopper and within 1-5% on the A100 (docs/stack-accuracy.md, "MoE rows").

What runs: one Triton GEMM kernel (row-major A, B given as the transposed [N, K] weight, as an nn.Linear holds it),
compiled twice in separate processes: with `DISABLE_MMA_V3=1` (Triton then emits mma.sync, the Ampere instruction,
on sm_90; checked in the PTX) and without (wgmma where the tile allows). The tiles are the sm80 CUTLASS MoE runner's
candidate CTA shapes (16/32/64/128 x 128 x 64, 128 x 64 x 64, 64 x 64 x 128; 3 or 4 stages); per shape and M the best
tile is kept, as the plugin's profiler keeps its fastest config. torch.mm (cuBLAS) times the same shapes in the parent
process. Shapes: Mixtral-8x7B's expert GEMMs at TP2 (gate|up: N 14336, K 4096; down: N 4096, K 7168) and a square
4096 one, M = rows per expert from decode (8) to long prefills (16384). Inputs are random (never zeros), every
output is checked against torch.mm (relative error < 2e-2), weights larger than L2 are not re-read from L2 (one weight
is 59-117 MB).

usage (GPU machine): python3 benchmarks/gpu/ampere_gemm_on_hopper.py --out DIR [--budget 240]
       (`--smoke`: a CPU check through TRITON_INTERPRET=1 with tiny fp16 shapes, the interpreter mishandling bf16
       stores: not data)
Writes DIR/ampere_gemm.csv (one row per shape, M and kernel source: cublas | mma_v2 | mma_v3, the best tile, its time,
TFLOP/s, SM clock after the timing, and which MMA instruction the PTX holds) and DIR/env.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time

SHAPES = (("mixtral.tp2.gate_up", 14336, 4096), ("mixtral.tp2.down", 4096, 7168), ("square4096", 4096, 4096))
MS = (8, 32, 64, 128, 256, 512, 1024, 4096, 16384)
# (BLOCK_M, BLOCK_N, BLOCK_K, num_warps): the sm80 MoE runner's CTA shapes; stages 3 and 4 for each
TILES = ((16, 128, 64, 4), (32, 128, 64, 4), (64, 128, 64, 4), (128, 128, 64, 8), (128, 64, 64, 4), (64, 64, 128, 4))
STAGES = (3, 4)
COLUMNS = ["shape", "m", "n", "k", "source", "tile", "seconds", "tflops", "sm_mhz", "mma", "rel_err"]


def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def mm(a_ptr, b_ptr, c_ptr, M, N, K, sam, sak, sbn, sbk, scm, scn,
           BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP: tl.constexpr):
        pid = tl.program_id(0)
        npm, npn = tl.cdiv(M, BM), tl.cdiv(N, BN)
        width = GROUP * npn
        gid = pid // width
        first = gid * GROUP
        gsize = min(npm - first, GROUP)
        pm = first + (pid % width) % gsize
        pn = (pid % width) // gsize
        rm = pm * BM + tl.arange(0, BM)
        rn = pn * BN + tl.arange(0, BN)
        rk = tl.arange(0, BK)
        a = a_ptr + rm[:, None] * sam + rk[None, :] * sak
        b = b_ptr + rk[:, None] * sbk + rn[None, :] * sbn
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        for k0 in tl.range(0, K, BK):
            left = K - k0
            x = tl.load(a, mask=(rm[:, None] < M) & (rk[None, :] < left), other=0.0)
            y = tl.load(b, mask=(rk[:, None] < left) & (rn[None, :] < N), other=0.0)
            acc = tl.dot(x, y, acc)
            a += BK * sak
            b += BK * sbk
        c = c_ptr + rm[:, None] * scm + rn[None, :] * scn
        tl.store(c, acc.to(c_ptr.dtype.element_ty), mask=(rm[:, None] < M) & (rn[None, :] < N))
    return mm


def _bench(fn, device):
    """Median seconds of fn: triton's do_bench (device events) on a GPU, a few wall-clock calls in the interpreter."""
    if device == "cuda":
        import triton
        return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median") * 1e-3
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _mma_of(compiled) -> str:
    ptx = getattr(compiled, "asm", {}).get("ptx", "") if compiled is not None else ""
    return "wgmma" if "wgmma" in ptx else "mma.sync" if "mma.sync" in ptx else "?"


def triton_rows(source: str, shapes, ms, device: str, budget: float, sm_mhz) -> list:
    """The best tile per shape and M for one compile mode (this process's DISABLE_MMA_V3)."""
    import torch
    import triton
    mm = _kernel()
    dtype = torch.bfloat16 if device == "cuda" else torch.float16
    start, rows = time.perf_counter(), []
    for name, n, k in shapes:
        w = torch.randn(n, k, device=device, dtype=dtype)
        bt = w.t()
        for m in ms:
            if time.perf_counter() - start > budget:
                print(f"{source}: budget reached", flush=True)
                return rows
            a = torch.randn(m, k, device=device, dtype=dtype)
            ref = (a.float() @ bt.float())
            best = None
            for bm, bn, bk, warps in TILES:
                for stages in STAGES:
                    c = torch.full((m, n), float("nan"), device=device, dtype=dtype)
                    grid = (triton.cdiv(m, bm) * triton.cdiv(n, bn),)

                    def fn():
                        return mm[grid](a, bt, c, m, n, k, a.stride(0), a.stride(1), bt.stride(1), bt.stride(0),
                                        c.stride(0), c.stride(1), BM=bm, BN=bn, BK=bk, GROUP=8,
                                        num_warps=warps, num_stages=stages)
                    try:
                        compiled = fn()
                    except Exception as e:           # a tile that does not fit shared memory: skip it, say so
                        print(f"{source} {name} m={m} tile {bm}x{bn}x{bk}/{stages}: {type(e).__name__}", flush=True)
                        continue
                    err = float((c.float() - ref).norm() / ref.norm())
                    if not err < 2e-2:
                        raise RuntimeError(f"{source} {name} m={m} tile {bm}x{bn}x{bk}: relative error {err}")
                    t = _bench(fn, device)
                    if best is None or t < best[0]:
                        best = (t, f"{bm}x{bn}x{bk}/s{stages}/w{warps}", _mma_of(compiled), err)
            if best is None:
                continue
            t, tile, mma, err = best
            rows.append([name, m, n, k, source, tile, f"{t:.4e}", f"{2 * m * n * k / t / 1e12:.1f}",
                         f"{sm_mhz():.0f}", mma, f"{err:.1e}"])
            print(",".join(map(str, rows[-1])), flush=True)
    return rows


def cublas_rows(shapes, ms, device, sm_mhz) -> list:
    import torch
    rows = []
    for name, n, k in shapes:
        bt = torch.randn(n, k, device=device, dtype=torch.bfloat16).t()
        for m in ms:
            a = torch.randn(m, k, device=device, dtype=torch.bfloat16)
            out = torch.empty(m, n, device=device, dtype=torch.bfloat16)
            t = _bench(lambda: torch.mm(a, bt, out=out), device)
            rows.append([name, m, n, k, "cublas", "", f"{t:.4e}", f"{2 * m * n * k / t / 1e12:.1f}",
                         f"{sm_mhz():.0f}", "", ""])
            print(",".join(map(str, rows[-1])), flush=True)
    return rows


def _child(args) -> int:
    """One compile mode, in its own process (Triton reads DISABLE_MMA_V3 when it compiles)."""
    device = "cpu" if args.smoke else "cuda"
    shapes, ms = _sizes(args.smoke, args.ms)
    sm = _clock(args.smoke)
    rows = triton_rows(args.child, shapes, ms, device, args.budget, sm)
    with open(os.path.join(args.out, f"rows-{args.child}.csv"), "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return 0


def _sizes(smoke, ms=None):
    if smoke:
        return [(n, s // 256, k // 256) for n, s, k in SHAPES[:1]], (8, 32)
    return SHAPES, tuple(int(m) for m in ms.split(",")) if ms else MS


def _clock(smoke):
    if smoke:
        return lambda: 0.0
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from measure_hf_generate import NVML
    nvml = NVML()
    return nvml.sm_mhz


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget", type=float, default=240.0, help="seconds for the whole run (split over the modes)")
    ap.add_argument("--smoke", action="store_true", help="check the script on the CPU (TRITON_INTERPRET=1): not data")
    ap.add_argument("--ms", help="rows per expert to time, comma-separated (default: %s)" % ",".join(map(str, MS)))
    ap.add_argument("--child", choices=("mma_v2", "mma_v3"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.child:
        return _child(args)
    import torch
    device = "cpu" if args.smoke else "cuda"
    shapes, ms = _sizes(args.smoke, args.ms)
    t0 = time.perf_counter()
    json.dump({"date": time.strftime("%Y-%m-%d"), "gpu": None if args.smoke else torch.cuda.get_device_name(0),
               "torch": torch.__version__, "script": "benchmarks/gpu/ampere_gemm_on_hopper.py",
               "smoke_test_not_data": args.smoke},
              open(os.path.join(args.out, "env.json"), "w"), indent=1)
    rows = cublas_rows(shapes, ms, device, _clock(args.smoke))
    for mode in ("mma_v2", "mma_v3"):
        env = dict(os.environ, TRITON_CACHE_DIR=os.path.join(args.out, f".triton-{mode}"))
        env.pop("DISABLE_MMA_V3", None)
        if mode == "mma_v2":
            env["DISABLE_MMA_V3"] = "1"
        if args.smoke:
            env["TRITON_INTERPRET"] = "1"
        left = max(10.0, (args.budget - (time.perf_counter() - t0)) / (2 if mode == "mma_v2" else 1))
        cmd = [sys.executable, os.path.abspath(__file__), "--out", args.out, "--child", mode, "--budget", f"{left:.0f}"]
        if args.ms:
            cmd += ["--ms", args.ms]
        if args.smoke:
            cmd.append("--smoke")
        subprocess.run(cmd, env=env, check=False)
        part = os.path.join(args.out, f"rows-{mode}.csv")
        if os.path.exists(part):
            rows += list(csv.reader(open(part)))
    with open(os.path.join(args.out, "ampere_gemm.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows(rows)
    print(f"{len(rows)} rows -> {os.path.join(args.out, 'ampere_gemm.csv')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
