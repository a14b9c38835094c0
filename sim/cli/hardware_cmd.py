"""`hwsim hardware`: the device presets with their derived peaks."""
from __future__ import annotations


from hw_models import load_device, preset_ids
from hw_models.spec import DEVICE_CLASSES

from .output import command, document, emit_json, human, table

EXAMPLES = """examples:
  hwsim hardware
  hwsim hardware --class gpu
  hwsim hardware --json
  hwsim hardware h100 h100+hbm.bandwidth=6.7TB/s+sm_count=66 tpu-v4+array=256x256   # with area, cost, $/h

Named devices (presets, preset files, or hypothetical ones: PRESET+KEY=VALUE, see docs/sweep.md) are shown with
their derived peaks, whether they are extrapolated from their preset, and the area/cost model's die area, chip
cost and price per hour (docs/area-model.md).
"""


def register(sub):
    p = command(sub, "hardware", "list the hardware presets (GPUs, NPUs, PIM, FPGAs, CPUs)",
                "List the built-in device presets with derived peak rates and memory.", EXAMPLES)
    p.add_argument("devices", nargs="*", metavar="DEVICE",
                   help="show these devices (presets or PRESET+KEY=VALUE overrides) with area and cost")
    p.add_argument("--class", dest="device_class", choices=DEVICE_CLASSES, type=str.lower,
                   help="only presets of this class")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(run=run)


def run(args):
    if args.devices:
        return run_named(args)
    rows = []
    for preset in preset_ids():
        d = load_device(preset)
        if args.device_class and d.device_class != args.device_class:
            continue
        mem = d.main_memory
        rows.append({"id": d.id, "aliases": list(d.aliases), "class": d.device_class, "name": d.name,
                     "bf16_tflops": d.peak("bf16") / 1e12 or d.peak("fp16") / 1e12,
                     "int8_tops": d.peak("int8") / 1e12, "memory_gb": mem.capacity_gb,
                     "bandwidth_gbps": mem.bandwidth_gbps, "tdp_w": d.power.tdp_w,
                     "calibrated": (d.calibration.date if d.calibration.method == "fitted" else "estimate")
                     if d.calibration else ""})
    if args.json:
        emit_json(document("hardware", {"class": args.device_class}, hardware=rows))
        return 0
    print(table(rows, [
        ("id", "id", "<"), ("aliases", lambda r: ",".join(r["aliases"]), "<"), ("class", "class", "<"),
        ("bf16/fp16 TFLOPS", lambda r: f"{r['bf16_tflops']:.1f}", ">"), ("int8 TOPS", lambda r: f"{r['int8_tops']:.1f}", ">"),
        ("memory", lambda r: human((r["memory_gb"] or 0) * 1e9, "B"), ">"),
        ("bandwidth", lambda r: f"{r['bandwidth_gbps']:.0f} GB/s", ">"), ("TDP", lambda r: f"{r['tdp_w']:.0f} W", ">"),
        ("calibrated", "calibrated", "<"),
    ]))
    print(f"\n{len(rows)} presets; peaks are derived from units x clock x ops per clock; --hardware also takes a preset .yaml path")
    return 0


def run_named(args):
    from hw_models.area import device_economics
    from hw_models.overrides import is_extrapolated, overrides_of
    rows = []
    for name in args.devices:
        d = load_device(name)
        mem = d.main_memory
        econ = device_economics(d)
        rows.append({"device": name, "id": d.id, "class": d.device_class, "name": d.name,
                     "bf16_tflops": d.peak("bf16") / 1e12 or d.peak("fp16") / 1e12, "int8_tops": d.peak("int8") / 1e12,
                     "memory_gb": mem.capacity_gb, "bandwidth_gbps": mem.bandwidth_gbps, "tdp_w": d.power.tdp_w,
                     "extrapolated": is_extrapolated(d), "overrides": overrides_of(d),
                     "area_mm2": econ.get("area_mm2"), "chip_usd": econ.get("chip_usd"),
                     "usd_per_hour": econ.get("usd_per_hour"), "price_basis": econ.get("price_basis")})
    if args.json:
        emit_json(document("hardware", {"devices": args.devices}, hardware=rows))
        return 0

    def money(v, fmt):
        return "-" if v is None or v != v else fmt.format(v)
    print(table(rows, [
        ("device", "device", "<"), ("class", "class", "<"),
        ("bf16/fp16 TFLOPS", lambda r: f"{r['bf16_tflops']:.1f}", ">"), ("int8 TOPS", lambda r: f"{r['int8_tops']:.1f}", ">"),
        ("memory", lambda r: human((r["memory_gb"] or 0) * 1e9, "B"), ">"),
        ("bandwidth", lambda r: f"{r['bandwidth_gbps']:.0f} GB/s", ">"), ("TDP", lambda r: f"{r['tdp_w']:.0f} W", ">"),
        ("extrapolated", lambda r: "yes" if r["extrapolated"] else "no", "<"),
        ("die area", lambda r: money(r["area_mm2"], "{:.0f} mm2"), ">"),
        ("chip cost", lambda r: money(r["chip_usd"], "${:,.0f}"), ">"),
        ("$/hour", lambda r: money(r["usd_per_hour"], "{:.2f}") + (f" ({r['price_basis']})" if r["price_basis"] else ""), ">"),
    ]))
    return 0
