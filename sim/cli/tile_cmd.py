"""`hwsim tile`: search the GEMM tiling of an NPU or FPGA engine, with a time limit and progress."""
from __future__ import annotations

import sys

from hw_models import load_device
from hw_models.tiling import search
from workloads.errors import HwsimError

from .arg_types import non_negative_float, positive_float, positive_int
from .output import command, document, emit_json

EXAMPLES = """examples:
  hwsim tile --hardware neupims-npu --m 256 --n 12288 --k 4096
  hwsim tile --hardware tpu-v4 --m 4096 --n 4096 --k 4096 --buffer-mb 16 --time-limit 1 --json
"""


def register(sub):
    p = command(sub, "tile", "search the GEMM tiling for a systolic-array or DSP engine",
                "Enumerate on-chip block sizes and loop orders for one GEMM on an array engine; "
                                   "report the fastest within a time limit.", EXAMPLES)
    p.add_argument("--hardware", required=True, help="device preset with a systolic engine (e.g. neupims-npu, tpu-v4)")
    for dim in ("m", "n", "k"):
        p.add_argument(f"--{dim}", type=positive_int, required=True, help=f"GEMM size {dim.upper()}")
    p.add_argument("--buffer-mb", type=positive_float, default=16.0, help="on-chip buffer for the blocks (default 16 MB)")
    p.add_argument("--bytes", type=positive_float, default=2, help="bytes per element (default 2; 0.5 for int4)")
    p.add_argument("--time-limit", type=non_negative_float, default=2.0,
                   help="seconds to search (default 2; 0 evaluates only the default tiling)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args):
    device = load_device(args.hardware)
    engine = next((e for e in device.engines.values() if e.array_rows and e.array_cols), None)
    if engine is None:
        raise HwsimError(f"{device.id} has no engine with an array geometry (array_rows/array_cols); pick an NPU")
    bw = device.memory[engine.memory].bandwidth_gbps if engine.memory else device.main_memory.bandwidth_gbps

    def progress(i, total, best):
        if sys.stderr.isatty():
            print(f"\r{i}/{total} tilings, best {best.time_s * 1e6:.1f} us" if best else f"\r{i}/{total}",
                  end="", file=sys.stderr)

    r = search(args.m, args.n, args.k, engine.array_rows, engine.array_cols, engine.units, engine.clock_mhz * 1e6,
               bw * 1e9, args.buffer_mb * 1e6, args.bytes, args.time_limit, progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    b = r["best"]
    if args.json:
        emit_json(document("tile", vars(args) | {"run": None}, best=b.__dict__,
                           **{k: v for k, v in r.items() if k != "best"}))
        return 0
    print(f"{args.m}x{args.n}x{args.k} on {device.name} ({engine.units} x {engine.array_rows}x{engine.array_cols})")
    # three significant figures: a small GEMM's times are well under 0.1 us (they printed as 0.0)
    print(f"  best tiling  tm={b.tm} tn={b.tn} tk={b.tk}, {b.order} order: {b.time_s * 1e6:.3g} us "
          f"(compute {b.compute_s * 1e6:.3g}, memory {b.memory_s * 1e6:.3g}, {b.traffic_bytes / 1e6:.3g} MB moved)")
    print(f"  searched     {r['evaluated']} of {r['candidates']} candidates ({r['fitting']} fit the buffer) in "
          f"{r['seconds']:.2f} s{'' if r['complete'] else ' - stopped at the time limit'}")
    return 0
