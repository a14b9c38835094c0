"""Workloads: LLM configs -> torch modules -> traced operator graphs (no hardware knowledge)."""
from .capture import Phase, load_spec, trace
from .errors import ConfigError, HwsimError, UnsupportedModelError
from .graph import Op, OpGraph
from .module_trace import UnknownOpsWarning, trace_module

__all__ = ["trace", "load_spec", "Phase", "Op", "OpGraph", "HwsimError", "ConfigError", "UnsupportedModelError",
           "trace_module", "UnknownOpsWarning"]
