"""Systems: devices (presets, with counts) and the links between them, loaded from presets/systems/*.yaml."""
from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError

from workloads.errors import HwsimError

from .presets import PRESET_DIR, load_device
from .sourced import resolve

SYSTEM_DIR = PRESET_DIR / "systems"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    devices: Dict[str, DeviceGroup]
    links: Dict[str, SystemLink] = {}
    provenance: Dict[str, str] = {}

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
    if not path.is_file():
        raise HwsimError(f"system file '{name}' not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        raise HwsimError(f"{path.name}: not valid YAML; fix the file") from None
    if not isinstance(raw, dict):
        raise HwsimError(f"{path.name}: a system preset must be a YAML mapping")
    sources = raw.pop("sources", {}) or {}
    tree, provenance = resolve(raw, sources, path.name)
    try:
        system = SystemSpec.model_validate({**tree, "provenance": provenance})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise HwsimError(f"{path.name}: {'.'.join(map(str, err['loc']))}: {err['msg'].lower()}") from None
    for group in system.devices.values():
        load_device(group.preset)           # a wrong preset name is an error now, not mid-simulation
    return system
