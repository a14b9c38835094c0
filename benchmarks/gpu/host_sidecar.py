"""A host-speed sidecar: samples how fast this machine runs Python and torch's CPU dispatch, every `--period` s,
in its own process, while a measurement runs beside it (issue 18).

Why: the lent GPU machines are shared VMs whose CPU speed changes within a run (2.2-2.4x for whole cases of one
call, or mid-case, while `hwsim probe-host` before and after saw 1.5x or nothing): a probe taken before or after a
case does not describe it. A sidecar on another core reads the host all along; a case's reading against the one
taken during `hwsim probe-host` says how much slower or faster the host was during that case than when probed
(benchmarks/host/sidecar_speed.py). Nothing in it is fitted to the measurement it runs beside.

Each sample: `--calls` Python function calls and `--ops` torch CPU ops (`torch.add(a, b, out=c)` on 16-element
tensors: dispatcher and Python overhead, no kernel time to speak of), timed apart; the sidecar then sleeps out the
rest of its period (a few % of one core). Writes OUT (CSV: wall_time, py_call_ns, torch_op_ns) with a flush per
sample; stops on SIGTERM or after `--max-s`.

usage: python3 benchmarks/gpu/host_sidecar.py --out FILE [--period 0.1] [--calls 2000] [--ops 200] [--max-s 3600]
       [--cpu N]
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time


def _f(x):
    return x


def sample(calls: int, ops: int, torch=None, tensors=None) -> tuple:
    """(ns per Python call, ns per torch CPU op or None): one sample of this host's speed."""
    t0 = time.perf_counter_ns()
    for i in range(calls):
        _f(i)
    t1 = time.perf_counter_ns()
    op_ns = None
    if torch is not None:
        a, b, c = tensors
        t2 = time.perf_counter_ns()
        for _ in range(ops):
            torch.add(a, b, out=c)
        op_ns = (time.perf_counter_ns() - t2) / ops
    return (t1 - t0) / calls, op_ns


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--period", type=float, default=0.1)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--ops", type=int, default=200)
    ap.add_argument("--max-s", type=float, default=3600.0)
    ap.add_argument("--no-torch", action="store_true", help="Python calls only")
    ap.add_argument("--cpu", type=int, help="run on this CPU only (Linux)")
    args = ap.parse_args(argv)
    if args.period <= 0 or args.calls <= 0 or args.ops <= 0:
        print("--period, --calls and --ops must be positive", file=sys.stderr)
        return 2
    if args.cpu is not None:
        try:
            os.sched_setaffinity(0, {args.cpu})
        except (AttributeError, OSError, ValueError) as exc:
            print(f"--cpu {args.cpu}: cannot run there ({exc})", file=sys.stderr)
            return 2
    torch = tensors = None
    if not args.no_torch:
        import torch
        torch.set_num_threads(1)
        tensors = (torch.ones(16), torch.ones(16), torch.empty(16))
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    end = time.time() + args.max_s
    with open(args.out, "w") as f:
        f.write("wall_time,py_call_ns,torch_op_ns\n")
        f.flush()
        while not stop and time.time() < end:
            t = time.time()
            py_ns, op_ns = sample(args.calls, args.ops, torch, tensors)
            f.write(f"{t:.4f},{py_ns:.2f},{'' if op_ns is None else f'{op_ns:.1f}'}\n")
            f.flush()
            time.sleep(max(0.0, args.period - (time.time() - t)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
