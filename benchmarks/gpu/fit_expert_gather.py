"""How much of an expert-weight gather (`W[idx]`, transformers' batched_mm MoE decode) reads DRAM: from
`measure_expert_gather.py --wide` rows (L2 flushed before every call; a plain copy of the same output timed beside).

Each row's DRAM bytes are taken as its time x the copy's attained rate in the same row (a copy reads and writes
its bytes once: the rate a read+write stream gets on that GPU at that size). Of those, the P slices written are
P x S; the rest is what the gather read. A gather that reads each *distinct* expert once (D of P pairs) reads D x S;
one that reads every pair P x S. The repeat hit fraction h = 1 - (read - D S) / ((P - D) S): 1 when every repeated
expert came from L2, 0 when each pair read DRAM.

--hwsim: beside each row, hwsim's time for the same gather (a module `W[idx]` traced on the meta device,
`predict(..., "h100", profile="eager")`) and for the copy, and their MAPE over the rows with more than one pair.

usage: python3 benchmarks/gpu/fit_expert_gather.py [--hwsim] DATA/gather-wide.jsonl [more.jsonl ...]
"""
from __future__ import annotations

import json
import statistics
import sys


def rows(paths):
    for path in paths:
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                yield json.loads(line)


def hit_fraction(r) -> float | None:
    """The row's repeat hit fraction (None where it has no repeats)."""
    s = r["N"] * r["K"] * 2
    p, d = r["pairs"], r.get("distinct")
    if d is None:
        e = r["E"]
        d = e * (1.0 - (1.0 - 1.0 / e) ** p)
    if p - d < 0.5:
        return None
    dram = r["index_s"] * r["copy_GBps"] * 1e9
    read = dram - p * s
    return 1.0 - (read - d * s) / ((p - d) * s)


def hwsim_times(r, hardware="h100"):
    """(hwsim's seconds for the row's gather, for the copy of its output), eager profile."""
    import torch

    from sim.api import predict
    from workloads import trace_module

    class Gather(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.empty(r["E"], r["N"], r["K"], dtype=torch.bfloat16, device="meta"))

        def forward(self, idx):
            return self.w[idx]

    class Copy(torch.nn.Module):
        def forward(self, x):
            return x.clone()

    idx = torch.zeros(r["pairs"], dtype=torch.long, device="meta")
    out = torch.empty(r["pairs"], r["N"], r["K"], dtype=torch.bfloat16, device="meta")
    return (predict(trace_module(Gather(), idx), hardware, profile="eager").latency_s,
            predict(trace_module(Copy(), out), hardware, profile="eager").latency_s)


def compare(paths, hardware="h100") -> None:
    errs, errc = [], []
    print(f"{'E':>4} {'slice MB':>9} {'pairs':>5} {'order':>7} {'index us':>9} {'hwsim':>8} {'err':>6} "
          f"{'copy us':>9} {'hwsim':>8} {'err':>6}")
    for r in rows(paths):
        t, tc = hwsim_times(r, hardware)
        e, ec = t / r["index_s"] - 1, tc / r["copy_s"] - 1
        if r["pairs"] > 1:
            errs.append(abs(e))
            errc.append(abs(ec))
        print(f"{r['E']:>4} {r['N'] * r['K'] * 2 / 1e6:9.1f} {r['pairs']:5d} {r.get('order', '?'):>7} "
              f"{r['index_s'] * 1e6:9.1f} {t * 1e6:8.1f} {e:+6.0%} {r['copy_s'] * 1e6:9.1f} {tc * 1e6:8.1f} {ec:+6.0%}")
    if errs:
        mape = 100 * sum(errs) / len(errs)
        copy = 100 * sum(errc) / len(errc)
        print(f"rows with > 1 pair: n={len(errs)}, gather MAPE {mape:.1f}%, copy MAPE {copy:.1f}%")


def main(argv=None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    with_hwsim = "--hwsim" in args
    paths = [a for a in args if a != "--hwsim"]
    if not paths:
        print(__doc__.strip().splitlines()[-1])
        return 2
    try:
        rows_read = list(rows(paths))
    except (OSError, ValueError) as e:
        print(f"fit_expert_gather.py: cannot read {' '.join(paths)}: {e}; pass measure_expert_gather.py's "
              f"JSON-lines output", file=sys.stderr)
        return 2
    need = ("E", "N", "K", "pairs", "index_s", "copy_s", "copy_GBps")
    missing = [k for k in need if rows_read and k not in rows_read[0]]
    if missing:
        print(f"fit_expert_gather.py: rows lack {', '.join(missing)}; pass measure_expert_gather.py's output",
              file=sys.stderr)
        return 2
    if with_hwsim:
        compare(paths)
        return 0
    table = {}
    print(f"{'E':>4} {'slice MB':>9} {'pairs':>5} {'order':>7} {'D':>5} {'index us':>9} {'copy us':>9} "
          f"{'every GB/s':>10} {'distinct GB/s':>13} {'h':>6}")
    for r in rows(paths):
        h = hit_fraction(r)
        s_mb = r["N"] * r["K"] * 2 / 1e6
        order = r.get("order", "?")
        d = r.get("distinct", float("nan"))
        print(f"{r['E']:>4} {s_mb:9.1f} {r['pairs']:5d} {order:>7} {d:5} {r['index_s'] * 1e6:9.1f} "
              f"{r['copy_s'] * 1e6:9.1f} {2 * r['pairs'] * s_mb / 1e3 / r['index_s']:10.0f} "
              f"{((d if d == d else r['pairs']) + r['pairs']) * s_mb / 1e3 / r['index_s']:13.0f} "
              f"{'' if h is None else f'{h:6.2f}'}")
        if h is not None and r["pairs"] >= 8:
            table.setdefault((round(s_mb, 1), order), []).append(h)
    print("\nrepeat hit fraction h by slice size and index order (rows with >= 8 pairs): median [min, max]")
    for (s_mb, order), hs in sorted(table.items()):
        print(f"  {s_mb:8.1f} MB  {order:>7}  {statistics.median(hs):5.2f}  [{min(hs):.2f}, {max(hs):.2f}]  "
              f"n={len(hs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
