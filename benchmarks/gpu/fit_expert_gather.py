"""How much of an expert-weight gather (`W[idx]`, transformers' batched_mm MoE decode) reads DRAM: from
`measure_expert_gather.py --wide` rows (L2 flushed before every call; a plain copy of the same output timed beside).

Each row's DRAM bytes are taken as its time x the copy's attained rate in the same row (a copy reads and writes
its bytes once: the rate a read+write stream gets on that GPU at that size). Of those, the P slices written are
P x S; the rest is what the gather read. A gather that reads each *distinct* expert once (D of P pairs) reads D x S;
one that reads every pair P x S. The repeat hit fraction h = 1 - (read - D S) / ((P - D) S): 1 when every repeated
expert came from L2, 0 when each pair read DRAM.

usage: python3 benchmarks/gpu/fit_expert_gather.py DATA/gather-wide.jsonl [more.jsonl ...]
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


def main(argv=None) -> int:
    paths = (argv if argv is not None else sys.argv[1:])
    if not paths:
        print(__doc__.strip().splitlines()[-1])
        return 2
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
        print(f"  {s_mb:8.1f} MB  {order:>7}  {statistics.median(hs):5.2f}  [{min(hs):.2f}, {max(hs):.2f}]  n={len(hs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
