"""`hwsim roofline`: the per-op roofline report (PNG chart + self-contained HTML), prefill and decode together."""
from __future__ import annotations

import copy
from pathlib import Path

from hw_models import load_device
from hw_models.stacks import STACK_HELP, STACKS
from workloads.errors import HwsimError

from .output import check_folder, check_writable, command, document, emit_json, human, make_folder, write_files
from .workload_args import (add_host_args, add_workload_args, check_model_args, host_options, parse_phases,
                            workload_from_args, workload_inputs)

ROOFLINE_PHASES = "prefill,decode"
EXAMPLES = """examples:
  hwsim roofline --model llama-3.1-8b --hardware h100
  hwsim roofline --model llama-3.1-70b --hardware h100,h200,mi300x --batch 4 --seq-len 4096 --quant fp8
  hwsim roofline --model mixtral-8x7b --hardware a100 --quant w4a16 --phases decode --out-dir reports/ --json
  hwsim roofline --module tests/data/unet_block.py:build --hardware h100,a100   # any torch module

Writes roofline-<model>.png and roofline-<model>.html into --out-dir (default ./hwsim-report). Prefill
runs a --seq-len prompt; decode one token per sequence after --seq-len cached tokens.
"""


def register(sub):
    p = command(sub, "roofline", "roofline report: per-op chart (PNG) and HTML report, several devices",
                "Roofline report of one model on one or more devices: ceilings, each op as a "
                                   "point sized by its share of step time, per-layer and per-op tables.", EXAMPLES)
    add_workload_args(p)
    p.add_argument("--hardware", required=True, help="comma-separated device presets (ids, aliases or .yaml paths)")
    p.add_argument("--phases", default=ROOFLINE_PHASES, help="phases on the chart (default: prefill,decode)")
    p.add_argument("--profile", default="eager", choices=list(STACKS), help=STACK_HELP)
    p.add_argument("--out-dir", default="hwsim-report", help="folder for the PNG and HTML (default: ./hwsim-report)")
    p.add_argument("--json", action="store_true", help="also print the report data as one JSON object")
    add_host_args(p)
    p.set_defaults(run=run)


def run(args):
    check_folder(args.out_dir, "--out-dir")          # before any work: a bad folder costs nothing
    from ..report import html as html_report, plot, roofline   # matplotlib only when a chart is drawn
    if args.phase != "prefill":
        raise HwsimError("roofline draws the phases of --phases (default prefill,decode); use --phases "
                         f"{args.phase} instead of --phase")
    phases = parse_phases(args.phases)
    devices = [load_device(h.strip()) for h in args.hardware.split(",") if h.strip()]
    if not devices:
        raise HwsimError("--hardware names no device; e.g. --hardware h100 or --hardware h100,h200")
    ids = [d.id for d in devices]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:                    # one device twice drew two identical panels and table columns
        raise HwsimError(f"--hardware names {', '.join(twice)} more than once (an alias counts as its preset); "
                         f"list each device once")
    check_model_args(args, "roofline")
    hosting = host_options(args)
    graphs = {}
    if args.module:            # one forward call of the module is the one step
        if args.phases != ROOFLINE_PHASES:
            raise HwsimError("--phases applies to --model; with --module the one step is FUNC()'s forward call: "
                             "drop --phases")
        phases = ["forward"]
        graphs["forward"] = workload_from_args(args)
    for phase in phases if not args.module else ():
        a = copy.copy(args)
        a.phase = phase
        graphs[phase] = workload_from_args(a)
    reports = roofline.build(graphs, devices, args.profile, **hosting)
    for r in reports:
        for phase, p in r.predictions.items():
            if not p.fits:
                raise HwsimError(f"{p.model} {phase} needs {human(p.memory_needed_bytes, 'B')} but {r.device.id} has "
                                 f"{human(p.memory_capacity_bytes, 'B')}; use a larger device, --quant or a smaller batch")
    out_dir = make_folder(args.out_dir, "--out-dir")
    name = Path(graphs[phases[0]].meta["model"]).name
    title = f"{name} on {', '.join(d.id for d in devices)}: batch {args.batch}, seq-len {args.seq_len}, {args.dtype}" \
        + (f", {args.quant}" if args.quant != "none" else "") if not args.module else \
        f"{name} on {', '.join(d.id for d in devices)}: one forward call, batch {graphs['forward'].meta['batch']}, " \
        f"{graphs['forward'].meta['dtype']}"
    png = plot.render(reports, title)
    inputs = {**{k: v for k, v in workload_inputs(args).items() if k != "phase"}, "phases": phases,
              "hardware": args.hardware, "profile": args.profile, **hosting}
    page = html_report.render(reports, png, inputs, title)
    png_path, html_path = out_dir / f"roofline-{name}.png", out_dir / f"roofline-{name}.html"
    for path in (png_path, html_path):       # both checked first: a refused HTML left a fresh PNG behind
        check_writable(str(path), "--out-dir")
    write_files([(str(png_path), png), (str(html_path), page)], "--out-dir")   # a failed HTML takes the PNG back
    if args.json:
        emit_json(document("roofline", inputs, png=str(png_path), html=str(html_path),
                           devices=roofline.to_json(reports)))
        return 0
    for r in reports:
        for phase, p in r.predictions.items():
            print(f"{r.device.id:16s} {phase:8s} {p.latency_s * 1e3:9.3f} ms  {p.bound:8s} {p.avg_power_w:5.0f} W  "
                  f"clock {p.clock_mhz:.0f} MHz")
    print(f"wrote {png_path} and {html_path}")
    return 0
