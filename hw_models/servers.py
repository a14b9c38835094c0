"""Servers as units of cluster power: a system preset's GPUs plus the rest of the box (CPUs, memory, NVSwitches,
NICs, fans, storage) behind power supplies, loaded from presets/servers/*.yaml, every number with its source.

Wall power of a server with GPU power G (all its GPUs, W):

    rest(G)  = non_gpu_idle_w + (non_gpu_max_w - non_gpu_idle_w) * u,   u = (G - G_idle) / (G_tdp - G_idle) in [0, 1]
    wall(G)  = (G + rest(G)) / psu_efficiency

(fans, CPUs feeding the GPUs and NICs follow the GPU load; u is that load). `provisioned_w` is the nameplate
maximum a row budget counts per server. `gpu_power` overrides the GPU power model's parameters for cluster studies
(the A100's clock-power curve, `gamma`). Any system preset can be a server too (`load_server` falls back to it):
then the rest of the box draws as much as its GPUs at full load (POLCA: GPUs are about half of server power) and
30% of that when idle, both estimates, said so in the server's `sources`.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from workloads.errors import HwsimError

from .presets import PRESET_DIR, aliases_of
from .sourced import resolve

SERVER_DIR = PRESET_DIR / "servers"
POWER_KEYS = ("provisioned_w", "psu_efficiency", "non_gpu_idle_w", "non_gpu_max_w")
GPU_POWER_KEYS = ("gamma", "static_w", "e_flop_pj", "e_byte_pj")


@dataclass(frozen=True)
class ServerSpec:
    id: str
    name: str
    system: str                       # system preset id
    gpus: int
    gpu_preset: str
    gpu_tdp_w: float
    gpu_idle_w: float
    provisioned_w: float
    psu_efficiency: float
    non_gpu_idle_w: float
    non_gpu_max_w: float
    gpu_power: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    def wall_w(self, gpu_w):
        """Wall power (W) of the server at total GPU power `gpu_w` (scalar or numpy array)."""
        import numpy as np
        g = np.asarray(gpu_w, dtype=float)
        lo, hi = self.gpus * self.gpu_idle_w, self.gpus * self.gpu_tdp_w
        u = np.clip((g - lo) / (hi - lo), 0.0, 1.0)
        rest = self.non_gpu_idle_w + (self.non_gpu_max_w - self.non_gpu_idle_w) * u
        out = (g + rest) / self.psu_efficiency
        return float(out) if out.ndim == 0 else out

    def gpu_min_clock_mhz(self) -> float:
        """The lowest SM clock of the server's GPUs (the device preset's `power.min_clock_mhz`, else 20% of its
        highest clock, as hw_models/power.py takes it): a clock cap below it runs at it."""
        from .power import PowerModel
        from .systems import load_system
        return float(PowerModel(_gpu_group(load_system(self.system))[2]).f_min)

    def gpu_max_clock_mhz(self) -> float:
        """The highest SM clock of the server's GPUs (the clock the power model runs uncapped)."""
        from .power import PowerModel
        from .systems import load_system
        return float(PowerModel(_gpu_group(load_system(self.system))[2]).f_max)

    @property
    def idle_wall_w(self) -> float:
        return self.wall_w(self.gpus * self.gpu_idle_w)

    def summary(self) -> dict:
        return {"id": self.id, "system": self.system, "gpus": self.gpus, "gpu": self.gpu_preset,
                "provisioned_w": self.provisioned_w, "idle_wall_w": round(self.idle_wall_w, 1),
                "full_load_wall_w": round(self.wall_w(self.gpus * self.gpu_tdp_w), 1),
                "gpu_share_at_full_load": round(self.gpus * self.gpu_tdp_w / self.psu_efficiency / self.provisioned_w, 3),
                "gpu_power": dict(self.gpu_power)}


def _files() -> dict:
    return {p.stem: p for p in sorted(SERVER_DIR.glob("*.yaml"))}


@lru_cache(maxsize=1)
def alias_table() -> dict:
    return aliases_of(_files())


def server_ids() -> list:
    return sorted(_files())


def load_server(name: str) -> ServerSpec:
    """A server preset id/alias, a server preset .yaml path, or any system preset (generic non-GPU power)."""
    if not isinstance(name, str) or not name.strip():
        raise HwsimError("no server given; pass a server preset (e.g. dgx-a100-80gb) or a system preset")
    key = name.strip().lower()
    path = Path(name)
    if name.endswith((".yaml", ".yml")):
        if not path.is_file():
            raise HwsimError(f"server preset file '{name}' not found")
        return _load(str(path.resolve()))
    table = alias_table()
    if key in table:
        return _load(str(table[key]))
    from .systems import load_system
    try:
        system = load_system(name)
    except HwsimError:
        close = difflib.get_close_matches(key, list(table), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise HwsimError(f"unknown server '{name}'; {hint}use one of {', '.join(server_ids())} or a system preset "
                         f"(see `hwsim systems`)") from None
    return _generic(system)


def _gpu_group(system):
    group = next(iter(system.devices))
    return system.devices[group].count, system.devices[group].preset, system.device(group)


def _generic(system) -> ServerSpec:
    count, preset, dev = _gpu_group(system)
    gpu_max = count * dev.power.tdp_w
    src = ("estimate (generic server from a system preset): the rest of the box draws as much as its GPUs at full "
           "load (POLCA: GPUs are about half of server power, seed-papers section 5 [preprint]) and 30% of that at idle")
    eff = 0.94
    return ServerSpec(system.id, f"{system.name} (generic server)", system.id, count, preset, dev.power.tdp_w,
                      dev.power.idle_w, 2 * gpu_max / eff, eff, 0.3 * gpu_max, gpu_max, {},
                      {k: src for k in POWER_KEYS})


@lru_cache(maxsize=32)
def _load(path: str) -> ServerSpec:
    where = Path(path).name
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError:
        raise HwsimError(f"{where}: not valid YAML; fix the file") from None
    if not isinstance(raw, dict):
        raise HwsimError(f"{where}: a server preset must be a YAML mapping")
    sources = raw.pop("sources", {}) or {}
    tree, provenance = resolve(raw, sources, where)
    for k in ("id", "name", "system", "power"):
        if k not in tree:
            raise HwsimError(f"{where}: missing '{k}'")
    power = tree["power"] or {}
    missing = [k for k in POWER_KEYS if k not in power]
    if missing:
        raise HwsimError(f"{where}: power is missing {', '.join(missing)}")
    extra = set(power) - set(POWER_KEYS)
    if extra:
        raise HwsimError(f"{where}: unknown power field(s) {', '.join(sorted(extra))}")
    gp = tree.get("gpu_power") or {}
    bad = set(gp) - set(GPU_POWER_KEYS)
    if bad:
        raise HwsimError(f"{where}: unknown gpu_power field(s) {', '.join(sorted(bad))}; allowed: {', '.join(GPU_POWER_KEYS)}")
    from .systems import load_system
    system = load_system(tree["system"])
    count, preset, dev = _gpu_group(system)
    p = {k: float(power[k]) for k in POWER_KEYS}
    if not 0.5 < p["psu_efficiency"] <= 1.0:
        raise HwsimError(f"{where}: psu_efficiency must be in (0.5, 1], got {p['psu_efficiency']}")
    if not 0 <= p["non_gpu_idle_w"] <= p["non_gpu_max_w"]:
        raise HwsimError(f"{where}: need 0 <= non_gpu_idle_w <= non_gpu_max_w")
    full = (count * dev.power.tdp_w + p["non_gpu_max_w"]) / p["psu_efficiency"]
    if full > p["provisioned_w"] * 1.001:
        raise HwsimError(f"{where}: full load draws {full:.0f} W, over provisioned_w {p['provisioned_w']:.0f} W")
    return ServerSpec(tree["id"], tree["name"], system.id, count, preset, dev.power.tdp_w, dev.power.idle_w,
                      p["provisioned_w"], p["psu_efficiency"], p["non_gpu_idle_w"], p["non_gpu_max_w"],
                      {k: float(v) for k, v in gp.items()}, provenance)
