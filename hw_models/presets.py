"""Load device presets (hw_models/presets/*.yaml) by id, alias or path; validate on load."""
from __future__ import annotations

import difflib
import re
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import ValidationError

from workloads.errors import HwsimError

from .sourced import resolve
from .spec import DeviceSpec

PRESET_DIR = Path(__file__).with_name("presets")


def _files() -> dict:
    return {p.stem: p for p in sorted(PRESET_DIR.glob("*.yaml"))}


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # libyaml when present: 10x faster


@lru_cache(maxsize=1)
def alias_table() -> dict:
    """id/alias -> file, read from each preset's top-level `id:` and `aliases: [...]` lines (no full parse)."""
    return aliases_of(_files())


def aliases_of(files: dict) -> dict:
    """id/alias (lower case) -> file for preset files {stem: path} (devices here; servers use it too)."""
    table = {}
    for stem, path in files.items():
        text = path.read_text(encoding="utf-8")
        names = [stem]
        m = re.search(r"^id:\s*(\S+)", text, re.M)
        names += [m.group(1)] if m else []
        m = re.search(r"^aliases:\s*\[([^\]]*)\]", text, re.M)
        names += [a.strip().strip("'\"") for a in m.group(1).split(",") if a.strip()] if m else []
        for name in names:
            table[name.lower()] = path
    return table


def preset_ids() -> list:
    return sorted(_files())


def load_device(name: str) -> DeviceSpec:
    """A preset id or alias (e.g. 'h100'), or a path to a preset YAML file, optionally with overrides
    (`h100+hbm.bandwidth=6.7TB/s+sm_count=66`: a hypothetical device, see hw_models/overrides.py)."""
    if not isinstance(name, str) or not name.strip():
        raise HwsimError("no hardware given; pass a preset id (see `hwsim hardware`) or a path to a preset .yaml")
    if "+" in name:                     # a hypothetical device: PRESET+KEY=VALUE+... (hw_models/overrides.py)
        from .overrides import load_derived
        return load_derived(name.strip())
    path = Path(name)
    if name.endswith((".yaml", ".yml")) or "/" in name:
        if path.is_dir():
            raise HwsimError(f"hardware preset '{name}' is a folder; pass a preset id (see `hwsim hardware`) or a "
                             f"preset .yaml file")
        if not path.is_file():
            raise HwsimError(f"hardware preset file '{name}' not found")
        return _load_path(str(path.resolve()), path.stat().st_mtime)
    table = alias_table()
    key = name.strip().lower()
    if key not in table:
        close = difflib.get_close_matches(key, list(table), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise HwsimError(f"unknown hardware '{name}'; {hint}run `hwsim hardware` for the list, or pass a preset .yaml path")
    return _load_path(str(table[key]), table[key].stat().st_mtime)


@lru_cache(maxsize=64)
def _load_path(path: str, mtime: float) -> DeviceSpec:
    where = Path(path).name
    try:
        raw = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise HwsimError(f"{where}: not valid YAML{at}; fix the file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HwsimError(f"cannot read {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise HwsimError(f"{where}: a hardware preset must be a YAML mapping")
    sources = raw.pop("sources", {}) or {}
    tree, provenance = resolve(raw, sources, where)
    try:
        return DeviceSpec.model_validate({**tree, "provenance": provenance})
    except ValidationError as exc:
        raise HwsimError(f"{where}: {validation_message(exc)}") from None


def validation_message(exc: ValidationError) -> str:
    """pydantic's first error as one line: where in the file, what is wrong, and the value found."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "value_error":               # our own checks: already a sentence naming the field
        msg = err["msg"].removeprefix("Value error, ")
        return f"{loc}: {msg}" if loc else msg
    value = err.get("input")
    text = repr(value) if not isinstance(value, (dict, list)) or len(repr(value)) < 80 else type(value).__name__
    return f"{loc}: {err['msg'].lower()} (got {text})"
