"""Hardware: device presets (validated, every number sourced) and per-engine cost and power models."""
from .presets import load_device, preset_ids
from .spec import DeviceSpec, Engine, Memory, Power

__all__ = ["load_device", "preset_ids", "DeviceSpec", "Engine", "Memory", "Power"]
