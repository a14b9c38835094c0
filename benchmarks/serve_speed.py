"""Serving simulator speed (issue 9 targets).

1. 10,000 requests of Llama-3.1-70B on a TP4 replica of a DGX H100 under Poisson arrivals, in under 2 s after
   start-up (start-up: importing hwsim and building the replica's step-cost tables from cached graph templates).
   Vidur and DistServe's simulator take 20-70 s for a run of this size (issue 9); with --vidur and a Vidur
   install (benchmarks/serving/vidur_compare.py prepares one) the same workload runs through Vidur here.
2. --million: 1,000,000 requests across 64 such replicas in under 3 minutes.
3. The same 10,000-request run for a MoE model: Mixtral-8x7B on a TP2 replica of a DGX H100 at 3 req/s (its
   experts costed at each iteration's routed tokens from the MoE graph templates, uniform routing).

    python3 benchmarks/serve_speed.py [--million] [--vidur PYTHON]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_10K_S = 2.0
TARGET_1M_S = 180.0


def run(n, replicas, scheduler, rate_per_replica=2.2, seed=1, model="llama-3.1-70b", system="dgx-h100",
        mapping="tp:4"):
    from sim.serving import Pool, serve
    from workloads.requests import synthetic
    ctx = 4096 if model == "llama-2-7b" else 8192
    t0 = time.perf_counter()
    df = synthetic(n, rate_per_replica * replicas, "sharegpt", seed=seed, max_total=ctx)
    t1 = time.perf_counter()
    c1 = time.process_time()
    pool = Pool(model=model, system=system, mapping=mapping, replicas=replicas, scheduler=scheduler,
                max_context=ctx)
    res = serve(df, pool)
    t2 = time.perf_counter()
    res.cpu_s = time.process_time() - c1
    return t1 - t0, t2 - t1, res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--million", action="store_true", help="also 1,000,000 requests over 64 replicas")
    ap.add_argument("--vidur", metavar="PYTHON", help="a Python with Vidur's requirements, to time it side by side")
    ap.add_argument("--vidur-src", default="/tmp/vidur_src", help="an extracted microsoft/vidur checkout")
    args = ap.parse_args()
    t0 = time.perf_counter()
    from sim.serving import Pool, build_pool        # noqa: F401  (import cost counted in start-up)
    from sim.serving.scheduler import SCHEDULERS
    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    build_pool(Pool(model="llama-3.1-70b", system="dgx-h100", mapping="tp:4", max_context=8192))
    t_tables = time.perf_counter() - t0
    print(f"start-up: import {t_import:.2f} s, step-cost tables {t_tables:.2f} s")
    print("(wall time, and CPU time of this process: the machine may be shared, and CPU time is what the run costs)")
    print(f"{'scheduler':<14}{'requests':>9}{'iterations':>11}{'gen s':>7}{'serve s':>9}{'cpu s':>7}{'iter/s':>10}"
          f"{'req/s simulated':>17}{'vs 2 s target':>15}")
    worst = 0.0
    for sched in ("vllm", "vllm-chunked", "sarathi", "orca"):
        if sched not in SCHEDULERS:
            continue
        gen, t, res = run(10_000, 1, sched)
        it = res.summary["iterations"]
        worst = max(worst, t) if sched == "vllm" else worst
        print(f"{sched:<14}{10_000:>9}{it:>11}{gen:>7.2f}{t:>9.2f}{res.cpu_s:>7.2f}{it / t:>10,.0f}{10_000 / t:>17,.0f}"
              f"{t / TARGET_10K_S:>14.2f}x")
    print(f"10k requests, vllm scheduler: {worst:.2f} s ({'meets' if worst < TARGET_10K_S else 'MISSES'} the "
          f"{TARGET_10K_S:.0f} s target; ratio {worst / TARGET_10K_S:.2f})")
    t0 = time.perf_counter()
    build_pool(Pool(model="mixtral-8x7b", system="dgx-h100", mapping="tp:2", max_context=8192))
    print(f"Mixtral-8x7B tp:2 (MoE), 3 req/s: step-cost tables {time.perf_counter() - t0:.2f} s")
    for sched in ("vllm", "vllm-chunked"):
        gen, t, res = run(10_000, 1, sched, rate_per_replica=3.0, model="mixtral-8x7b", mapping="tp:2")
        it = res.summary["iterations"]
        print(f"{sched:<14}{10_000:>9}{it:>11}{gen:>7.2f}{t:>9.2f}{res.cpu_s:>7.2f}{it / t:>10,.0f}{10_000 / t:>17,.0f}"
              f"{t / TARGET_10K_S:>14.2f}x")
    if args.vidur:
        sys.path.insert(0, str(Path(__file__).resolve().parent / "serving"))
        from vidur_compare import time_vidur
        tv = time_vidur(args.vidur, 10_000, args.vidur_src)
        gen, th, res = run(10_000, 1, "vllm", model="llama-2-7b", system="h100", mapping="single")
        print(f"Vidur, 10,000 ShareGPT requests of Llama-2-7B on one H100 (vLLM scheduler): {tv:.1f} s wall "
              f"(operator-model training included); hwsim on the same shape: {th:.2f} s ({tv / th:.0f}x)")
    if args.million:
        gen, t, res = run(1_000_000, 64, "vllm")
        print(f"1M requests over 64 replicas: generate {gen:.1f} s, serve {t:.1f} s (cpu {res.cpu_s:.1f} s), "
              f"{res.summary['iterations']:,} iterations ({'meets' if t < TARGET_1M_S else 'MISSES'} the "
              f"{TARGET_1M_S:.0f} s target; ratio {t / TARGET_1M_S:.2f})")


if __name__ == "__main__":
    main()
