"""Speed of the cluster-power simulation (targets from issue 10): one day of a 52-server row in under 10 s, six weeks
in under 5 minutes, on this machine; and the full serving path per server-hour for scale.

    python3 benchmarks/power_speed.py [--weeks 6] [--no-full]

The aggregate path's tables (serving simulations of one server per knob setting and load) are built once and kept
on disk; the first row pays for them, which is printed apart. The per-step controller loop is plain Python: the
time it takes is printed, to show whether compiling it (numba) would pay.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DAY = 86400.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weeks", type=float, default=6.0)
    ap.add_argument("--no-full", action="store_true", help="skip the full-path timing")
    args = ap.parse_args(argv)
    from sim.cluster import LoadShape, RowSpec, make_controller, run_aggregate, run_full
    from sim.cluster.row import _TABLES, rate_grid, build_tables
    from sim.cluster.load import POLCA_BURST_SCALE, POLCA_PEAK_RPS        # the POLCA study's calibrated load
    shape = dict(peak_rps=POLCA_PEAK_RPS, burst_scale=POLCA_BURST_SCALE)
    spec = RowSpec(servers=52, budget_servers=40, high_load=LoadShape(trace="azure-conv-2023", **shape),
                   low_load=LoadShape(trace="azure-code-2023", **shape))
    span = args.weeks * 7 * DAY
    server = spec.server_spec()
    ctl = make_controller("polca")
    t0 = time.perf_counter()
    tables = {p: build_tables(server, dep, shape, ctl.settings[p], rate_grid(shape, span, 0.0))
              for p, (dep, shape, _) in spec.classes().items()}
    t_tab = time.perf_counter() - t0
    built = sum(t.build_s for t in tables.values())
    print(f"tables: {t_tab:.1f} s ({'built now' if built else 'read from the cache'}"
          f"{f', {built:.1f} s of serving simulation' if built else ''})")
    rows = []
    for name, days in (("1 day", 1.0), (f"{args.weeks:g} weeks", args.weeks * 7)):
        for pol in ("none", "polca"):
            t0 = time.perf_counter()
            res = run_aggregate(spec, make_controller(pol), days * DAY, tables=dict(tables))
            dt = time.perf_counter() - t0
            target = 10.0 if days <= 1 else 300.0
            rows.append((name, pol, dt, target))
            print(f"52-server row, {name}, policy {pol}: {dt:.2f} s (target {target:.0f} s: "
                  f"{'met' if dt < target else 'NOT MET'}); {res.stats()['events']}")
    # the controller loop alone: POLCA over six weeks of 1-s samples
    import numpy as np
    c = make_controller("polca")
    x = 0.8 + 0.1 * np.sin(np.arange(int(span)) / 3000.0)
    t0 = time.perf_counter()
    for i, f in enumerate(x.tolist()):
        c.state(float(i))
        c.observe(float(i + 1), f)
    loop = time.perf_counter() - t0
    print(f"POLCA controller loop alone, {len(x):,} steps: {loop:.1f} s ({loop / len(x) * 1e6:.2f} us/step): "
          f"{'numba would not change the verdicts above' if all(r[2] < r[3] for r in rows) else 'worth compiling'}")
    if not args.no_full:
        small = RowSpec(servers=4, budget_servers=4, high_load=spec.high_load, low_load=spec.low_load)
        t0 = time.perf_counter()
        res = run_full(small, make_controller("polca"), 600.0, 14 * 3600.0)
        dt = time.perf_counter() - t0
        print(f"full serving path: 4 servers x 10 min in {dt:.1f} s = {dt / (4 * 600 / 3600):.1f} s per server-hour")


if __name__ == "__main__":
    main()
