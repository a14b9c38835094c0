"""`hwsim simulate`, `hwsim systems`, `hwsim mappings`: a mapped step on a multi-device system."""
from __future__ import annotations

import json

from hw_models.stacks import STACK_HELP, STACKS
from hw_models.systems import load_system, system_ids
from mapping import check_fit, map_graph, strategies

from .output import check_distinct, check_writable, command, document, emit_json, human, table, write_atomic
from .workload_args import (add_host_args, add_workload_args, check_model_args, host_options, input_files,
                            workload_from_args, workload_inputs)

EXAMPLES = """examples:
  hwsim simulate --model llama-3.1-70b --system dgx-h100 --mapping tp:8 --phase decode --batch 8 --seq-len 2048
  hwsim simulate --model llama-3.1-8b --system h100 --mapping single --phase prefill --seq-len 4096 --json
  hwsim simulate --module tests/data/cnn.py:build --system dgx-h100 --mapping dp:8   # any torch module
  hwsim simulate --model llama-3.1-70b --system dgx-h100 --mapping tp:8 --trace step.json   # open in Perfetto
  hwsim simulate --model llama-3.1-70b --system dgx-h100 --mapping tp:4,pp:2,mb:8 --phase prefill --batch 8
  hwsim simulate --model qwen3-14b --system a5000-host-offload --mapping offload --phase decode --batch 8 --seq-len 200
  hwsim simulate --model bitnet-b1.58-0.7b --quant ternary --system kv260-board --mapping dataflow,lmhost \\
      --phase decode --seq-len 512

Mappings combine as tp:N (tensor parallel), pp:N (pipeline stages; mb:M micro-batches, default N) and dp:N
(replicas, each running the given batch); ep:N spreads MoE experts over N devices with data-parallel
attention (all-to-all before and after the experts); offload keeps what fits on the device and copies the other
layers from host memory over the system's host link each step (HF Accelerate device_map=auto; offload:0.5 keeps
half the layers, offload:0 none), df11 stores them DFloat11-compressed; dataflow streams an FPGA layer by layer
(lmhost: LM head on the host CPU). --trace writes every op (tp/single/ep) or every scheduled task
(pipeline stages, offload copies, dataflow segments) as a Chrome/Perfetto trace.
"""


def register(sub):
    p = command(sub, "simulate", "simulate a step mapped onto a multi-device system (discrete events)",
                "Map one traced step onto a system with a strategy and run it through the "
                                   "discrete-event simulator: latency, energy, power, utilization, link traffic.", EXAMPLES)
    add_workload_args(p)
    p.add_argument("--system", required=True, help="system preset (see `hwsim systems`) or a device preset")
    p.add_argument("--mapping", default="single", help="strategy, e.g. single or tp:8 (see `hwsim mappings`)")
    p.add_argument("--profile", default="eager", choices=list(STACKS), help=STACK_HELP)
    p.add_argument("--trace", metavar="FILE", help="write a Chrome/Perfetto trace JSON of the step (with power tracks)")
    p.add_argument("--power-csv", metavar="FILE", help="write power over time per device: device,start_s,end_s,watts")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_host_args(p)
    p.set_defaults(run=run)
    s = command(sub, "systems", "list the system presets", "List the multi-device system presets.",
                "examples:\n  hwsim systems\n  hwsim systems --json")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(run=run_systems)
    m = command(sub, "mappings", "list the mapping strategies", "List the mapping strategies.",
                "examples:\n  hwsim mappings")
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.set_defaults(run=run_mappings)


def run(args):
    from ..engine import simulate
    check_model_args(args, "simulate")
    hosting = host_options(args)
    outputs = ((args.trace, "--trace"), (args.power_csv, "--power-csv"))
    check_distinct(outputs, input_files(args))       # an output never replaces an input or the other output
    for out, option in outputs:                      # before any work
        if out:
            check_writable(out, option)
    system = load_system(args.system)
    graph = workload_from_args(args)
    mapped = map_graph(graph, system, args.mapping)
    check_fit(mapped, system)
    result = simulate(mapped, system, args.profile, trace=bool(args.trace or args.power_csv), **hosting)
    pred = result.prediction
    if args.trace:
        write_atomic(args.trace, json.dumps(result.chrome_trace()))
    if args.power_csv:
        write_atomic(args.power_csv, "device,start_s,end_s,watts\n" + "".join(
            f"{d},{a:.9g},{b:.9g},{w:.2f}\n" for d, a, b, w in result.power_timeline()))
    tokens = graph.meta["batch"] * graph.meta["new_tokens"] * result.replicas     # dp: every replica runs the batch
    summary = {"latency_s": result.latency_s, "tokens": tokens, "tokens_per_s": tokens / result.latency_s,
               "energy_j": result.energy_j, "avg_power_w": result.avg_power_w,
               "devices": result.devices, "clock_mhz": pred.clock_mhz, "utilization": result.utilization,
               "link_bytes": result.link_bytes, "engine_utilization": result.engine_utilization,
               "roofline_points": [{"op": r["name"], "intensity": r["intensity"], "attained_flops": r["attained_flops"],
                                    "share": r["share"], "bound": r["bound"]} for r in pred.ops]}
    if args.json:
        emit_json(document("simulate", {**workload_inputs(args), "system": args.system, "mapping": args.mapping,
                                        "profile": args.profile, **hosting},
                           result=summary))
        return 0
    print(f"{graph.meta['model']} {graph.meta['phase']} on {system.name} with {args.mapping}, stack {args.profile}")
    unit = "items" if graph.meta.get("traced_from") == "torch-module" else "tokens"
    print(f"  latency     {result.latency_s * 1e3:.3f} ms   ({tokens / result.latency_s:,.0f} {unit}/s)")
    print(f"  energy      {result.energy_j:.3f} J over {result.devices} device(s), {result.avg_power_w:.0f} W average")
    util = sum(result.utilization.values()) / max(len(result.utilization), 1)
    print(f"  compute     {100 * util:.1f}% busy per device; clock {pred.clock_mhz:.0f} MHz")
    if result.engine_utilization:
        devs = sorted({k.split(".")[0] for k in result.engine_utilization if not k.startswith("link.") and k != "host"})
        mean = lambda e: sum(result.engine_utilization.get(f"{d}.{e}", 0.0) for d in devs) / max(len(devs), 1)
        print(f"  engines     matrix units {100 * mean('matrix'):.1f}% busy, vector/memory ops {100 * mean('vector'):.1f}%"
              + "".join(f", {k[5:]} {100 * v:.1f}%" for k, v in result.engine_utilization.items() if k.startswith("link."))
              + (f", host {100 * result.engine_utilization['host']:.1f}%" if "host" in result.engine_utilization else ""))
    for link, nbytes in result.link_bytes.items():
        print(f"  link        {link}: {human(nbytes, 'B')} sent")
    if args.trace:
        print(f"  trace       {args.trace} (open in ui.perfetto.dev or chrome://tracing)")
    if args.power_csv:
        print(f"  power       {args.power_csv} (power over time per device)")
    return 0


def run_systems(args):
    rows = []
    for sid in system_ids():
        s = load_system(sid)
        # lists and numbers in the JSON document (aliases were one comma-joined string); joined for the table
        rows.append({"id": s.id, "aliases": list(s.aliases), "name": s.name,
                     "devices": [{"preset": g.preset, "count": g.count} for g in s.devices.values()],
                     "links": [{"name": k, "bandwidth_gbps": l.bandwidth_gbps} for k, l in s.links.items()]})
    if args.json:
        emit_json(document("systems", {}, systems=rows))
        return 0
    print(table(rows, [("id", "id", "<"), ("aliases", lambda r: ",".join(r["aliases"]), "<"),
                       ("devices", lambda r: ", ".join(f"{d['count']}x {d['preset']}" for d in r["devices"]), "<"),
                       ("links", lambda r: ", ".join(f"{x['name']} {x['bandwidth_gbps']:.0f} GB/s" for x in r["links"]),
                        "<")]))
    print("\nany device preset (see `hwsim hardware`) also works as a one-device system")
    return 0


def run_mappings(args):
    rows = [{"name": k, "description": v} for k, v in strategies().items()]
    if args.json:
        emit_json(document("mappings", {}, mappings=rows))
        return 0
    print(table(rows, [("strategy", "name", "<"), ("what it does", "description", "<")]))
    return 0
