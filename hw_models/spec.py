"""Typed, validated device descriptions (parameters only: no cost logic here).

Peak rates are derived from micro-architecture (units x clock x ops per unit per clock); the
datasheet figures are kept beside them as checks (tests compare the two).
"""
from __future__ import annotations

from typing import Dict, List, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

DEVICE_CLASSES = ("gpu", "npu", "pim", "fpga", "cpu", "soc")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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

    def peak(self, dtype: str, clock_mhz: Optional[float] = None) -> float:
        """Peak ops/s for a dtype at a clock (default: the engine's clock)."""
        per = self.ops_per_unit_per_clock.get(dtype)
        if per is None:
            return 0.0
        return self.units * (clock_mhz or self.clock_mhz) * 1e6 * per


class Memory(_Strict):
    capacity_gb: Optional[PositiveFloat] = None
    bandwidth_gbps: PositiveFloat                         # GB/s (1e9 bytes), read + write combined
    channels: Optional[PositiveInt] = None
    banks_per_channel: Optional[PositiveInt] = None
    row_buffer_bytes: Optional[PositiveInt] = None
    extra: Dict[str, float] = Field(default_factory=dict)


class Power(_Strict):
    tdp_w: PositiveFloat                                  # board/module power limit (the cap)
    idle_w: PositiveFloat
    min_clock_mhz: Optional[PositiveFloat] = None
    extra: Dict[str, float] = Field(default_factory=dict)


class Link(_Strict):
    bandwidth_gbps: PositiveFloat                         # GB/s per direction
    latency_us: Optional[PositiveFloat] = None


class Calibration(_Strict):
    """Fitted cost-model parameters (written with the date, script and data that produced them)."""
    date: str
    script: str
    data: str
    params: Dict[str, float]


class DeviceSpec(_Strict):
    id: str
    aliases: List[str] = Field(default_factory=list)
    name: str
    device_class: Literal[DEVICE_CLASSES] = Field(alias="class")
    engines: Dict[str, Engine]
    memory: Dict[str, Memory]
    power: Power
    links: Dict[str, Link] = Field(default_factory=dict)
    price_usd: Optional[PositiveFloat] = None
    price_usd_per_hour: Optional[PositiveFloat] = None
    calibration: Optional[Calibration] = None
    host: Optional[str] = None                            # the default host preset (hw_models/presets/hosts)
    provenance: Dict[str, str] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def main_memory(self) -> Memory:
        return next(iter(self.memory.values()))

    def engine_for(self, kind: str) -> Optional[Engine]:
        return next((e for e in self.engines.values() if e.kind == kind), None)

    def peak(self, dtype: str) -> float:
        """Best peak rate over the engines for a dtype."""
        return max((e.peak(dtype) for e in self.engines.values()), default=0.0)
