"""Model presets: Hugging Face config.json files shipped in workloads/zoo/, or any user path."""
from __future__ import annotations

import difflib
import json
from functools import lru_cache
from pathlib import Path

from .errors import ConfigError, HwsimError

ZOO_DIR = Path(__file__).with_name("zoo")


def preset_names() -> list[str]:
    return sorted(p.stem for p in ZOO_DIR.glob("*.json"))


def _looks_like_path(model: str) -> bool:
    return model.endswith(".json") or "/" in model or "\\" in model or Path(model).is_dir()


def load_config(model: str) -> tuple[dict, str]:
    """Return (config dict, display name) for a preset name or a path to a config.json (or its folder)."""
    if not isinstance(model, str) or not model.strip():
        raise HwsimError("no model given; pass a preset name (see `hwsim models`) or a path to a config.json")
    if _looks_like_path(model):
        path = Path(model)
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise HwsimError(f"model folder '{model}' has no config.json; pass the folder a Hugging Face model "
                                 f"was saved to (it holds config.json), or the config file's own path")
            path = path / "config.json"
        if not path.is_file():
            raise HwsimError(f"model config '{model}' not found; pass a preset name (see `hwsim models`) or an existing config.json path")
        return _read_json(path), path.parent.name if path.name == "config.json" else path.stem
    name = model.strip().lower()
    path = ZOO_DIR / f"{name}.json"
    if not path.is_file():
        close = difflib.get_close_matches(name, preset_names(), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise HwsimError(f"unknown model preset '{model}'; {hint}run `hwsim models` for the list, or pass a path to a config.json")
    return _read_json(path), name


@lru_cache(maxsize=None)
def _read_cached(path: str, mtime: float) -> str:
    return Path(path).read_text(encoding="utf-8")


def _read_json(path: Path) -> dict:
    try:
        text = _read_cached(str(path), path.stat().st_mtime)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); fix the file") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path} must hold a JSON object (a Hugging Face config.json), not {type(config).__name__}")
    return config
