"""`hwsim power`: a row of inference servers under a power budget with a capping policy (cluster power what-ifs)."""
from __future__ import annotations

import math
import re
import sys

from workloads.errors import HwsimError

from .output import command, document, emit_json, table

EXAMPLES = """examples:
  hwsim power --row servers=52,budget=40x --server dgx-a100-80gb --policy polca --trace azure-2023 --days 1
  hwsim power --row servers=52,budget=40x --policy polca --days 42 --thresholds 0.75,0.85 --control-latency 5
  hwsim power --row servers=40,budget=40x --policy none --hours 1 --path full --json
  hwsim power --row budget=40x --policy polca --days 1 --sweep servers=40..60:4 --out polca-sweep
  hwsim power --row servers=24,budget=20x --server dgx-h100 --policy freq-cap --policy-param low_mhz=1410 --hours 6
  hwsim power --row servers=52,budget=40x --policy dvfs-phase --policy-param decode_mhz=1110 --days 1

A row is --row servers=N,budget=Mx (M provisioned servers' worth; or budget=260kW / 260000W),high=0.5 (the
high-priority share of servers). Each priority class has its own request stream: --trace azure-2023 gives high
priority the Azure 2023 conversation trace's lengths and burstiness and low priority the code trace's (or name one
trace for both), at --peak-rps requests/s per server at the diurnal peak. The week-long Azure 2024 traces
(azure-2024, azure-conv-2024, azure-code-2024, or --trace PATH; a downloaded copy, see docs/power.md) give the shape
over days themselves, --peak-rps being their busiest hour. Policies: none, power-cap, freq-cap,
polca, dvfs-phase (--policy-param k=v,... sets their parameters; --thresholds and --control-latency are POLCA's).
Spans over 2 hours run the time-stepped aggregate path (tables from serving simulations, cached); up to 2 hours
the full serving simulation of every server (--path picks). Outputs: row power statistics (mean, p99, peak, time
above each threshold), cap and brake events, latency and throughput per priority against an uncapped run, energy.
"""

# The default load (--peak-rps, --burst-scale) is the POLCA study's load calibration: POLCA_PEAK_RPS and
# POLCA_BURST_SCALE in sim/cluster/load.py, read when the command runs (not at start-up: sim.cluster is slow to import).


def register(sub):
    p = command(sub, "power", "row power under a budget: capping policies, oversubscription what-ifs",
                "Simulate a row of LLM inference servers under a power budget with a capping policy.", EXAMPLES)
    g = p.add_argument_group("row")
    g.add_argument("--row", default="servers=40,budget=40x", help="servers=N,budget=Mx|W|kW,high=FRACTION")
    g.add_argument("--server", default="dgx-a100-80gb", help="server preset (dgx-a100-80gb, dgx-a100-40gb, dgx-h100, "
                                                             "dgx-h200) or any system preset")
    g.add_argument("--model", default="llama-2-70b", help="model served by every server (default llama-2-70b)")
    g.add_argument("--mapping", default="tp:8", help="per replica: single or tp:N (default tp:8: one replica a server)")
    g.add_argument("--scheduler", default="vllm", help="serving scheduler (default vllm)")
    c = p.add_argument_group("policy")
    c.add_argument("--policy", default="polca", help="none, power-cap, freq-cap, polca or dvfs-phase (default polca)")
    c.add_argument("--policy-param", default="", help="k=v,... e.g. low_mhz=1110 or decode_mhz=1110 or t1=0.8")
    c.add_argument("--thresholds", help="POLCA's T1,T2 as fractions of the budget (default 0.80,0.89)")
    c.add_argument("--control-latency", type=float, help="seconds from a telemetry reading to a cap in force (default 40)")
    c.add_argument("--brake-latency", type=float, help="seconds to engage the power brake (default 5)")
    c.add_argument("--telemetry-delay", type=float, default=0.0,
                   help="seconds from the end of a telemetry sample to the controller reading it (default 0; "
                        "samples every 100 ms on the full path, every 1-s step on the aggregate path)")
    w = p.add_argument_group("load")
    w.add_argument("--trace", default="azure-2023", help="azure-2023 (conv for high, code for low priority), "
                                                         "azure-conv-2023, azure-code-2023; the week-long 2024 "
                                                         "traces (not shipped: a downloaded copy) azure-2024, "
                                                         "azure-conv-2024, azure-code-2024, or PATH of a CSV in "
                                                         "their format (both classes)")
    w.add_argument("--peak-rps", type=float,
                   help="requests/s per server at the diurnal peak (default: the POLCA study's calibrated load, "
                        "sim/cluster/load.py POLCA_PEAK_RPS)")
    w.add_argument("--trough", type=float, default=0.45, help="diurnal minimum as a fraction of the peak (default 0.45)")
    w.add_argument("--burst-scale", type=float,
                   help="scale of the trace's minute-scale bursts (default: the POLCA study's calibrated load, "
                        "sim/cluster/load.py POLCA_BURST_SCALE)")
    w.add_argument("--days", type=float, help="span in days")
    w.add_argument("--hours", type=float, help="span in hours (default 24 h)")
    w.add_argument("--start-hour", type=float, default=0.0, help="hour of the week the span starts at (default 0)")
    r = p.add_argument_group("run and outputs")
    r.add_argument("--path", choices=["auto", "full", "aggregate"], default="auto",
                   help="full serving simulation or the time-stepped aggregate path (auto: full up to 2 h)")
    r.add_argument("--sweep", help="servers=A..B[:STEP]: the deployable-servers curve (aggregate path, on Dask)")
    r.add_argument("--dask-scheduler", help="with --sweep: threads, processes or sync (default threads)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--json", action="store_true", help="print JSON")
    r.add_argument("--out", metavar="DIR", help="write row_power.parquet, events.json, summary.json, report.html "
                                                "(and sweep.csv)")
    r.add_argument("--format", choices=["parquet", "csv"], help="table format in --out (default parquet)")
    p.set_defaults(run=run)


def _number(text, what):
    try:
        v = float(text)
    except ValueError:
        raise HwsimError(f"{what} must be a number, got '{text}'") from None
    if not math.isfinite(v):
        raise HwsimError(f"{what} must be finite, got '{text}'")
    return v


def parse_row(text: str) -> dict:
    out, seen = {}, set()
    for part in str(text).split(","):
        if not part.strip():
            continue
        key, eq, val = part.partition("=")
        key, val = key.strip(), val.strip()
        if not eq or not val:
            raise HwsimError(f"--row takes key=value pairs (servers=52,budget=40x), got '{part}'")
        if key in seen:             # the last one used to win without a word
            raise HwsimError(f"--row gives {key} twice ('{text}'); keep one")
        seen.add(key)
        if key == "servers":
            n = _number(val, "servers")
            if n < 1 or n != int(n):
                raise HwsimError(f"servers must be a whole number >= 1, got '{val}'")
            out["servers"] = int(n)
        elif key == "budget":
            m = re.fullmatch(r"([0-9.eE+-]+)\s*(x|kw|w|mw)?", val.lower())
            if not m:
                raise HwsimError(f"budget must be like 40x (servers' worth), 260kW or 260000W, got '{val}'")
            v = _number(m.group(1), "budget")
            if v <= 0:
                raise HwsimError(f"the budget must be positive, got '{val}'")
            unit = m.group(2) or "x"
            if unit == "x":
                out["budget_servers"] = v
            else:
                out["budget_w"] = v * {"w": 1.0, "kw": 1e3, "mw": 1e6}[unit]
        elif key == "high":
            v = _number(val, "high")
            if not 0 <= v <= 1:
                raise HwsimError(f"high (the high-priority share of servers) must be in [0, 1], got '{val}'")
            out["high_fraction"] = v
        else:
            raise HwsimError(f"unknown --row key '{key}'; use servers, budget, high")
    return out


def parse_params(text: str) -> dict:
    out = {}
    for part in str(text or "").split(","):
        if not part.strip():
            continue
        key, eq, val = part.partition("=")
        if not eq:
            raise HwsimError(f"--policy-param takes k=v pairs, got '{part}'")
        key, val = key.strip(), val.strip()
        try:
            out[key] = float(val)
        except ValueError:
            out[key] = val
    return out


def parse_sweep(text: str) -> list:
    m = re.fullmatch(r"\s*servers\s*=\s*(\d+)\s*\.\.\s*(\d+)\s*(?::\s*(\d+))?\s*", str(text))
    if not m:
        raise HwsimError(f"--sweep takes servers=A..B[:STEP], e.g. servers=40..60:4, got '{text}'")
    a, b, step = int(m.group(1)), int(m.group(2)), int(m.group(3) or 1)
    if a < 1 or b < a or step < 1:
        raise HwsimError(f"--sweep needs 1 <= A <= B and STEP >= 1, got '{text}'")
    vals = list(range(a, b + 1, step))
    if vals[-1] != b:
        vals.append(b)
    if len(vals) > 200:
        raise HwsimError(f"--sweep would run {len(vals)} rows; keep it to 200 or use a STEP")
    return vals


def build(args):
    from sim.cluster import Deployment, LoadShape, RowSpec, make_controller
    from hw_models.servers import load_server
    for option, given, needs, what in (("--dask-scheduler", args.dask_scheduler, args.sweep, "--sweep"),
                                       ("--format", args.format, args.out, "--out DIR")):
        if given is not None and not needs:       # was taken and ignored
            raise HwsimError(f"{option} applies with {what}; drop it or add {what.split()[0]}")
    server = load_server(args.server)
    row = parse_row(args.row)
    if args.days is not None and args.hours is not None:
        raise HwsimError("give --days or --hours, not both")
    duration = (args.days * 86400.0 if args.days is not None else (args.hours if args.hours is not None else 24.0) * 3600.0)
    if not math.isfinite(duration) or duration <= 0:
        raise HwsimError("the span (--days/--hours) must be positive")
    if duration > 120 * 86400:
        raise HwsimError("spans are limited to 120 days")
    traces = {"azure-2023": ("azure-conv-2023", "azure-code-2023"), "azure-conv-2023": ("azure-conv-2023",) * 2,
              "azure-code-2023": ("azure-code-2023",) * 2, "azure-2024": ("azure-conv-2024", "azure-code-2024"),
              "azure-conv-2024": ("azure-conv-2024",) * 2, "azure-code-2024": ("azure-code-2024",) * 2}
    if args.trace not in traces:
        from pathlib import Path
        if not Path(args.trace).is_file():
            raise HwsimError(f"unknown trace '{args.trace}'; use {', '.join(traces)} or the path of a CSV in the "
                             f"Azure 2024 format")
        traces[args.trace] = (args.trace,) * 2
    hi_t, lo_t = traces[args.trace]
    from sim.cluster.load import POLCA_BURST_SCALE, POLCA_PEAK_RPS
    if args.peak_rps is None:
        args.peak_rps = POLCA_PEAK_RPS
    if args.burst_scale is None:
        args.burst_scale = POLCA_BURST_SCALE
    for name, v in (("--peak-rps", args.peak_rps), ("--trough", args.trough), ("--burst-scale", args.burst_scale),
                    ("--start-hour", args.start_hour)):
        if v is None or not math.isfinite(v) or v < 0:
            raise HwsimError(f"{name} must be a number >= 0")
    if args.peak_rps <= 0:
        raise HwsimError("--peak-rps must be positive")
    dep = Deployment(model=args.model, mapping=args.mapping, scheduler=args.scheduler)
    shape = dict(peak_rps=args.peak_rps, trough=args.trough, burst_scale=args.burst_scale, seed=args.seed)
    spec = RowSpec(server=args.server, servers=row.get("servers", 40), budget_servers=row.get("budget_servers"),
                   budget_w=row.get("budget_w"), high_fraction=row.get("high_fraction", 0.5), high=dep, low=dep,
                   high_load=LoadShape(trace=hi_t, **shape), low_load=LoadShape(trace=lo_t, **shape)).check()
    params = parse_params(args.policy_param)
    if args.thresholds:
        if args.policy != "polca":
            raise HwsimError("--thresholds is POLCA's; use --policy polca")
        parts = [p for p in args.thresholds.split(",") if p.strip()]
        if len(parts) != 2:
            raise HwsimError("--thresholds takes T1,T2, e.g. 0.80,0.89")
        params["t1"], params["t2"] = (_number(x, "a threshold") for x in parts)
    for option, v in (("--control-latency", args.control_latency), ("--brake-latency", args.brake_latency)):
        if v is not None and not (math.isfinite(v) and v >= 0):
            raise HwsimError(f"{option} must be a number of seconds >= 0, got {v}")
    if args.control_latency is not None:
        params["latency_s"] = args.control_latency
    if args.brake_latency is not None:
        params["brake_latency_s"] = args.brake_latency
    make_controller(args.policy, **params).fit(server)   # validates the policy and its parameters now
    for key in ("high_w", "low_w"):                   # a per-GPU cap no clock meets ran at the lowest clock
        cap = params.get(key) if args.policy == "power-cap" else None
        if isinstance(cap, float) and cap <= server.gpu_idle_w:
            raise HwsimError(f"policy power-cap: {key}={cap:g} W is not above the GPUs' idle power ({server.gpu_preset}: "
                             f"{server.gpu_idle_w:g} W); give a per-GPU cap above it")
    if args.telemetry_delay is None or not math.isfinite(args.telemetry_delay) or args.telemetry_delay < 0:
        raise HwsimError("--telemetry-delay must be a number of seconds >= 0")
    path = args.path
    if path == "auto":
        path = "full" if duration <= 7200 else "aggregate"
    if path == "full" and duration > 86400:
        raise HwsimError("the full path is for spans up to a day; use --path aggregate")
    from workloads.capture import load_spec
    load_spec(args.model)
    return spec, params, duration, args.start_hour * 3600.0, path


def run(args) -> int:
    from sim.cluster import make_controller, run_aggregate, run_full
    from sim.cluster.report import check_out_dir, write
    spec, params, duration, start, path = build(args)
    if args.out:
        check_out_dir(args.out)
    sweep = None
    if args.sweep:
        from sim.cluster.sweep import deployable, sweep_servers
        servers = parse_sweep(args.sweep)
        sweep = sweep_servers(spec, servers, args.policy, params, duration, start, args.seed,
                              args.dask_scheduler or "threads")
        if "servers=" not in args.row.replace(" ", ""):
            # no row size given: the detailed run is the largest deployable row of the sweep (else its largest)
            from dataclasses import replace as _replace
            spec = _replace(spec, servers=deployable(sweep) or max(servers))
    if path == "aggregate":
        # one set of tables for both runs where the policy's first setting is "uncapped" (polca, none)
        from sim.cluster.serving_load import NO_KNOBS
        from sim.cluster.sweep import tables_for
        tabs = tables_for(spec, args.policy, params, duration, start, args.seed)
        shared = all(t.settings[0] == NO_KNOBS for t in tabs.values())
        ref = run_aggregate(spec, make_controller("none"), duration, start, seed=args.seed,
                            tables=dict(tabs) if shared else None)
        res = run_aggregate(spec, make_controller(args.policy, **params), duration, start, seed=args.seed,
                            tables=dict(tabs), telemetry_delay_s=args.telemetry_delay)
    else:
        ref = run_full(spec, make_controller("none"), duration, start, seed=args.seed)
        res = run_full(spec, make_controller(args.policy, **params), duration, start, seed=args.seed,
                       telemetry_delay_s=args.telemetry_delay)
    inputs = {k: v for k, v in vars(args).items() if k not in ("run", "command")}
    doc = document("power", inputs, result=res.to_dict(ref))
    if sweep:
        doc["sweep"] = sweep
        doc["deployable_servers"] = deployable(sweep)
    paths = write(res, ref, args.out, inputs, doc, sweep, args.format or "parquet") if args.out else []
    if args.json:
        emit_json(doc)
        return 0
    s, u = res.stats(), ref.stats()
    sp = res.spec
    print(f"row: {sp['servers']} x {sp['server']}, budget {sp['budget_w'] / 1e3:.1f} kW ({sp['budget_servers']:.4g} "
          f"servers' worth), oversubscription {sp['oversubscription']:.3f}; {res.path} path, "
          f"{res.duration_s / 3600:.4g} h, policy {res.policy}")
    deps = {(d["model"], d["mapping"], d["scheduler"], d["profile"]) for d in (sp["high"], sp["low"])}
    print("serving: " + "; ".join(f"{m} {mp}, scheduler {sc}, stack {pr}" for m, mp, sc, pr in sorted(deps)))
    rows = []
    for name, key in (("mean", "mean_fraction"), ("p99", "p99_fraction"), ("peak", "peak_fraction")):
        rows.append({"metric": f"row power {name} / budget", "uncapped": f"{u[key]:.3f}", "policy": f"{s[key]:.3f}"})
    for k in [k for k in s if k.startswith("time_above_")]:
        rows.append({"metric": k.replace("_", " "), "uncapped": f"{u.get(k, float('nan')):.0f}", "policy": f"{s[k]:.0f}"})
    rows.append({"metric": "largest rise within 40 s / budget", "uncapped": f"{u['largest_spike_40s_fraction']:.3f}",
                 "policy": f"{s['largest_spike_40s_fraction']:.3f}"})
    rows.append({"metric": "energy (kWh)", "uncapped": f"{u['energy_kwh']:.1f}", "policy": f"{s['energy_kwh']:.1f}"})
    rows.append({"metric": "cap / uncap / brake events", "uncapped": "-",
                 "policy": f"{s['events'].get('cap', 0)} / {s['events'].get('uncap', 0)} / {s['brake_events']}"})
    print(table(rows, [("", "metric", "<"), ("uncapped", "uncapped", ">"), (res.policy, "policy", ">")]))
    imp = res.impact(ref)
    rows = []
    for p, c in res.classes.items():
        d = imp.get(p, {})
        for m in ("ttft", "tpot", "e2e"):
            rows.append({"class": p, "metric": m, "p50": f"{c[f'{m}_p50_s']:.4g}", "p99": f"{c[f'{m}_p99_s']:.4g}",
                         "p50 change": f"{100 * d.get(f'{m}_p50', 0):+.2f}%", "p99 change": f"{100 * d.get(f'{m}_p99', 0):+.2f}%"})
        rows.append({"class": p, "metric": "tokens/busy GPU-s", "p50": f"{c['tokens_per_busy_gpu_s']:.4g}", "p99": "",
                     "p50 change": f"{100 * d.get('throughput', 0):+.2f}%", "p99 change": ""})
    print()
    print(table(rows, [("class", "class", "<"), ("metric", "metric", "<"), ("p50 (s)", "p50", ">"), ("p99 (s)", "p99", ">"),
                       ("p50 vs uncapped", "p50 change", ">"), ("p99 vs uncapped", "p99 change", ">")]))
    if sweep:
        print()
        cols = [("servers", "servers", ">"), ("oversub", lambda r: f"{r['oversubscription']:.3f}", ">"),
                ("peak", lambda r: f"{r['peak_fraction']:.3f}", ">"), ("brakes", "brake_events", ">")]
        for p in ("high", "low"):
            if f"{p}_e2e_p50_impact" in sweep[0]:
                cols.append((f"{p} e2e p50", lambda r, p=p: f"{100 * r[f'{p}_e2e_p50_impact']:+.2f}%", ">"))
                cols.append((f"{p} thruput", lambda r, p=p: f"{100 * r[f'{p}_throughput_impact']:+.2f}%", ">"))
        print(table(sweep, cols))
        print(f"deployable servers (high p50 within 1%, throughput within 1%/2%, no brakes): {doc['deployable_servers']}")
    for path_ in paths:
        print(f"wrote {path_}")
    return 0
