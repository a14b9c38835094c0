"""`hwsim predict`: latency, energy and power of one step on one device, or of a CSV of cases."""
from __future__ import annotations

import sys
import time

from hw_models import load_device
from hw_models.stacks import STACK_HELP, STACKS, require_host_issued
from workloads.errors import HwsimError, not_applicable

from ..predict import predict
from .output import check_writable, command, document, emit_json, human, write_atomic
from .workload_args import (add_host_args, add_workload_args, check_model_args, given_workload_options, host_options,
                            workload_from_args, workload_inputs)

EXAMPLES = """examples:
  hwsim predict --model llama-3.1-8b --hardware h100 --phase decode --batch 32 --seq-len 2048
  hwsim predict --model llama-3.1-70b --hardware h100 --phase prefill --seq-len 4096 --quant fp8 --json
  hwsim predict --cases cases.csv --out results.csv
  hwsim predict --cases cases.csv --out results.parquet
  hwsim predict --module tests/data/vit.py:build --hardware h100     # any torch module: FUNC() -> (module, args)
  hwsim predict --model qwen2.5-7b --impl hf --hardware h100 --phase decode --batch 8 --profile hf-generate

--cases: a CSV (UTF-8, Excel's byte-order mark and CRLF accepted) or Parquet table with columns
model,hardware,phase,batch,seq_len and optionally dtype,quant,kv_dtype,group_size,context,impl (hwsim or hf;
default --impl),profile (a software stack; default --profile); any other
column (e.g. an id to key rows by) is carried through. The output names each row's profile (a profile column is
added where the input has none) and adds latency_s, tokens_per_s, energy_j,
avg_power_w, peak_power_w, clock_mhz, bound, fits, memory_gb and status: "ok", "error: line N: why", or
"does not fit in device memory: ..." (then no latency). A bad row never stops the others.
seq_len is the prompt for prefill and the cached context for decode (one new token per sequence).
--out FILE.parquet writes Parquet (typed columns); any other name CSV.
"""


def register(sub):
    p = command(sub, "predict", "predict latency, energy and power of a step on a device",
                "Predict one traced step (or every case of a CSV) on a device preset.", EXAMPLES)
    add_workload_args(p, model_required=False)
    p.add_argument("--hardware", help="device preset id or alias (see `hwsim hardware`) or a preset .yaml path")
    p.add_argument("--profile", default="eager", choices=list(STACKS), help=STACK_HELP)
    p.add_argument("--cases", metavar="FILE", help="batch mode: a CSV or Parquet table, one case per row")
    p.add_argument("--out", metavar="FILE",
                   help="batch mode: output CSV, or Parquet if FILE ends in .parquet (default: CSV on stdout); "
                        "single case: JSON file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_host_args(p)
    p.add_argument("--first-pass", action="store_true",
                   help="host-issued profiles: the step as a fresh process runs it at attention shapes it has not "
                        "run (HF generate() decode past the lengths the process ran: on H100/H200 torch's cuDNN "
                        "SDPA builds a graph per new shape on the host); default: a warm process")
    p.set_defaults(run=run)


def run(args):
    if args.cases:
        return run_cases(args)
    if not (args.model or args.module) or not args.hardware:
        raise HwsimError("predict needs --model (or --module) and --hardware (or --cases CSV)")
    check_model_args(args, "predict")
    hosting = host_options(args)
    _check_first_pass(args)
    if args.out and args.out.lower().endswith((".csv", ".parquet", ".pq")):
        raise HwsimError(f"--out {args.out}: one case is written as JSON; name the file .json (CSV and Parquet are "
                         f"for --cases)")
    if args.out:
        check_writable(args.out, "--out")          # before any work: a bad path costs nothing
    device = load_device(args.hardware)
    graph = workload_from_args(args)
    p = predict(graph, device, args.profile, **hosting, first_pass=args.first_pass)
    if not p.fits:
        raise HwsimError(f"{p.model} {p.phase} needs {human(p.memory_needed_bytes, 'B')} of memory but {device.id} has "
                         f"{human(p.memory_capacity_bytes, 'B')}; use a larger device, --quant, or a smaller batch/context")
    if args.json or args.out:
        emit_json(document("predict", {**workload_inputs(args), "hardware": args.hardware, "profile": args.profile,
                                       **hosting, **({"first_pass": True} if args.first_pass else {})},
                           result=p.summary(), ops=p.ops), args.out)
        return 0
    if graph.meta.get("traced_from") == "torch-module":
        print(f"{p.model} forward on {device.name} (batch {graph.meta['batch']}, {graph.meta['dtype']}, "
              f"{human(graph.meta['params'])} parameters; stack {args.profile})")
        print(f"  latency     {p.latency_s * 1e3:.3f} ms   ({graph.meta['batch'] / p.latency_s:,.0f} items/s)")
    else:
        print(f"{p.model} {p.phase} on {device.name} (batch {graph.meta['batch']}, seq-len {graph.meta['seq_len']}, "
              f"{graph.meta['dtype']}{', ' + graph.meta.get('quant') if graph.meta.get('quant', 'none') != 'none' else ''}; "
              f"stack {args.profile})")
        print(f"  latency     {p.latency_s * 1e3:.3f} ms   "
              f"({graph.meta['batch'] * graph.meta['new_tokens'] / p.latency_s:,.0f} tokens/s)")
    print(f"  energy      {p.energy_j:.3f} J")
    print(f"  power       {p.avg_power_w:.0f} W average, {p.peak_power_w:.0f} W peak op; clock {p.clock_mhz:.0f} MHz"
          f"{' (held down by the ' + format(device.power.tdp_w, '.0f') + ' W cap)' if p.power_capped else ''}")
    print(f"  bound       {p.bound}  ({human(p.flops)}FLOP, {human(p.bytes, 'B')} moved)")
    if p.host:
        print(f"  host        {p.host}: {p.host_busy_s * 1e3:.3f} ms issuing; the GPU waits "
              f"{p.device_idle_s * 1e3:.3f} ms ({100 * p.device_idle_s / p.latency_s:.0f}% of the step)" +
              (f"; probed model-code costs x{p.host_op_scale:.2f} ({args.profile}'s host_op_scale for this probe "
               f"method)" if p.host_op_scale != 1 else ""))
    print(f"  memory      {human(p.memory_needed_bytes, 'B')} of {human(p.memory_capacity_bytes, 'B')}")
    return 0


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name one file (a link or another spelling of it included)."""
    import os
    try:
        return os.path.samefile(a, b)
    except OSError:          # either does not exist (yet): not the same file
        return False


def _check_first_pass(args):
    if args.first_pass:
        require_host_issued(args.profile, "--first-pass")


def run_cases(args):
    stray = given_workload_options(args) + [o for o, v in (("--hardware", args.hardware), ("--json", args.json),
                                                           ("--module", args.module)) if v]
    if stray:
        raise not_applicable(stray, "with --cases: each row gives its own model, hardware, phase, batch, seq_len "
                                    "(and optional dtype, quant, kv_dtype, group_size, context, impl, first_pass, "
                                    "profile)", "drop {it}")
    if args.out:
        check_writable(args.out, "--out")
        if _same_file(args.out, args.cases):
            raise HwsimError(f"--out {args.out} is the --cases file itself: writing the results would replace the "
                             f"cases; pick another output path")
    from ..batch_predict import predict_cases      # pandas only for cases tables: single predicts start faster
    from ..cases import encode, read_cases
    frame = read_cases(args.cases)
    # with a profile column each row checks its own stack (first_pass); --host applies if any row issues from a host
    profiles = None
    if "profile" in frame.columns:
        profiles = {str(p).strip().lower() or args.profile for p in frame["profile"].tolist()}
    else:
        _check_first_pass(args)
    hosting = host_options(args, profiles)
    start = time.perf_counter()
    results = predict_cases(frame, args.profile, impl=args.impl, **hosting, first_pass=args.first_pass)
    payload = encode(results, args.out)
    failed = int(results["status"].str.startswith("error").sum())
    unfit = int(results["status"].str.startswith("does not fit").sum())
    rate = len(results) / max(time.perf_counter() - start, 1e-9)
    counts = (f"{len(results) - failed - unfit} ok" + (f", {failed} with errors" if failed else "")
              + (f", {unfit} do not fit" if unfit else ""))
    if args.out:
        write_atomic(args.out, payload, "--out")
        shown = f"{rate:,.0f}" if rate >= 10 else f"{rate:.2g}"        # a slow first HF trace: 0.4, not 0
        print(f"{len(results)} cases -> {args.out}: {counts} ({shown} cases/s)", file=sys.stderr)
    else:
        sys.stdout.write(payload)
        if failed:
            print(f"{len(results)} cases: {counts} (see the status column)", file=sys.stderr)
    return 0
