"""`hwsim hardware`: the device presets with their derived peaks."""
from __future__ import annotations


from hw_models import load_device, preset_ids

from .output import command, document, emit_json, human, table

EXAMPLES = """examples:
  hwsim hardware
  hwsim hardware --class gpu
  hwsim hardware --json
"""


def register(sub):
    p = command(sub, "hardware", "list the hardware presets (GPUs, NPUs, PIM, FPGAs, CPUs)",
                "List the built-in device presets with derived peak rates and memory.", EXAMPLES)
    p.add_argument("--class", dest="device_class", help="only gpu, npu, pim, fpga, cpu or soc presets")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(run=run)


def run(args):
    rows = []
    for preset in preset_ids():
        d = load_device(preset)
        if args.device_class and d.device_class != args.device_class:
            continue
        mem = d.main_memory
        rows.append({"id": d.id, "aliases": ",".join(d.aliases), "class": d.device_class, "name": d.name,
                     "bf16_tflops": d.peak("bf16") / 1e12 or d.peak("fp16") / 1e12,
                     "int8_tops": d.peak("int8") / 1e12, "memory_gb": mem.capacity_gb,
                     "bandwidth_gbps": mem.bandwidth_gbps, "tdp_w": d.power.tdp_w,
                     "calibrated": (d.calibration.date if d.calibration.method == "fitted" else "estimate")
                     if d.calibration else ""})
    if args.json:
        emit_json(document("hardware", {"class": args.device_class}, hardware=rows))
        return 0
    print(table(rows, [
        ("id", "id", "<"), ("aliases", "aliases", "<"), ("class", "class", "<"),
        ("bf16/fp16 TFLOPS", lambda r: f"{r['bf16_tflops']:.1f}", ">"), ("int8 TOPS", lambda r: f"{r['int8_tops']:.1f}", ">"),
        ("memory", lambda r: human((r["memory_gb"] or 0) * 1e9, "B"), ">"),
        ("bandwidth", lambda r: f"{r['bandwidth_gbps']:.0f} GB/s", ">"), ("TDP", lambda r: f"{r['tdp_w']:.0f} W", ">"),
        ("calibrated", "calibrated", "<"),
    ]))
    print(f"\n{len(rows)} presets; peaks are derived from units x clock x ops per clock; --hardware also takes a preset .yaml path")
    return 0
