"""Typed reads from a config dict, so a malformed field is one clear error line."""
from __future__ import annotations

import math
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

    def int(self, keys, default: Any = _MISSING, minimum: int = 1) -> int:
        key, value = self._get(keys, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or int(value) != value:
            raise ConfigError(f"model '{self.name}': {key} must be an integer, got {value!r}")
        if int(value) < minimum:
            raise ConfigError(f"model '{self.name}': {key} must be at least {minimum}, got {value!r}")
        if int(value) > 2 ** 31:
            raise ConfigError(f"model '{self.name}': {key} = {value!r} is implausibly large")
        return int(value)

    def float(self, keys, default: Any = _MISSING, low: float = -math.inf, high: float = math.inf) -> float:
        key, value = self._get(keys, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"model '{self.name}': {key} must be a finite number, got {value!r}")
        if not low <= value <= high:
            raise ConfigError(f"model '{self.name}': {key} must be in [{low}, {high}], got {value!r}")
        return float(value)

    def window(self, key: str = "sliding_window") -> int:
        """A sliding-window length; absent, null or 0 mean full attention."""
        value = self.config.get(key)
        if value is None or (value == 0 and not isinstance(value, bool)):
            return 0
        return self.int(key)

    def int_list(self, key: str) -> list:
        value = self.config.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
            raise ConfigError(f"model '{self.name}': {key} must be a list of integers, got {value!r}")
        return value

    def str_list(self, key: str) -> list:
        value = self.config.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or any(not isinstance(v, str) for v in value):
            raise ConfigError(f"model '{self.name}': {key} must be a list of strings, got {value!r}")
        return value

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
