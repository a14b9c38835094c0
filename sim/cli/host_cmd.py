"""`hwsim probe-host` (measure this machine's host costs into a host file) and `hwsim hosts` (the host presets)."""
from __future__ import annotations

import re
import sys

from hw_models.host import COSTS, OPTIONAL_COSTS, HostModel, host_ids, load_host, write_host_file

from .output import command, document, emit_json, table, write_atomic

PROBED_OPTIONAL = ("py_op", "py_call")   # the optional costs a probe measures (cudnn_new_shape: a preset default)

PROBE_EXAMPLES = """examples:
  hwsim probe-host --out myhost.yaml        # then: hwsim predict ... --profile hf-generate --host myhost.yaml
  hwsim probe-host --id lab-box --json
  hwsim probe-host --scan-cpus --out myhost.yaml   # also each CPU's Python speed: do they differ (shared VM)?

Measures, in at most 10 s (--budget; the imports of torch and transformers and CUDA's start included), what
the host spends per view op, kernel launch, library call (GEMM, attention), module call, host-device sync,
CUDA-graph replay and generate() step, and with a GPU the Python work model code adds per kernel and per
model-code Python call. Without a GPU only the CPU side is measured (launches are the CPU dispatch of an op; sync
and graph replays are 0). transformers is imported last and waited for only as long as the budget allows: where
its import is slower, py_op, py_call and generate()'s step are not measured (a stand-in gives the step; with a GPU
py_op/py_call are estimated from the preset host probed with transformers, scaled by this machine's module cost)
and the file's sources.not_measured and machine.not_measured say so. The file records the machine (CPU, load average,
Python, torch, transformers, GPU, probe_seconds) beside the numbers; a line on stderr says how long each part of
the probe took and what was not measured.
"""


def register(sub):
    p = command(sub, "probe-host", "measure this machine's host costs (launches, syncs, module calls) into a host file",
                "Measure the host's per-op, per-module and per-step costs on this machine (at most 10 s).",
                PROBE_EXAMPLES)
    p.add_argument("--out", metavar="FILE", help="write the host file here (default: print it)")
    p.add_argument("--id", help="the host's id in the file (default: probed-<hostname>)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the YAML file")
    p.add_argument("--budget", type=float, default=10.0, metavar="SECONDS",
                   help="wall-clock budget of one probe, imports and CUDA init included (default 10); its timed "
                        "loops shrink to fit it")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="probe N times (1-10) and keep each cost's least value: a busy moment only adds time")
    p.add_argument("--cpu", type=int, metavar="N",
                   help="probe on CPU N only (Linux; a shared VM's vCPUs can run Python at different speeds). On "
                        "the lent cloud VMs measured so far a vCPU's speed itself moved within minutes and a run "
                        "pinned to one vCPU was slower than its probe, so pinning is not a cure there")
    p.add_argument("--scan-cpus", action="store_true",
                   help="also time a Python loop on each CPU in turn (~30 ms each) and write each CPU's speed and "
                        "their spread into the file's machine facts (cpu_call_ns, cpu_speed_spread)")
    p.add_argument("--combine", nargs="+", metavar="FILE",
                   help="measure nothing: write each cost's least value over these probe files (same machine)")
    p.set_defaults(run=run_probe)
    h = command(sub, "hosts", "list the host presets", "List the host presets (--host NAME) and their costs.",
                "examples:\n  hwsim hosts\n  hwsim hosts --json")
    h.add_argument("--json", action="store_true", help="print one JSON object")
    h.set_defaults(run=run_hosts)


_LEAST = re.compile(r"^least of \d+ probes: ")
_LEAST_STEADY = re.compile(r"^least of (\d+) probes \((\d+) of them unsteady\)")


def _probes(run) -> int:
    """How many probes a run stands for: 1, or a combined file's count (machine.probes)."""
    n = run[4].get("probes", 1)
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1


def _unsteady(run) -> int:
    text = str(run[4].get("steadiness", ""))
    found = _LEAST_STEADY.match(text)
    return int(found.group(2)) if found else int(text.startswith("unsteady"))


def least(runs):
    """Several probes of one machine as one host: each cost's least value (noise from other work on the machine
    only adds time), its source saying so; the machine facts of the first probe, with the probes' count."""
    host_id, name, _, sources, machine = runs[0]
    # an optional cost (py_op, py_call) that only some probes measured is the least of those
    names = [k for k in COSTS + tuple(OPTIONAL_COSTS) if all(k in r[2] for r in runs) or
             (k in OPTIONAL_COSTS and any(k in r[2] for r in runs))]
    costs, out_sources = {}, {}
    for k in names:
        pool = [r for r in runs if k in r[2]]
        if k == "step":
            # generate()'s own step where some probe timed it, not the stand-in's (their import came too late)
            pool = [r for r in pool if "generate_step" not in r[4].get("not_measured", [])] or pool
        if k in OPTIONAL_COSTS:
            # a residual cost (py_op: the layer time left after the probe's own launch/library costs) comes out 0
            # where those costs were caught high: a failed reading, not the least value
            pool = [r for r in pool if r[2][k][0] > 0] or pool
        best = min(pool, key=lambda r: r[2][k][0])
        value, src = best[2][k]
        key = f"least_{k}"
        costs[k] = (value, key)
        # a file that is itself a least-of counts its probes, and its source is not wrapped twice
        out_sources[key] = f"least of {sum(_probes(r) for r in pool)} probes: " + _LEAST.sub("", best[3][src])
    total = sum(_probes(r) for r in runs)
    machine = dict(machine, probes=total)
    machine.pop("spread_p90_p10", None)         # one probe's loops; the least values come from several
    unsteady = sum(_unsteady(r) for r in runs)
    if any("steadiness" in r[4] for r in runs):
        machine["steadiness"] = f"least of {total} probes ({unsteady} of them unsteady)"
    missing = [k for k in PROBED_OPTIONAL if k not in costs]
    if missing:
        out_sources["not_measured"] = f"{', '.join(missing)}: measured by none of the {total} probes"
    # the first probe's list, less the optional costs another probe measured
    rest = missing + [k for k in machine.get("not_measured", []) if k not in OPTIONAL_COSTS and
                      not (k == "generate_step" and "stand-in" not in out_sources[costs["step"][1]])]
    if rest:
        machine["not_measured"] = rest
    else:
        machine.pop("not_measured", None)
    return host_id, name, costs, out_sources, machine


def combine_files(paths, host_id=None):
    """`least` over host files `hwsim probe-host` wrote (each cost's value and source read back from its file)."""
    from hw_models.host import load_host
    from workloads.errors import HwsimError
    from pathlib import Path
    runs, versions, machines, seen = [], {}, {}, {}
    for path in paths:
        where = Path(path).resolve() if Path(path).exists() else path
        if where in seen:
            raise HwsimError(f"--combine names {path} twice ({seen[where]}); give each probe file once")
        seen[where] = path
        h = load_host(path)
        machine = tuple(str(h.machine.get(k)) for k in ("cpu", "gpu"))
        machines.setdefault(machine, path)
        if len(machines) > 1:
            (a, pa), (b, pb) = machines.items()
            raise HwsimError(f"{pa} and {pb} were probed on different machines (cpu, gpu: {', '.join(a)} and "
                             f"{', '.join(b)}); --combine keeps each cost's least over probes of one machine")
        versions.setdefault(int(h.machine.get("probe_version", 1) or 1), path)
        if len(versions) > 1:
            # a stack's host_op_scale is fitted per probe method: a least-of over two methods has no method
            (a, pa), (b, pb) = versions.items()
            raise HwsimError(f"{pa} and {pb} were written by different probe methods (probe_version {a} and {b}); "
                             f"combine files of one method")
        sources = {f"p{i}": str(v) for i, v in enumerate(h.provenance.values())}
        by_cost = {k: (v, f"c_{k}") for k, v in h.costs_us.items()}
        srcs = {f"c_{k}": str(h.provenance.get(f"costs_us.{k}", h.provenance.get(k, path))) for k in h.costs_us}
        runs.append((host_id or h.id, h.name, by_cost, {**sources, **srcs}, dict(h.machine)))
    return least(runs)


def run_probe(args):
    import time
    from ..probe_host import probe, process_age_s
    age = process_age_s()
    fresh = age < 5.0           # this process is the command (not a test or a script calling main())
    # the budget counts from the process's start (this command's whole wall time) where the process is new
    started = time.perf_counter() - (age if fresh else 0.0)
    from workloads.errors import HwsimError
    if args.out:
        from .output import check_writable
        check_writable(args.out)          # a folder, a missing folder or no permission: before the probe's seconds
    if not 1 <= args.repeat <= 10:
        raise HwsimError(f"--repeat takes 1 to 10 probes, got {args.repeat}")
    if not 0 < args.budget <= 600:
        raise HwsimError(f"--budget takes more than 0 and at most 600 seconds (e.g. --budget 10), got {args.budget}")
    if args.cpu is not None and args.combine:
        raise HwsimError("--cpu pins a probe; --combine measures nothing: give one or the other")
    if args.out and args.combine:
        from ..outputs import check_distinct
        check_distinct([(args.out, "--out")], [(f, "--combine") for f in args.combine])
    from ..probe_host import allowed_cpus
    cpus = allowed_cpus()                         # before --cpu narrows them: --scan-cpus times every one
    if args.cpu is not None:
        from ..probe_host import pin_cpu
        pin_cpu(args.cpu)
    if args.combine:
        host_id, name, costs, sources, machine = combine_files(args.combine, args.id)
    else:
        def report(line):
            print(line, file=sys.stderr, flush=True)
        from ..probe_host import wait_for_import
        runs = []
        for i in range(args.repeat):
            waited = wait_for_import()
            if waited:
                report(f"probe-host: waited {waited:.2f} s for the transformers import the probe before gave up "
                       f"on (no probe times anything beside it)")
            runs.append(probe(args.id, budget_s=args.budget, started=started if i == 0 else None, report=report))
        host_id, name, costs, sources, machine = least(runs) if len(runs) > 1 else runs[0]
        if args.cpu is not None:
            machine = dict(machine, pinned_cpu=args.cpu)
        if args.scan_cpus:
            from ..probe_host import cpu_speeds
            speeds = cpu_speeds(cpus=cpus)        # ends on the CPUs the process had (one, with --cpu)
            if speeds:
                machine = dict(machine, cpu_call_ns={str(k): v for k, v in speeds.items()},
                               cpu_speed_spread=round(max(speeds.values()) / min(speeds.values()), 3))
    text = write_host_file(args.out or "FILE", host_id, name, costs, sources, machine)
    if args.json:
        emit_json(document("probe-host", {"id": args.id, "out": args.out}, host=host_id, name=name,
                           costs_us={k: v for k, (v, _) in costs.items()},
                           sources={k: sources[s] for k, (_, s) in costs.items()}, machine=machine))
    if args.out:
        write_atomic(args.out, text)
        if not args.json:
            print(f"wrote {args.out} ({machine.get('probe_seconds', 0)} s): " +
                  ", ".join(f"{k} {costs[k][0]:.3g} us" for k in COSTS), file=sys.stderr)
    elif not args.json:
        sys.stdout.write(text)
    spread = machine.get("cpu_speed_spread")
    if spread and args.cpu is None:
        from hw_models.host import CPU_SPREAD
        if spread > CPU_SPREAD:
            print(f"probe-host: this machine's CPUs ran a Python loop {spread:.2f}x apart (machine.cpu_call_ns): a "
                  f"probe describes the CPU it ran on at that moment, and host-bound times can be off by as much; "
                  f"probe before and after the runs you predict", file=sys.stderr)
    if str(machine.get("steadiness", "steady")).startswith("unsteady"):
        from ..probe_host import STEADY_SPREAD
        print(f"probe-host: this host was {machine['steadiness']} while probed: its loops' batches varied more "
              f"than {STEADY_SPREAD - 1:.0%} (p90 / p10, machine.spread_p90_p10), as on a VM sharing its CPU with "
              f"other work; model "
              f"time on it can vary as much from one run to the next, so probe again before and after the runs "
              f"you predict", file=sys.stderr)
    if fresh and not args.combine:
        # the interpreter's exit would collect every torch and transformers object one by one (1-2 s on a 2-core
        # VM, after the probe's budget); frozen, they are left to the OS (0.2 s)
        import gc
        gc.freeze()
        from ..probe_host import import_pending
        if import_pending():
            # a transformers import the probe gave up waiting for: the interpreter's shutdown would wait for it
            # (or tear it down mid-import); the file is written, so leave now
            import os
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
    return 0


def run_hosts(args):
    rows = []
    for hid in host_ids():
        h = load_host(hid)
        every = {**OPTIONAL_COSTS, **h.costs_us}
        every["py_call"] = HostModel(h).s["py_call"] * 1e6 * h.speed    # derived from py_op where not given
        rows.append({"id": h.id, "name": h.name, **{k: every[k] for k in COSTS + tuple(OPTIONAL_COSTS)},
                     "variants": dict(h.variants)})
    if args.json:
        emit_json(document("hosts", {}, hosts=rows))
        return 0
    print(table(rows, [("id", "id", "<")] + [(f"{k} us", (lambda r, k=k: f"{r[k]:.3g}"), ">")
                                             for k in COSTS + tuple(OPTIONAL_COSTS)]))
    for r in rows:
        for code, other in r["variants"].items():
            print(f"\n{r['id']}: --impl {code} graphs default to {other} (the same machine, measured or fitted "
                  f"for that code)", end="")
    print("\n\nany file written by `hwsim probe-host --out FILE` also works as --host FILE")
    return 0
