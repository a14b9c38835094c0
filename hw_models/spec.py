"""Typed, validated device descriptions (parameters only: no cost logic here).

Peak rates are derived from micro-architecture (units x clock x ops per unit per clock); the
datasheet figures are kept beside them as checks (tests compare the two).
"""
from __future__ import annotations

import math
from typing import Dict, List, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator, model_validator

DEVICE_CLASSES = ("gpu", "npu", "pim", "fpga", "cpu", "soc")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


MAX_PARAM = 1e15


def check_numbers(values: Dict[str, float]) -> Dict[str, float]:
    """Free-form numeric parameters (`extra`, fitted `params`): finite, not negative and at most 1e15 (the largest in
    any preset is ~1e7: a byte count; beyond that a product of them overflows to an infinite time or energy); an
    efficiency (a name with 'eff') is a fraction in (0, 1]. Cost models divide by these and scale time with them,
    so a zero or negative one would give a division by zero or a negative time far from the file that caused it."""
    for name, v in values.items():
        if not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v}")
        if abs(v) > MAX_PARAM:
            raise ValueError(f"{name} = {v:g} is far beyond any hardware parameter (at most {MAX_PARAM:g}): check "
                             f"its units")
        if "eff" in name and not 0 < v <= 1:
            raise ValueError(f"{name} is an efficiency: it must be above 0 and at most 1, got {v}")
        if v < 0:
            raise ValueError(f"{name} must not be negative, got {v}")
    return values


class Engine(_Strict):
    """A compute engine: tensor cores, a vector unit, a systolic array, PIM banks, DSP slices, CPU cores."""
    kind: Literal["matrix", "vector", "systolic", "pim", "dsp", "simd"]
    units: PositiveInt                                   # SMs, arrays, banks, DSP chains, cores
    clock_mhz: PositiveFloat                             # the clock the peak is computed at
    ops_per_unit_per_clock: Dict[str, PositiveFloat]     # dense FLOPs (or OPs) per unit per clock, by dtype
    datasheet_tops: Dict[str, PositiveFloat] = Field(default_factory=dict)
    array_rows: Optional[PositiveInt] = None             # systolic arrays / PE grids
    array_cols: Optional[PositiveInt] = None
    memory: Optional[str] = None                         # the memory level it reads (default: the first)
    extra: Dict[str, float] = Field(default_factory=dict)

    _extra = field_validator("extra")(check_numbers)

    def peak(self, dtype: str, clock_mhz: Optional[float] = None) -> float:
        """Peak ops/s for a dtype at a clock (default: the engine's clock)."""
        per = self.ops_per_unit_per_clock.get(dtype)
        if per is None:
            return 0.0
        return self.units * (clock_mhz or self.clock_mhz) * 1e6 * per


GIB = 2 ** 30


class Memory(_Strict):
    """A memory level. DRAM is built in binary sizes: a vendor's "80 GB" of HBM is 80 GiB, so presets write
    DRAM as `capacity_gib` (the marked number) and it is converted here; `capacity_gb` (1e9 bytes) is what every
    consumer reads, and stays the field for sizes published in decimal units (SRAM totals derived in bytes)."""
    capacity_gb: Optional[PositiveFloat] = None
    capacity_gib: Optional[PositiveFloat] = None
    bandwidth_gbps: PositiveFloat                         # GB/s (1e9 bytes), read + write combined
    channels: Optional[PositiveInt] = None
    banks_per_channel: Optional[PositiveInt] = None
    row_buffer_bytes: Optional[PositiveInt] = None
    extra: Dict[str, float] = Field(default_factory=dict)

    _extra = field_validator("extra")(check_numbers)

    @model_validator(mode="before")
    @classmethod
    def _binary_capacity(cls, data):
        gib = data.get("capacity_gib") if isinstance(data, dict) else None
        if isinstance(gib, (int, float)) and not isinstance(gib, bool):
            if data.get("capacity_gb") is not None:
                raise ValueError("give capacity_gib (binary, as DRAM is marked) or capacity_gb (decimal), not both")
            # converted once: the validated model keeps the decimal figure only (a dump re-validates cleanly)
            data = {**data, "capacity_gb": float(data["capacity_gib"]) * GIB / 1e9, "capacity_gib": None}
        return data

    @property
    def capacity_bytes(self) -> float:
        return (self.capacity_gb or 0.0) * 1e9


class Power(_Strict):
    tdp_w: PositiveFloat                                  # board/module power limit (the cap)
    idle_w: PositiveFloat
    min_clock_mhz: Optional[PositiveFloat] = None
    extra: Dict[str, float] = Field(default_factory=dict)

    _extra = field_validator("extra")(check_numbers)

    @model_validator(mode="after")
    def _idle_below_cap(self):
        if self.idle_w > self.tdp_w:
            raise ValueError(f"idle_w ({self.idle_w:g} W) is above tdp_w ({self.tdp_w:g} W); a device cannot idle "
                             f"above its power limit")
        return self


class Link(_Strict):
    bandwidth_gbps: PositiveFloat                         # GB/s per direction
    latency_us: Optional[PositiveFloat] = None


class Calibration(_Strict):
    """Cost- and power-model parameters written with the date, script and data that produced them.
    method "fitted": fitted to measurements; "estimate": derived from datasheet numbers by the script (no
    measurement of this device; hw_models/gpu_defaults.py)."""
    date: str
    script: str
    data: str
    params: Dict[str, float]
    method: Literal["fitted", "estimate"] = "fitted"

    _params = field_validator("params")(check_numbers)


class DeviceSpec(_Strict):
    id: str
    aliases: List[str] = Field(default_factory=list)
    name: str
    device_class: Literal[DEVICE_CLASSES] = Field(alias="class")
    engines: Dict[str, Engine] = Field(min_length=1)
    memory: Dict[str, Memory] = Field(min_length=1)
    power: Power
    links: Dict[str, Link] = Field(default_factory=dict)
    price_usd: Optional[PositiveFloat] = None
    price_usd_per_hour: Optional[PositiveFloat] = None
    calibration: Optional[Calibration] = None
    host: Optional[str] = None                            # the default host preset (hw_models/presets/hosts)
    provenance: Dict[str, str] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)

    @model_validator(mode="after")
    def _consistent(self):
        for name, e in self.engines.items():
            if e.memory is not None and e.memory not in self.memory:
                raise ValueError(f"engines.{name}.memory names '{e.memory}', which is not a memory level of this "
                                 f"device ({', '.join(self.memory)})")
            if (e.array_rows is None) != (e.array_cols is None):
                raise ValueError(f"engines.{name}: give both array_rows and array_cols, or neither")
            for dtype in e.ops_per_unit_per_clock:
                if dtype != "source" and not math.isfinite(e.peak(dtype)):
                    raise ValueError(f"engines.{name}: its {dtype} peak (units x clock x ops per unit per clock) "
                                     f"overflows; give realistic values")
        f_max = self.power.extra.get("max_clock_mhz") or max(e.clock_mhz for e in self.engines.values())
        if self.power.min_clock_mhz is not None and self.power.min_clock_mhz > f_max:
            raise ValueError(f"power.min_clock_mhz ({self.power.min_clock_mhz:g}) is above the highest clock "
                             f"({f_max:g} MHz)")
        return self

    @property
    def main_memory(self) -> Memory:
        return next(iter(self.memory.values()))

    def engine_for(self, kind: str) -> Optional[Engine]:
        return next((e for e in self.engines.values() if e.kind == kind), None)

    def peak(self, dtype: str) -> float:
        """Best peak rate over the engines for a dtype."""
        return max((e.peak(dtype) for e in self.engines.values()), default=0.0)
