"""`hwsim warm`: build the graph templates of model presets ahead of time, so later commands start fast."""
from __future__ import annotations

import sys
import time

from workloads import capture
from workloads.capture import PHASES, load_spec
from workloads.zoo import preset_names

from .output import command, document, emit_json

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
    _compile_bytecode()
    models = preset_names() if args.models == "all" else [m.strip() for m in args.models.split(",") if m.strip()]
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    rows = []
    for i, name in enumerate(models, 1):
        spec = load_spec(name)
        for phase in phases:
            start = time.perf_counter()
            tpl = capture._template(spec, phase) if spec.moe is None else None
            rows.append({"model": name, "phase": phase, "template": tpl is not None,
                         "seconds": round(time.perf_counter() - start, 3)})
        if sys.stderr.isatty():
            print(f"\r{i}/{len(models)} models", end="", file=sys.stderr)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    if args.json:
        emit_json(document("warm", {"models": args.models, "phases": phases}, templates=rows))
        return 0
    built = sum(r["template"] for r in rows)
    print(f"{built} of {len(rows)} model/phase templates ready ({len(rows) - built} traced on demand: MoE or not "
          f"polynomial) in {sum(r['seconds'] for r in rows):.1f} s")
    return 0
