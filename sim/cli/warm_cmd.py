"""`hwsim warm`: build the graph templates of model presets ahead of time, so later commands start fast."""
from __future__ import annotations

import sys
import time

from workloads import capture
from workloads.capture import PHASES, load_spec
from workloads.errors import HwsimError
from workloads.zoo import preset_names

from .output import command, document, emit_json
from .workload_args import parse_phases

EXAMPLES = """examples:
  hwsim warm                                  # every dense preset, all phases
  hwsim warm --models llama-3.1-70b,qwen2.5-72b --phases decode

A template is the model's step as exact polynomials of (batch, tokens, context), fitted to a few real
traces; with it cached (in $HWSIM_CACHE, default ~/.cache/hwsim) `hwsim predict` needs no torch and starts
in well under a second. MoE models have none (they are traced each time).
"""


def register(sub):
    p = command(sub, "warm", "pre-build graph templates of model presets (fast start-up later)",
                "Trace each model preset a few times and store its graph templates.", EXAMPLES)
    p.add_argument("--models", default="all", help="comma-separated presets or config paths (default: all presets)")
    p.add_argument("--phases", default=",".join(PHASES), help="phases (default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def _compile_bytecode():
    """Write hwsim's bytecode once: with PYTHONDONTWRITEBYTECODE set (as on CI machines) every start would
    otherwise compile ~60 modules from source (~60 ms). Python still reads .pyc files it did not write."""
    import compileall
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    for package in ("sim", "hw_models", "workloads", "mapping"):
        if (root / package).is_dir():
            compileall.compile_dir(str(root / package), quiet=1)


def run(args):
    from workloads import template
    from workloads.version import __version__
    phases = parse_phases(args.phases)
    models = preset_names() if args.models.strip().lower() == "all" else \
        list(dict.fromkeys(m.strip() for m in args.models.split(",") if m.strip()))
    if not models:
        raise HwsimError("--models names no model; e.g. --models llama-3.1-8b,qwen2.5-7b (or all)")
    specs = {name: load_spec(name) for name in models}       # every name checked before any tracing
    problem = template.cache_problem()
    if problem:
        raise HwsimError(f"{problem}; set HWSIM_CACHE to a writable folder (templates would be rebuilt every run)")
    _compile_bytecode()
    rows = []
    for i, (name, spec) in enumerate(specs.items(), 1):
        for phase in phases:
            start = time.perf_counter()
            tpl = capture._template(spec, phase) if spec.moe is None else None
            rows.append({"model": name, "phase": phase, "template": tpl is not None,
                         "saved": tpl is not None and template.is_saved(spec, phase, __version__),
                         "seconds": round(time.perf_counter() - start, 3)})
        if sys.stderr.isatty():
            print(f"\r{i}/{len(models)} models", end="", file=sys.stderr)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    unsaved = [f"{r['model']} {r['phase']}" for r in rows if r["template"] and not r["saved"]]
    if args.json:
        emit_json(document("warm", {"models": args.models, "phases": phases, "cache": str(template.cache_dir())},
                           templates=rows))
    else:
        built = sum(r["template"] for r in rows)
        print(f"{built - len(unsaved)} of {len(rows)} model/phase templates ready in {template.cache_dir()} "
              f"({len(rows) - built} traced on demand: MoE or not polynomial) in "
              f"{sum(r['seconds'] for r in rows):.1f} s")
    if unsaved:
        raise HwsimError(f"{len(unsaved)} template(s) could not be saved in {template.cache_dir()} ({unsaved[0]}"
                         f"{', ...' if len(unsaved) > 1 else ''}); check that the folder is writable and has space")
    return 0
