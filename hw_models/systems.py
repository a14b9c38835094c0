"""Systems: devices (presets, with counts) and the links between them, loaded from presets/systems/*.yaml."""
from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError, model_validator

from workloads.errors import HwsimError

from .presets import PRESET_DIR, load_device, validation_message
from .sourced import resolve

SYSTEM_DIR = PRESET_DIR / "systems"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DeviceGroup(_Strict):
    preset: str
    count: PositiveInt = 1
    per_node: PositiveInt = None             # devices that share the intra-node links (default: all of them)


class CustomAllReduce(_Strict):
    """A serving stack's small-message all-reduce kernel on this link (e.g. vLLM's one-shot custom all-reduce):
    time = latency + bytes / bandwidth, used up to max_bytes (above it the stack falls back to NCCL)."""
    latency_us: PositiveFloat
    bandwidth_gbps: PositiveFloat
    max_bytes: PositiveFloat


class SystemLink(_Strict):
    connects: List[str]                      # the two device groups it joins (the same name twice: within a group)
    topology: Literal["switch", "ring", "p2p"] = "switch"
    scope: Literal["intra", "inter"] = "intra"    # within a node, or between nodes
    bandwidth_gbps: PositiveFloat            # per direction, per device
    latency_us: PositiveFloat = 1.0
    efficiency: float = Field(1.0, gt=0, le=1)    # fraction of bandwidth_gbps the collective library attains
    custom_all_reduce: Optional[CustomAllReduce] = None
    pageable_gbps: Optional[PositiveFloat] = None   # attained host-to-device copy rate from pageable host memory


class SystemSpec(_Strict):
    id: str
    aliases: List[str] = []
    name: str
    devices: Dict[str, DeviceGroup] = Field(min_length=1)
    links: Dict[str, SystemLink] = {}
    provenance: Dict[str, str] = {}

    @model_validator(mode="after")
    def _links_join_groups(self):
        for name, link in self.links.items():
            if len(link.connects) != 2:
                raise ValueError(f"links.{name}.connects must name two device groups (the same one twice for a link "
                                 f"within a group), got {link.connects}")
            unknown = [g for g in link.connects if g not in self.devices]
            if unknown:
                raise ValueError(f"links.{name}.connects names '{unknown[0]}', which is not a device group of this "
                                 f"system ({', '.join(self.devices)})")
        for name, group in self.devices.items():
            if group.per_node is not None and group.per_node > group.count:
                raise ValueError(f"devices.{name}.per_node ({group.per_node}) is above its count ({group.count})")
        return self

    def device(self, group: str):
        return load_device(self.devices[group].preset)

    def link_within(self, group: str, span: int = 1):
        """The link a collective over `span` devices of a group runs on: the node's own link while it fits in
        a node, else the inter-node link (the ring's slowest hop)."""
        per_node = self.devices[group].per_node or self.devices[group].count
        scope = "inter" if span > per_node else "intra"
        links = [l for l in self.links.values() if l.connects == [group, group]]
        return next((l for l in links if l.scope == scope), links[0] if links else None)


def system_ids() -> list:
    return sorted(p.stem for p in SYSTEM_DIR.glob("*.yaml"))


@lru_cache(maxsize=1)
def _aliases() -> dict:
    table = {}
    for path in SYSTEM_DIR.glob("*.yaml"):
        raw = yaml.safe_load(path.read_text()) or {}
        for name in [path.stem, raw.get("id", path.stem)] + list(raw.get("aliases", [])):
            table[str(name).lower()] = path
    return table


def as_system(system) -> SystemSpec:
    """`system` as the Python API takes it: a preset id or alias, a system .yaml path (str or PathLike) or a
    SystemSpec; anything else is refused in one line."""
    import os
    if isinstance(system, SystemSpec):
        return system
    if isinstance(system, os.PathLike):
        system = os.fspath(system)
    from .spec import DeviceSpec
    if isinstance(system, DeviceSpec):           # a loaded (maybe edited) device: its preset would drop the edits
        raise HwsimError(f"system must be a system; a DeviceSpec ({system.id}) has no links or groups: pass its preset "
                         f"name '{system.id}' (a one-device system) or time it with api.predict(model, device, ...)")
    if not isinstance(system, str):
        raise HwsimError(f"system must be a system or device preset name (`hwsim systems`), a system .yaml path or a "
                         f"SystemSpec, got {type(system).__name__}")
    return load_system(system)


def load_system(name: str) -> SystemSpec:
    """A system preset id or alias, or a path to a system .yaml; a single device preset is a 1-device system.
    `SYSTEM+KEY=VALUE+...` derives a hypothetical system (hw_models/overrides.py derive_system)."""
    if isinstance(name, str) and "+" in name:
        from .overrides import load_derived_system
        return load_derived_system(name.strip())
    path = Path(name)
    if not (name.endswith((".yaml", ".yml")) or "/" in name):
        key = name.strip().lower()
        if key not in _aliases():
            try:
                device = load_device(name)
            except HwsimError:
                close = difflib.get_close_matches(key, list(_aliases()), n=3, cutoff=0.5)
                hint = f"did you mean {', '.join(close)}? " if close else ""
                raise HwsimError(f"unknown system '{name}'; {hint}run `hwsim systems` for the list, or name a device "
                                 f"preset for a single-device system") from None
            return SystemSpec(id=device.id, name=device.name, devices={"device": DeviceGroup(preset=device.id)})
        path = _aliases()[key]
    if path.is_dir():
        raise HwsimError(f"system '{name}' is a folder; pass a system id (see `hwsim systems`) or a system .yaml file")
    if not path.is_file():
        raise HwsimError(f"system file '{name}' not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise HwsimError(f"{path.name}: not valid YAML{at}; fix the file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HwsimError(f"cannot read {name}: {getattr(exc, 'strerror', None) or exc}") from None
    if not isinstance(raw, dict):
        raise HwsimError(f"{path.name}: a system preset must be a YAML mapping")
    if "engines" in raw and "devices" not in raw:      # a device preset file: a one-device system, as device ids are
        device = load_device(str(path))
        return SystemSpec(id=device.id, name=device.name, devices={"device": DeviceGroup(preset=str(path.resolve()))})
    sources = raw.pop("sources", {}) or {}
    tree, provenance = resolve(raw, sources, path.name)
    try:
        system = SystemSpec.model_validate({**tree, "provenance": provenance})
    except ValidationError as exc:
        raise HwsimError(f"{path.name}: {validation_message(exc)}") from None
    for group in system.devices.values():
        load_device(group.preset)           # a wrong preset name is an error now, not mid-simulation
    return system
