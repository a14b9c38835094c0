"""Family adapters: Hugging Face config.json (by `model_type`) -> `ModelSpec`.

Adapters register themselves with `@family("llama", ...)`. An unknown `model_type`
whose config uses the standard Llama-style keys is built as a Llama-style decoder (under --impl hwsim with
one warning, workloads/capture.py, suggesting --impl hf where transformers knows the model_type).
"""
from __future__ import annotations

from typing import Callable, Dict

from ..errors import UnsupportedModelError
from ..spec import ModelSpec
from ._read import ConfigReader

_REGISTRY: Dict[str, Callable[[ConfigReader], ModelSpec]] = {}


def family(*model_types: str):
    def register(fn):
        for model_type in model_types:
            _REGISTRY[model_type] = fn
        return fn
    return register


def supported_families() -> list[str]:
    return sorted(_REGISTRY)


def spec_from_config(config: dict, name: str) -> ModelSpec:
    model_type = config.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise UnsupportedModelError(f"model '{name}': model_type must be a string, got {model_type!r}")
    reader = ConfigReader(config, name)
    if model_type in _REGISTRY:
        return _REGISTRY[model_type](reader)
    standard = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")
    if all(key in config for key in standard):
        return _REGISTRY["llama"](reader)
    raise UnsupportedModelError(
        f"model '{name}': model_type {model_type!r} is not supported and its config lacks the standard decoder keys "
        f"({', '.join(standard)}); supported families: {', '.join(supported_families())}")


from . import rope_decoders, classic_decoders  # noqa: E402,F401  (registration side effects)
