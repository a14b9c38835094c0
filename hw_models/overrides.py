"""Hypothetical hardware: a preset with overrides, e.g. `h100+hbm.bandwidth=6.7TB/s+sm_count=66`.

`derive(base, overrides)` returns a new, validated `DeviceSpec`; `load_device` accepts the same text form
(`PRESET+KEY=VALUE+...`), so every command and study takes a hypothetical device wherever it takes a preset.
Values carry units (`6.7TB/s`, `1.5GHz`, `192GB`, `700W`, `5nm`, `128x128`); a bare number is in the key's
base unit (GB/s, MHz, GB, W, nm). Every derived peak is recomputed by construction: peaks are units x clock x
ops per unit per clock (`spec.Engine.peak`), and an override changes the parts, never a peak.

Keys (see KEYS for the list with units and ranges):
  bandwidth / hbm.bandwidth / LEVEL.bandwidth   memory bandwidth (main memory, or the named level)
  memory / capacity / LEVEL.capacity            memory capacity
  sm_count / units / arrays / cores             compute units of every matrix-class engine (and the vector
                                                engine of a GPU: one SM carries both)
  clock                                         the top clock: every engine clock scales by new/old
  array                                         systolic array size RxC (MACs per array scale with R x C)
  banks / channels                              PIM: banks (compute units, one per bank) and channels
  dsps                                          FPGA DSP slices
  sram / l2                                     on-chip SRAM: the GPU L2, the NPU/SoC buffer, the FPGA on-chip RAM
  nvlink / pcie                                 device links, datasheet (both directions) figure
  LINK.bandwidth                                a device link per direction
  tdp / power_cap                               the power cap
  node                                          process node (energy per FLOP and the area model)
  ENGINE.units / ENGINE.clock                   one engine by name
A dotted path into the preset's fields (`power.idle_w=80`, `memory.hbm.bandwidth_gbps=4000`) also works.

Calibration carry-over rule (CARRY_RULE): fitted efficiencies, floors and energies describe the micro-
architecture and its software stack, which an override keeps, so they carry over unchanged, except
  - busy static power (`static_w`, and `idle_w`) scales with the die area of the area model (leakage and clock
    tree grow with the silicon; hw_models/area.py), or with the compute units where the area model does not
    cover the device (an estimate either way);
  - energy per FLOP (`e_flop_pj`) scales with the process node as C ~ 1/sqrt(transistor density) at a flat
    FinFET supply voltage (an estimate; densities from hw_models/area.py, sourced);
  - datasheet peaks of a changed engine are dropped (no datasheet exists for a hypothetical part).
A device any of whose numbers differs from its preset is marked extrapolated (`is_extrapolated`), with the
overrides and this rule in its provenance; an override that changes nothing gives back the preset's numbers.
"""
from __future__ import annotations

import math
import re
from functools import lru_cache

from pydantic import ValidationError

from workloads.errors import HwsimError

from .spec import Calibration, DeviceSpec

CARRY_RULE = ("calibration carried over unchanged (efficiencies, floors, pJ/byte); static power scaled with "
              "die area (area model; compute units where it does not cover the device); pJ/FLOP scaled with the "
              "process node as 1/sqrt(transistor density); datasheet peaks of changed engines dropped")

# unit class -> {suffix: factor to the base unit}; base units: GB/s, GB, MHz, W, nm, count
UNITS = {
    "bandwidth": {"": 1.0, "pb/s": 1e6, "tb/s": 1e3, "gb/s": 1.0, "mb/s": 1e-3, "kb/s": 1e-6, "b/s": 1e-9,
                  "tib/s": 1024 ** 4 / 1e9, "gib/s": 1024 ** 3 / 1e9, "mib/s": 1024 ** 2 / 1e9},
    "bytes": {"": 1.0, "pb": 1e6, "tb": 1e3, "gb": 1.0, "mb": 1e-3, "kb": 1e-6, "b": 1e-9,
              "tib": 1024 ** 4 / 1e9, "gib": 1024 ** 3 / 1e9, "mib": 1024 ** 2 / 1e9, "kib": 1024 / 1e9},
    "frequency": {"": 1.0, "ghz": 1e3, "mhz": 1.0, "khz": 1e-3},
    "power": {"": 1.0, "kw": 1e3, "w": 1.0},
    "length": {"": 1.0, "nm": 1.0},
    "count": {"": 1.0, "k": 1e3},
}
EXAMPLE = {"bandwidth": "6.7TB/s", "bytes": "192GB", "frequency": "1.5GHz", "power": "700W", "length": "5nm",
           "count": "66"}
# unit class -> (lowest, highest) accepted, in base units (generous physical bounds, to catch typos)
RANGES = {"bandwidth": (1e-3, 1e6), "bytes": (1e-6, 1e5), "frequency": (1.0, 1e4), "power": (0.01, 1e5),
          "length": (3.0, 250.0), "count": (1, 10_000_000)}

# key -> (unit class, help)
KEYS = {
    "bandwidth": ("bandwidth", "main memory bandwidth"),
    "memory": ("bytes", "main memory capacity"),
    "capacity": ("bytes", "main memory capacity"),
    "sm_count": ("count", "compute units of the matrix engines (GPU: SMs)"),
    "units": ("count", "compute units of the matrix engines"),
    "arrays": ("count", "systolic arrays (NPU)"),
    "cores": ("count", "cores (CPU/SoC matrix engines)"),
    "clock": ("frequency", "top clock; every engine clock scales with it"),
    "array": ("count", "systolic array size, RxC"),
    "banks": ("count", "PIM banks with a compute unit"),
    "channels": ("count", "memory channels (PIM)"),
    "dsps": ("count", "FPGA DSP slices"),
    "sram": ("bytes", "on-chip SRAM (GPU L2, NPU buffer, FPGA on-chip RAM)"),
    "l2": ("bytes", "on-chip SRAM (GPU L2, NPU buffer, FPGA on-chip RAM)"),
    "nvlink": ("bandwidth", "NVLink, both directions (datasheet figure)"),
    "pcie": ("bandwidth", "PCIe, both directions (datasheet figure)"),
    "tdp": ("power", "power cap"),
    "power_cap": ("power", "power cap"),
    "node": ("length", "process node"),
}
LEVEL_KEYS = {"bandwidth": ("bandwidth", "bandwidth_gbps"), "capacity": ("bytes", "capacity_gb")}
ENGINE_KEYS = {"units": ("count", "units"), "clock": ("frequency", "clock_mhz")}
ONCHIP_LEVELS = ("l2", "sram", "onchip", "smem", "vmem", "cmem")
_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z/]*)\s*$", re.I)


def parse_value(key: str, text, unit: str):
    """'6.7TB/s' -> 6700.0 (GB/s) for unit 'bandwidth'; one-line error on a bad number, unit or range."""
    if unit == "count" and key.split(".")[-1] == "array":
        m = re.fullmatch(r"\s*(\d+)\s*[x*]\s*(\d+)\s*", str(text)) or re.fullmatch(r"\s*(\d+)\s*", str(text))
        if not m:
            raise HwsimError(f"override {key}={text}: write the array size as ROWSxCOLS, e.g. 128x128")
        dims = tuple(int(g) for g in m.groups())
        dims = dims * 2 if len(dims) == 1 else dims
        if not all(1 <= d <= 4096 for d in dims):
            raise HwsimError(f"override {key}={text}: array sides must be 1..4096")
        return dims
    if isinstance(text, bool):
        raise HwsimError(f"override {key}={text}: not a number")
    if isinstance(text, (int, float)):
        value, suffix = float(text), ""
    else:
        m = _NUMBER.match(str(text))
        if not m:
            raise HwsimError(f"override {key}={text}: not a number with a unit; write e.g. {key}={EXAMPLE[unit]}")
        value, suffix = float(m.group(1)), m.group(2).lower()
    table = UNITS[unit]
    if suffix not in table:
        kinds = [u for u, t in UNITS.items() if suffix in t and suffix]
        what = f" is a {kinds[0]} unit" if kinds else " is not a unit hwsim knows"
        raise HwsimError(f"override {key}={text}: '{suffix}'{what}; {key} takes a {unit}, e.g. {key}={EXAMPLE[unit]}")
    value *= table[suffix]
    lo, hi = RANGES[unit]
    if not lo <= value <= hi or not math.isfinite(value):
        raise HwsimError(f"override {key}={text}: out of range for a {unit} ({_fmt(lo, unit)} to {_fmt(hi, unit)})")
    if unit == "count":
        if abs(value - round(value)) > 1e-9:
            raise HwsimError(f"override {key}={text}: must be a whole number")
        value = int(round(value))
    return value


def _fmt(v, unit):
    base = {"bandwidth": "GB/s", "bytes": "GB", "frequency": "MHz", "power": "W", "length": "nm", "count": ""}[unit]
    return f"{v:g}{base}"


def split_overrides(text: str):
    """'h100+hbm.bandwidth=6.7TB/s+sm_count=66' -> ('h100', [('hbm.bandwidth', '6.7TB/s'), ('sm_count', '66')])."""
    parts = [p.strip() for p in str(text).split("+")]
    base, pairs = parts[0], []
    if not base:
        raise HwsimError(f"'{text}': name a preset before the overrides, e.g. h100+clock=1.5GHz")
    for part in parts[1:]:
        if "=" not in part or not part.split("=", 1)[0].strip() or not part.split("=", 1)[1].strip():
            raise HwsimError(f"'{text}': '{part}' is not KEY=VALUE; write e.g. {base}+hbm.bandwidth=6.7TB/s")
        k, v = part.split("=", 1)
        pairs.append((k.strip().lower(), v.strip()))
    return base, pairs


def has_overrides(name) -> bool:
    return isinstance(name, str) and "+" in name


def canonical(base_id: str, pairs) -> str:
    return "+".join([base_id] + [f"{k}={v}" for k, v in pairs])


def is_extrapolated(device) -> bool:
    """True when any number of the device differs from the preset it was derived from."""
    return device.provenance.get("extrapolated", "") == "true"


def overrides_of(device) -> dict:
    return {k[len("override:"):]: v for k, v in device.provenance.items() if k.startswith("override:")}


def base_preset(device) -> str:
    return device.provenance.get("derived_from", device.id)


def process_node_nm(device):
    """The process node of a device: an override's, else the area model's table (None if unknown)."""
    if "process_node_nm" in device.provenance:
        return float(device.provenance["process_node_nm"])
    if device.power.extra.get("process_node_nm"):          # a preset file may state its own node
        return float(device.power.extra["process_node_nm"])
    from .area import preset_node_nm
    return preset_node_nm(base_preset(device))


# --- applying overrides to the raw tree -----------------------------------------------------------------
def _main_level(tree) -> str:
    return next(iter(tree["memory"]))


def _matrix_engines(tree, device_class):
    kinds = {"gpu": ("matrix",), "npu": ("systolic", "matrix"), "soc": ("matrix", "systolic", "simd"),
             "pim": ("pim",), "fpga": ("dsp",), "cpu": ("simd", "matrix")}[device_class]
    names = [n for n, e in tree["engines"].items() if e["kind"] in kinds]
    return names or list(tree["engines"])


class _Tree:
    def __init__(self, device: DeviceSpec):
        self.t = device.model_dump(by_alias=True)
        self.cls = device.device_class
        self.changed_engines: set = set()
        self.params: dict = {}           # cost/power parameters that move with the overrides
        self.unit_ratio = 1.0
        self.node = None

    def set(self, path, value, engine=None):
        node = self.t
        for p in path[:-1]:
            node = node[p]
        if node.get(path[-1]) != value:
            node[path[-1]] = value
            if engine:
                self.changed_engines.add(engine)

    def level(self, key, name):
        levels = self.t["memory"]
        if name in ("hbm", "memory", "main", "dram") and name not in levels:
            return _main_level(self.t)
        if name not in levels:
            raise HwsimError(f"override {key}: {self.t['id']} has no memory level '{name}' "
                             f"(it has {', '.join(levels)})")
        return name

    def units(self, key, n, engines):
        for name in engines:
            old = self.t["engines"][name]["units"]
            if name == engines[0] and old:
                self.unit_ratio = n / old
            self.set(("engines", name, "units"), n, name)

    def apply(self, key, raw):
        t, cls = self.t, self.cls
        if key in KEYS:
            unit = KEYS[key][0]
            v = parse_value(key, raw, unit)
            if key == "bandwidth":
                self.set(("memory", _main_level(t), "bandwidth_gbps"), v)
            elif key in ("memory", "capacity"):
                self.set(("memory", _main_level(t), "capacity_gb"), v)
            elif key in ("sm_count", "units", "arrays", "cores"):
                engines = _matrix_engines(t, cls)
                if cls == "gpu":            # an SM carries the tensor cores and the vector lanes
                    engines += [n for n, e in t["engines"].items() if e["kind"] == "vector"]
                self.units(key, v, engines)
            elif key == "clock":
                old = t["power"]["extra"].get("max_clock_mhz") or max(e["clock_mhz"] for e in t["engines"].values())
                if v != old:
                    for name, e in t["engines"].items():
                        self.set(("engines", name, "clock_mhz"), e["clock_mhz"] * v / old, name)
                    t["power"]["extra"]["max_clock_mhz"] = v
                    if t["power"].get("min_clock_mhz") and t["power"]["min_clock_mhz"] > v:
                        t["power"]["min_clock_mhz"] = v * 0.2
            elif key == "array":
                rows, cols = v
                arrays = [n for n, e in t["engines"].items() if e.get("array_rows")]
                if not arrays:
                    raise HwsimError(f"override array: {t['id']} has no systolic array (array sizes apply to NPUs)")
                for name in arrays:
                    e = t["engines"][name]
                    r0, c0 = e["array_rows"], e.get("array_cols") or e["array_rows"]
                    if (rows, cols) != (r0, c0):
                        scale = rows * cols / (r0 * c0)
                        self.set(("engines", name, "ops_per_unit_per_clock"),
                                 {d: x * scale for d, x in e["ops_per_unit_per_clock"].items()}, name)
                        self.set(("engines", name, "array_rows"), rows, name)
                        self.set(("engines", name, "array_cols"), cols, name)
                        self.unit_ratio *= scale
            elif key == "banks":
                pims = [n for n, e in t["engines"].items() if e["kind"] == "pim"]
                if not pims:
                    raise HwsimError(f"override banks: {t['id']} is not a PIM device")
                self.units(key, v, pims)
                mem = t["memory"][_main_level(t)]
                if mem.get("channels"):
                    if v % mem["channels"]:
                        raise HwsimError(f"override banks={raw}: must be a multiple of the {mem['channels']} channels")
                    self.set(("memory", _main_level(t), "banks_per_channel"), v // mem["channels"])
            elif key == "channels":
                mem = t["memory"][_main_level(t)]
                old = mem.get("channels")
                if not old:
                    raise HwsimError(f"override channels: {t['id']} gives no memory channel count")
                if v != old:
                    # same channel width and pin rate: bandwidth (and PIM banks) scale with the channels
                    self.set(("memory", _main_level(t), "channels"), v)
                    self.set(("memory", _main_level(t), "bandwidth_gbps"), mem["bandwidth_gbps"] * v / old)
                    for n, e in t["engines"].items():
                        if e["kind"] == "pim":
                            self.units(key, e["units"] * v // old, [n])
            elif key == "dsps":
                dsps = [n for n, e in t["engines"].items() if e["kind"] == "dsp"]
                if not dsps:
                    raise HwsimError(f"override dsps: {t['id']} is not an FPGA")
                self.units(key, v, dsps)
            elif key in ("sram", "l2"):
                levels = [n for n in t["memory"] if n in ONCHIP_LEVELS]
                for n in levels:
                    self.set(("memory", n, "capacity_gb"), v)
                if cls in ("npu", "soc"):
                    self.params["buffer_mb"] = v * 1e3
                elif cls == "fpga":
                    self.params["onchip_mb"] = v * 1e3
                elif not levels:
                    raise HwsimError(f"override {key}: {t['id']} has no on-chip memory level to resize")
            elif key in ("nvlink", "pcie"):
                if key not in t["links"]:
                    raise HwsimError(f"override {key}: {t['id']} has no {key} link (it has "
                                     f"{', '.join(t['links']) or 'none'})")
                self.set(("links", key, "bandwidth_gbps"), v / 2)
            elif key in ("tdp", "power_cap"):
                self.set(("power", "tdp_w"), v)
            elif key == "node":
                self.node = v
            return
        parts = key.split(".")
        if len(parts) == 2 and parts[1] in LEVEL_KEYS and parts[0] not in t["engines"] and parts[0] not in t["links"]:
            unit, field = LEVEL_KEYS[parts[1]]
            self.set(("memory", self.level(key, parts[0]), field), parse_value(key, raw, unit))
            return
        if len(parts) == 2 and parts[0] in t["links"] and parts[1] == "bandwidth":
            self.set(("links", parts[0], "bandwidth_gbps"), parse_value(key, raw, "bandwidth"))
            return
        if len(parts) == 2 and parts[0] in t["engines"] and parts[1] in ENGINE_KEYS:
            unit, field = ENGINE_KEYS[parts[1]]
            v = parse_value(key, raw, unit)
            if field == "units":
                self.units(key, v, [parts[0]])
            else:
                self.set(("engines", parts[0], field), v, parts[0])
            return
        self.raw_path(key, parts, raw)

    def raw_path(self, key, parts, raw):
        node, path = self.t, []
        for p in parts:
            if not isinstance(node, dict) or p not in node:
                raise HwsimError(f"unknown override '{key}' for {self.t['id']}; use one of {', '.join(KEYS)}, "
                                 f"LEVEL.bandwidth/capacity, ENGINE.units/clock, or a dotted path into the preset")
            path.append(p)
            node = node[p]
        if isinstance(node, bool) or not isinstance(node, (int, float)):
            raise HwsimError(f"override '{key}': that field is not a number")
        try:
            v = float(raw)
        except ValueError:
            raise HwsimError(f"override {key}={raw}: a dotted path takes a plain number in the preset's unit") from None
        if not math.isfinite(v) or v <= 0:
            raise HwsimError(f"override {key}={raw}: must be a positive number")
        value = int(v) if isinstance(node, int) and v == int(v) else v
        engine = path[1] if path[0] == "engines" else None
        self.set(tuple(path), value, engine)


def derive(base, overrides, name: str = None) -> DeviceSpec:
    """A device from a preset (id, alias, path or DeviceSpec) and overrides ({key: value} or [(key, value)])."""
    from .presets import load_device
    device = load_device(base) if isinstance(base, str) else base
    pairs = list(overrides.items()) if isinstance(overrides, dict) else list(overrides)
    pairs = [(str(k).strip().lower(), v) for k, v in pairs]
    if not pairs:
        return device
    tree = _Tree(device)
    for k, v in pairs:
        tree.apply(k, v)
    t = tree.t
    for engine in tree.changed_engines:
        t["engines"][engine]["datasheet_tops"] = {}
    # calibration carry-over (CARRY_RULE)
    node_old = process_node_nm(device)
    cal = device.calibration
    params = dict(cal.params) if cal else {}
    extra = dict(tree.params)
    if tree.node is not None and node_old and tree.node != node_old:
        from .area import energy_scale
        from .power import CLASS_POWER_DEFAULTS, POWER_DEFAULTS
        e_flop = params.get("e_flop_pj") or {**POWER_DEFAULTS, **CLASS_POWER_DEFAULTS.get(device.device_class, {})}["e_flop_pj"]
        extra["e_flop_pj"] = e_flop * energy_scale(node_old, tree.node)
    elif tree.node is not None and not node_old:
        raise HwsimError(f"override node: the process node of {device.id} is not known, so energy cannot be scaled "
                         f"from it; derive from a preset with a known node (see hw_models/area.py)")
    extra = {k: v for k, v in extra.items() if params.get(k) != v}
    if extra:
        params.update(extra)
        t["calibration"] = (Calibration(date=cal.date, script=cal.script, data=cal.data, params=params).model_dump()
                            if cal else {"date": "n/a", "script": "hw_models/overrides.py",
                                         "data": "derived by override", "params": params})
    provenance = dict(device.provenance)
    provenance.update({f"override:{k}": str(v) for k, v in pairs})
    provenance["derived_from"] = base_preset(device)
    if tree.node is not None:
        provenance["process_node_nm"] = f"{tree.node:g}"
    old = device.model_dump(by_alias=True)
    compare = dict(t)
    changed = any(compare[k] != old[k] for k in ("engines", "memory", "power", "links", "calibration")) or \
        (tree.node is not None and tree.node != node_old)
    provenance["extrapolated"] = "true" if changed or is_extrapolated(device) else "false"
    if changed:
        provenance["calibration_rule"] = CARRY_RULE
    t["id"] = name or canonical(device.id, [(k, v) for k, v in pairs])
    t["aliases"] = []
    t["name"] = f"{device.name} with {', '.join(f'{k}={v}' for k, v in pairs)}"
    t["provenance"] = provenance
    derived = _validated(t)
    ratio = _static_ratio(device, derived, tree.unit_ratio) if changed else 1.0
    if ratio != 1.0:
        from .power import CLASS_POWER_DEFAULTS, POWER_DEFAULTS
        static = params.get("static_w")
        if static is None:
            static = {**POWER_DEFAULTS, **CLASS_POWER_DEFAULTS.get(device.device_class, {})}["static_w"]
        if static is not None:
            params["static_w"] = static * ratio
            t["calibration"] = (Calibration(date=cal.date, script=cal.script, data=cal.data, params=params).model_dump()
                                if cal else {"date": "n/a", "script": "hw_models/overrides.py",
                                             "data": "derived by override", "params": params})
        t["power"]["idle_w"] = t["power"]["idle_w"] * ratio
        derived = _validated(t)
    return derived


def _validated(t) -> DeviceSpec:
    try:
        return DeviceSpec.model_validate(t)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise HwsimError(f"{t['id']}: {'.'.join(map(str, err['loc']))}: {err['msg'].lower()} "
                         f"(got {err.get('input')!r})") from None


def _static_ratio(base: DeviceSpec, derived: DeviceSpec, unit_ratio: float) -> float:
    """How static power scales: with the die area where the area model covers both devices (leakage and clock
    tree grow with the silicon), else with the compute units."""
    from .area import chip_cost
    a, b = chip_cost(base), chip_cost(derived)
    if a and b:
        return b["area_mm2"] / a["area_mm2"]
    return unit_ratio


@lru_cache(maxsize=256)
def load_derived(text: str) -> DeviceSpec:
    """`PRESET+KEY=VALUE+...` (what `load_device` hands over when the name has a '+')."""
    base, pairs = split_overrides(text)
    return derive(base, pairs)


# --- systems ------------------------------------------------------------------------------------------------
def derive_system(base, overrides):
    """A system from a system preset and overrides: `nvlink=900GB/s` (datasheet, both directions) or
    `LINK.bandwidth=` (per direction), `LINK.latency_us=`, `LINK.efficiency=`, `GROUP.count=`; any other key
    is a device override applied to every device group (`GROUP.KEY=` to one group)."""
    from .systems import SystemSpec, load_system
    system = load_system(base) if isinstance(base, str) else base
    pairs = list(overrides.items()) if isinstance(overrides, dict) else list(overrides)
    if not pairs:
        return system
    t = system.model_dump(exclude_none=True)
    device_pairs = {g: [] for g in t["devices"]}
    for key, raw in pairs:
        key = str(key).strip().lower()
        parts = key.split(".")
        if key in t["links"] or (len(parts) == 2 and parts[0] in t["links"]):
            link = parts[0]
            field = parts[1] if len(parts) == 2 else "datasheet"
            if field in ("bandwidth", "datasheet"):
                v = parse_value(key, raw, "bandwidth")
                t["links"][link]["bandwidth_gbps"] = v / 2 if field == "datasheet" else v
            elif field in ("latency_us", "efficiency"):
                try:
                    v = float(raw)
                except ValueError:
                    raise HwsimError(f"override {key}={raw}: a plain number") from None
                if not v > 0 or (field == "efficiency" and v > 1):
                    raise HwsimError(f"override {key}={raw}: out of range")
                t["links"][link][field] = v
            else:
                raise HwsimError(f"override {key}: a system link takes bandwidth, latency_us or efficiency")
        elif len(parts) == 2 and parts[0] in t["devices"] and parts[1] == "count":
            t["devices"][parts[0]]["count"] = parse_value(key, raw, "count")
            per = t["devices"][parts[0]].get("per_node")
            if per and per > t["devices"][parts[0]]["count"]:
                t["devices"][parts[0]]["per_node"] = t["devices"][parts[0]]["count"]
        elif len(parts) >= 2 and parts[0] in t["devices"]:
            device_pairs[parts[0]].append((".".join(parts[1:]), raw))
        else:
            for g in device_pairs:
                device_pairs[g].append((key, raw))
    from .presets import load_device
    for g, dp in device_pairs.items():
        if dp:
            text = canonical(t["devices"][g]["preset"], dp)
            load_device(text)                          # a bad override is an error now
            t["devices"][g]["preset"] = text
    t["id"] = canonical(system.id, pairs)
    t["aliases"] = []
    t["name"] = f"{system.name} with {', '.join(f'{k}={v}' for k, v in pairs)}"
    t["provenance"] = {**system.provenance, **{f"override:{k}": str(v) for k, v in pairs},
                       "derived_from": system.id}
    from pydantic import ValidationError as _VE
    try:
        return SystemSpec.model_validate(t)
    except _VE as exc:
        err = exc.errors()[0]
        raise HwsimError(f"{t['id']}: {'.'.join(map(str, err['loc']))}: {err['msg'].lower()}") from None


@lru_cache(maxsize=256)
def load_derived_system(text: str):
    base, pairs = split_overrides(text)
    return derive_system(base, pairs)
