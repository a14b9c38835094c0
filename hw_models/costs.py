"""Cost-model registry: device class -> the model that turns an Op into an OpCost."""
from __future__ import annotations

from workloads.errors import HwsimError

from .gpu import GPUModel

_MODELS = {"gpu": GPUModel}


def cost_model(device, profile: str = "eager", params: dict = None):
    cls = _MODELS.get(device.device_class)
    if cls is None:
        raise HwsimError(f"no single-device cost model for {device.device_class} devices yet ({device.id}); "
                         f"use a GPU preset")
    return cls(device, profile=profile, params=params or {})
