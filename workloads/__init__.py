"""Workloads: LLM configs -> torch modules -> traced operator graphs (no hardware knowledge)."""
from .capture import Phase, load_spec, trace
from .errors import ConfigError, HwsimError, UnsupportedModelError
from .graph import Op, OpGraph

__all__ = ["trace", "load_spec", "Phase", "Op", "OpGraph", "HwsimError", "ConfigError", "UnsupportedModelError"]
