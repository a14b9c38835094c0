"""NCCL collectives on 1-8 GPUs of one host (issue 16): latency, algorithm and bus bandwidth, per-GPU power.

NOT RUN ON SEVERAL GPUS YET: written when only single-GPU machines were lent; checked with gloo on the CPU
(world size 2) and meant for one GPU (world size 1). No multi-GPU data from it exists in this repository.

Collectives: all-reduce (sum), all-gather, reduce-scatter (sum), all-to-all, and send/recv (each rank sends
to rank+1 and receives from rank-1 at once, as nccl-tests' sendrecv). Sizes: 4 KB to 1 GB in steps of
--factor (capped by --max-bytes), in nccl-tests' convention: `bytes` is the all-reduce buffer, the
all-gather output (each rank gives bytes/N), the reduce-scatter input (each rank gets bytes/N), the
all-to-all buffer of each rank and the send/recv message. Modes: `eager` (each op launched from Python) and
`graph` (the ops captured in one CUDA graph and replayed; NCCL only).

Timing: a rep is `ops_per_rep` back-to-back ops (20 up to 1 MB, 5 up to 64 MB, then 1) after a barrier,
timed with CUDA events (perf_counter on the CPU); time_us is the median over reps of one op, the slowest
rank's median (time_us_fastest_rank the fastest's). At least --min-reps reps and --min-time seconds per case.
algbw = bytes / time; busbw = algbw x nccl-tests' factor: all-reduce 2(N-1)/N, all-gather and
reduce-scatter and all-to-all (N-1)/N, send/recv 1.
Power: each rank reads its own GPU's NVML energy counter around the case's whole rep loop (barriers and the
buffer refills between reps included; busy_fraction says how much of that window the ops took), so for small
sizes it is close to idle power. All-reduce buffers are refilled with random values before every rep (outside
the timed window) so that the in-place sums stay finite and the data stays random.
A correctness check (known values through each collective) runs once per collective before timing.

Environment: this script never sets, unsets or overrides NCCL_NVLS_ENABLE, TORCH_SYMM_MEM_DISABLE_MULTICAST,
NVSHMEM_DISABLE_NVLS or any other NCCL_*/NVSHMEM_* variable, and calls no multicast API: the lent device
machines turn NVLink multicast (NVLS) off in their environment, and these numbers are with it off. The
variables found are recorded in env.json (`comm_env`).

Writes (rank 0) OUT/collectives.csv and OUT/env.json (host, GPUs, driver, NCCL version, `nvidia-smi topo -m`).
usage (on an N-GPU machine, from the repository root):
  torchrun --standalone --nproc-per-node N benchmarks/gpu/measure_collectives.py --out DIR [--budget 480]
  python3 benchmarks/gpu/measure_collectives.py --spawn N --out DIR             (same, torch.multiprocessing)
  python3 benchmarks/gpu/measure_collectives.py --backend gloo --spawn 2 --max-bytes 65536 --out DIR   (CPU check)
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dist_common import Writer, capture_graph, environment, launch, power_summary  # noqa: E402

COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv")
FIELDS = ["backend", "world_size", "collective", "mode", "dtype", "bytes", "ops_per_rep", "ops_timed", "time_us",
          "time_us_fastest_rank", "algbw_gbps", "busbw_gbps", "busbw_factor", "power_w", "power_w_per_gpu",
          "window_s", "busy_fraction", "status"]
# torch >= 2.12 names them *_single (the older names warn); the device machines may run an older torch
ALL_GATHER = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
REDUCE_SCATTER = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def bus_factor(collective: str, n: int) -> float:
    """nccl-tests' bus-bandwidth factor (doc/PERFORMANCE.md): busbw = algbw x this."""
    if collective == "all_reduce":
        return 2 * (n - 1) / n
    if collective in ("all_gather", "reduce_scatter", "all_to_all"):
        return (n - 1) / n
    if collective == "send_recv":
        return 1.0
    raise ValueError(collective)


def sizes(min_bytes: int, max_bytes: int, factor: int):
    out, b = [], min_bytes
    while b <= max_bytes:
        out.append(b)
        b *= factor
    return out


def elem_size(dtype) -> int:
    return torch.tensor([], dtype=dtype).element_size()


def buffer_elements(nbytes: int, n: int, dtype) -> int:
    """Elements of the full buffer: nbytes rounded down to a multiple of N elements (at least N)."""
    return max(1, nbytes // (elem_size(dtype) * n)) * n


def ops_per_rep(nbytes: int) -> int:
    return 20 if nbytes <= 1 << 20 else 5 if nbytes <= 64 << 20 else 1


class Case:
    """The buffers and the one op of a collective at a size on this rank."""

    def __init__(self, ctx, collective: str, nbytes: int, dtype):
        n, r, dev = ctx.world, ctx.rank, ctx.device
        count = buffer_elements(nbytes, n, dtype)
        self.nbytes = count * elem_size(dtype)
        self.collective, self.ctx = collective, ctx
        new = lambda c: torch.randn(c, device=dev, dtype=torch.float32).to(dtype)   # noqa: E731
        if collective == "all_reduce":
            self.x = new(count)
            self.op = lambda: dist.all_reduce(self.x)
        elif collective == "all_gather":
            self.x, self.y = new(count // n), torch.empty(count, device=dev, dtype=dtype)
            self.op = lambda: ALL_GATHER(self.y, self.x)
        elif collective == "reduce_scatter":
            self.x, self.y = new(count), torch.empty(count // n, device=dev, dtype=dtype)
            self.op = lambda: REDUCE_SCATTER(self.y, self.x)
        elif collective == "all_to_all":
            self.x, self.y = new(count), torch.empty(count, device=dev, dtype=dtype)
            self.op = lambda: dist.all_to_all_single(self.y, self.x)
        elif collective == "send_recv":
            self.x, self.y = new(count), torch.empty(count, device=dev, dtype=dtype)
            nxt, prv = (r + 1) % n, (r - 1) % n

            def op():
                for req in dist.batch_isend_irecv([dist.P2POp(dist.isend, self.x, nxt),
                                                   dist.P2POp(dist.irecv, self.y, prv)]):
                    req.wait()
            self.op = op
        else:
            raise ValueError(collective)

    def refill(self):
        """All-reduce sums in place: fresh random values before each rep keep them finite."""
        if self.collective == "all_reduce":
            self.x.normal_()


def check(ctx, collective: str, dtype):
    """Known values through the collective: each rank's input holds rank-dependent integers."""
    n, r = ctx.world, ctx.rank
    c = Case(ctx, collective, 64 * n * 4, dtype)
    m = c.x.numel()
    if collective == "all_to_all":                  # chunk j of rank r carries r*n+j; rank r receives j*n+r
        c.x.copy_(torch.arange(n, device=ctx.device).repeat_interleave(m // n).to(dtype) + r * n)
    else:
        c.x.fill_(r + 1)
    c.op()
    ctx.sync()
    got = (c.x if collective == "all_reduce" else c.y).float().cpu()
    if collective in ("all_reduce", "reduce_scatter"):
        want = torch.full_like(got, n * (n + 1) / 2)
    elif collective == "all_gather":
        want = torch.arange(1, n + 1).float().repeat_interleave(m)
    elif collective == "all_to_all":
        want = (torch.arange(n) * n + r).float().repeat_interleave(m // n)
    else:
        want = torch.full_like(got, (r - 1) % n + 1)
    if not torch.equal(got, want):
        raise RuntimeError(f"{collective} on rank {r}: wrong result (got {got[:4].tolist()}..., "
                           f"want {want[:4].tolist()}...)")


def measure(ctx, case: Case, mode: str, min_reps: int, min_time: float):
    """(median seconds per op, reps, energy J, window s) on this rank."""
    inner = ops_per_rep(case.nbytes)
    for _ in range(2):                               # warm-up (communicator set-up, NCCL's first-call costs)
        case.refill()
        case.op()
    ctx.sync()
    if mode == "graph":
        run = capture_graph(ctx, case.op, inner)
    else:
        def run():
            for _ in range(inner):
                case.op()
    case.refill()
    run()
    ctx.sync()
    timer, times = ctx.timer(), []
    e0, t0 = ctx.energy_j(), time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - t0 < min_time and len(times) < 1000):
        case.refill()
        dist.barrier()
        ctx.sync()
        timer.start()
        run()
        times.append(timer.stop() / inner)
    window = time.perf_counter() - t0
    e1 = ctx.energy_j()
    energy = e1 - e0 if e0 is not None and e1 is not None else None
    return statistics.median(times), len(times) * inner, energy, window


def worker(ctx, args):
    t_start = time.perf_counter()
    dtype = DTYPES[args.dtype or ("bf16" if ctx.gpu else "fp32")]
    modes = [m for m in args.modes.split(",") if m]
    if "graph" in modes and not ctx.gpu:
        modes.remove("graph")                         # CUDA graphs exist only on the GPU
    collectives = [c for c in args.collectives.split(",") if c]
    if ctx.world == 1 and "send_recv" in collectives:
        collectives.remove("send_recv")               # no peer to send to
    if ctx.rank == 0:
        os.makedirs(args.out, exist_ok=True)
    dist.barrier()
    environment(ctx, args.out, "benchmarks/gpu/measure_collectives.py",
                {"args": vars(args), "dtype": str(dtype).replace("torch.", ""), "modes": modes,
                 "note": "bytes in nccl-tests' convention; time_us = slowest rank's median per op"})
    w = Writer(args.out, "collectives.csv", FIELDS) if ctx.rank == 0 else None
    for collective in collectives:
        check(ctx, collective, dtype)
    failed = set()                                    # (collective, mode) pairs that failed once: not tried again
    for nbytes in sizes(args.min_bytes, args.max_bytes, args.factor):
        for collective in collectives:
            for mode in modes:
                if (collective, mode) in failed:
                    continue
                if not ctx.agree(time.perf_counter() - t_start < args.budget):
                    if ctx.rank == 0:
                        print(f"budget of {args.budget:.0f} s spent: stopping before {collective} {mode} "
                              f"{nbytes} B", flush=True)
                    return
                status, t, reps, energy, window = "ok", None, 0, None, 0.0
                try:
                    case = Case(ctx, collective, nbytes, dtype)
                    t, reps, energy, window = measure(ctx, case, mode, args.min_reps, args.min_time)
                except torch.cuda.OutOfMemoryError:
                    status = "out of memory"
                except RuntimeError as exc:
                    status = f"error: {str(exc).splitlines()[0][:160]}".replace(",", ";")
                case = None
                if ctx.gpu:
                    torch.cuda.empty_cache()
                per_rank = ctx.gather((t, reps, energy, window, status))
                bad = next((s for *_, s in per_rank if s != "ok"), None)
                if bad:                                   # the same on every rank (gathered everywhere)
                    failed.add((collective, mode))
                if ctx.rank != 0:
                    continue
                real_bytes = buffer_elements(nbytes, ctx.world, dtype) * elem_size(dtype)
                row = dict(backend=ctx.backend, world_size=ctx.world, collective=collective, mode=mode,
                           dtype=str(dtype).replace("torch.", ""), bytes=real_bytes,
                           ops_per_rep=ops_per_rep(real_bytes),
                           busbw_factor=f"{bus_factor(collective, ctx.world):.4f}")
                if bad:
                    w.row(**row, status=bad)
                    print(f"{collective} {mode} {real_bytes} B: {bad} (not tried at larger sizes)", flush=True)
                    continue
                slow = max(p[0] for p in per_rank)
                fast = min(p[0] for p in per_rank)
                algbw = real_bytes / slow / 1e9
                power, per_gpu = power_summary([(p[2], p[3]) for p in per_rank])
                busy = min(1.0, per_rank[0][1] * per_rank[0][0] / per_rank[0][3]) if per_rank[0][3] else 0.0
                w.row(**row, ops_timed=per_rank[0][1], time_us=f"{slow * 1e6:.3f}",
                      time_us_fastest_rank=f"{fast * 1e6:.3f}",
                      algbw_gbps=f"{algbw:.4f}", busbw_gbps=f"{algbw * bus_factor(collective, ctx.world):.4f}",
                      power_w=power, power_w_per_gpu=per_gpu, window_s=f"{per_rank[0][3]:.3f}",
                      busy_fraction=f"{busy:.3f}", status="ok")
                print(f"{collective:>14} {mode:>5} {real_bytes:>11} B: {slow * 1e6:10.2f} us  "
                      f"busbw {algbw * bus_factor(collective, ctx.world):8.2f} GB/s  {power or '-'} W", flush=True)
    if w:
        w.close()


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--backend", default="nccl", choices=["nccl", "gloo"])
    ap.add_argument("--spawn", type=int, default=0, help="start N processes here (without torchrun)")
    ap.add_argument("--collectives", default=",".join(COLLECTIVES))
    ap.add_argument("--modes", default="eager,graph", help="eager,graph (graph: NCCL only)")
    ap.add_argument("--min-bytes", type=int, default=4096)
    ap.add_argument("--max-bytes", type=int, default=1 << 30)
    ap.add_argument("--factor", type=int, default=2, help="size step (nccl-tests -f)")
    ap.add_argument("--dtype", choices=sorted(DTYPES), help="default bf16 on GPUs (as TP activations), fp32 on gloo")
    ap.add_argument("--min-reps", type=int, default=10)
    ap.add_argument("--min-time", type=float, default=0.1, help="seconds of reps per case at least")
    ap.add_argument("--budget", type=float, default=480.0,
                    help="seconds; no case starts after this, so a time-limited run ends cleanly")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds a collective may hang before it fails")
    args = ap.parse_args(argv)
    if args.factor < 2 or args.min_bytes < 1 or args.max_bytes < args.min_bytes:
        ap.error("need --factor >= 2 and 1 <= --min-bytes <= --max-bytes")
    return args


def main(argv=None) -> int:
    args = parse(argv)
    launch(worker, args, args.backend, args.spawn, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
