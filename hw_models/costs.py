"""Cost-model registry: device class -> the model that turns an Op into an OpCost."""
from __future__ import annotations

from workloads.errors import HwsimError

from .cpu import CPUModel
from .fpga import FPGAModel
from .gpu import GPUModel
from .pim import PIMModel
from .systolic import SystolicModel

_MODELS = {"gpu": GPUModel, "npu": SystolicModel, "soc": SystolicModel, "pim": PIMModel, "fpga": FPGAModel,
           "cpu": CPUModel}


def cost_model(device, profile: str = "eager", params: dict = None):
    cls = _MODELS.get(device.device_class)
    if cls is None:
        raise HwsimError(f"no single-device cost model for {device.device_class} devices yet ({device.id}); "
                         f"pick a preset of class {', '.join(sorted(_MODELS))}")
    return cls(device, profile=profile, params=params or {})
