"""Cluster power: servers in rows under a power budget, telemetry, capping policies, and oversubscription what-ifs.

    from sim.cluster import RowSpec, make_controller, run_full, run_aggregate
    spec = RowSpec(server="dgx-a100-80gb", servers=52, budget_servers=40)
    ref = run_aggregate(spec, make_controller("none"), duration_s=86400)
    res = run_aggregate(spec, make_controller("polca"), duration_s=86400)
    res.stats(), res.impact(ref)

Modules: `serving_load` (the one door into the serving simulator: capped step costs, the row's event loop, power
from iteration logs), `control` (controllers behind a registry, telemetry), `load` (rates over days and weeks from
the Azure traces, requests), `row` (the row, the full and the aggregate paths), `metrics` (statistics, impacts),
`report` (HTML and plots), `sweep` (many rows, on Dask). Servers' non-GPU power: hw_models/servers.py.
"""
from __future__ import annotations

from .control import Controller, controller_names, make_controller
from .load import LoadShape
from .metrics import PowerResult
from .row import RowSpec, build_tables, run_aggregate, run_full
from .serving_load import Deployment, Knobs

__all__ = ["Controller", "Deployment", "Knobs", "LoadShape", "PowerResult", "RowSpec", "build_tables",
           "controller_names", "make_controller", "run_aggregate", "run_full"]
