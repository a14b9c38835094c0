"""Typed reads from a config dict, so a malformed field is one clear error line."""
from __future__ import annotations

from typing import Any

from ..errors import ConfigError

_MISSING = object()


class ConfigReader:
    def __init__(self, config: dict, name: str):
        self.config = config
        self.name = name

    def _get(self, keys, default):
        for key in (keys if isinstance(keys, (list, tuple)) else [keys]):
            if key in self.config and self.config[key] is not None:
                return key, self.config[key]
        if default is _MISSING:
            names = " or ".join(repr(k) for k in (keys if isinstance(keys, (list, tuple)) else [keys]))
            raise ConfigError(f"model '{self.name}': config.json lacks {names}; add it (see the model's published config.json)")
        return None, default

    def int(self, keys, default: Any = _MISSING) -> int:
        key, value = self._get(keys, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ConfigError(f"model '{self.name}': {key} must be an integer, got {value!r}")
        if int(value) <= 0:
            raise ConfigError(f"model '{self.name}': {key} must be positive, got {value!r}")
        return int(value)

    def float(self, keys, default: Any = _MISSING) -> float:
        key, value = self._get(keys, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"model '{self.name}': {key} must be a number, got {value!r}")
        return float(value)

    def bool(self, keys, default: Any = _MISSING) -> bool:
        key, value = self._get(keys, default)
        if not isinstance(value, bool):
            raise ConfigError(f"model '{self.name}': {key} must be true or false, got {value!r}")
        return value

    def str(self, keys, default: Any = _MISSING) -> str:
        key, value = self._get(keys, default)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"model '{self.name}': {key} must be a string, got {value!r}")
        return value
