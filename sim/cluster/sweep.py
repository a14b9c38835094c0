"""Many rows at once: the 'servers deployed vs loss' curve and other what-if sweeps, on Dask.

Every row of a sweep runs the aggregate path (sim/cluster/row.py) with the same tables (built once, before the
sweep: they depend on the server, the deployments, the load shapes and the controller's settings, not on the
number of servers or the budget). Rows are `dask.delayed` tasks computed on the local scheduler (`threads`, or
`processes`, or `sync` for debugging); the design-space sweeps of hwsim use the same Dask entry point."""
from __future__ import annotations

from dataclasses import replace

from workloads.errors import HwsimError

from .control import make_controller
from .row import RowSpec, build_tables, rate_grid, run_aggregate
from .serving_load import NO_KNOBS


def row_summary(res, ref) -> dict:
    s = res.stats()
    imp = res.impact(ref)
    out = {"servers": res.spec["servers"], "oversubscription": res.spec["oversubscription"],
           "mean_fraction": s["mean_fraction"], "p99_fraction": s["p99_fraction"], "peak_fraction": s["peak_fraction"],
           "time_above_budget_s": s.get("time_above_1.00_s", 0.0), "brake_events": s["brake_events"],
           "cap_events": s["events"].get("cap", 0), "energy_kwh": s["energy_kwh"]}
    for p, d in imp.items():
        out[f"{p}_e2e_p50_impact"] = d.get("e2e_p50")
        out[f"{p}_ttft_p99_impact"] = d.get("ttft_p99")
        out[f"{p}_throughput_impact"] = d.get("throughput")
    return out


def _one(spec, policy, params, duration_s, start_s, seed, tables, ref_tables):
    ref = run_aggregate(spec, make_controller("none"), duration_s, start_s, seed=seed, tables=dict(ref_tables))
    res = run_aggregate(spec, make_controller(policy, **params), duration_s, start_s, seed=seed, tables=dict(tables))
    return row_summary(res, ref)


def tables_for(spec: RowSpec, policy: str, params: dict, duration_s: float, start_s: float, seed: int,
               window_s: float = 300.0) -> dict:
    server = spec.server_spec()
    ctl = make_controller(policy, **params).fit(server)
    out = {}
    for p, (dep, shape, _) in spec.classes().items():
        out[p] = build_tables(server, dep, shape, ctl.settings[p], rate_grid(shape, duration_s, start_s), window_s,
                              seed=seed)
    return out


def sweep_servers(spec: RowSpec, servers: list, policy: str = "polca", params: dict = None, duration_s: float = 86400.0,
                  start_s: float = 0.0, seed: int = 0, scheduler: str = "threads", window_s: float = 300.0,
                  tables: dict = None, ref_tables: dict = None, rows: list = None) -> list:
    """One aggregate run per server count (budget fixed), each beside its own uncapped reference."""
    import dask
    params = params or {}
    if not servers or min(servers) < 1:
        raise HwsimError("the sweep needs server counts >= 1")
    if scheduler not in ("threads", "processes", "sync"):
        raise HwsimError(f"unknown Dask scheduler '{scheduler}'; use threads, processes or sync")
    budget = spec.budget()
    # tables with the most servers of each class cover every smaller row (same shapes, same settings)
    big = replace(spec, servers=max(servers), budget_w=budget, budget_servers=None)
    tables = tables or tables_for(big, policy, params, duration_s, start_s, seed, window_s)
    if ref_tables is None:
        same = all(t.settings[0] == NO_KNOBS for t in tables.values())
        ref_tables = tables if same else tables_for(big, "none", {}, duration_s, start_s, seed, window_s)
    specs = rows or [replace(spec, servers=n, budget_w=budget, budget_servers=None) for n in sorted(set(servers))]
    tasks = [dask.delayed(_one)(s, policy, params, duration_s, start_s, seed, tables, ref_tables) for s in specs]
    return list(dask.compute(*tasks, scheduler=scheduler))


def deployable(rows: list, hp_p50_limit: float = 0.01, lp_throughput_limit: float = 0.02,
               hp_throughput_limit: float = 0.01) -> int:
    """The most servers whose row meets POLCA's bar: high-priority p50 latency within `hp_p50_limit`, throughput
    within the limits per class, no power-brake events."""
    best = None
    for r in sorted(rows, key=lambda r: r["servers"]):
        ok = (r["brake_events"] == 0
              and abs(r.get("high_e2e_p50_impact") or 0.0) <= hp_p50_limit
              and -(r.get("high_throughput_impact") or 0.0) <= hp_throughput_limit
              and -(r.get("low_throughput_impact") or 0.0) <= lp_throughput_limit)
        if ok:
            best = r["servers"]
    return best
