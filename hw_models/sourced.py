"""Every hardware number carries its source.

Preset files write a number either as `{value: 3350, source: ds}` or as a plain number inside a
mapping that has a `source:` key (which then covers all its plain-number siblings). `source`
may name a key of the preset's `sources:` table. `resolve` strips the sources off, returns the
plain tree plus a provenance map (dotted path -> source text), and refuses any number without one.
"""
from __future__ import annotations

from workloads.errors import HwsimError


def resolve(tree, sources: dict, where: str):
    if not isinstance(sources, dict):
        raise HwsimError(f"{where}: 'sources' must map short keys to source texts, e.g. sources: {{ds: \"vendor "
                         f"datasheet, 2024\"}}")
    for k, text in sources.items():
        if not isinstance(text, str) or not text.strip():
            raise HwsimError(f"{where}: sources.{k} must be a non-empty text naming where the numbers come from")
    provenance: dict = {}

    def lookup(src, path):
        if not isinstance(src, str) or not src.strip():
            raise HwsimError(f"{where}: {path}: 'source' must be a non-empty text")
        return sources.get(src, src)

    def walk(node, path, inherited):
        if isinstance(node, dict):
            if set(node) >= {"value", "source"} and set(node) <= {"value", "source", "note"}:
                provenance[path] = lookup(node["source"], path)
                return walk(node["value"], path, provenance[path])
            own = lookup(node["source"], path) if "source" in node else inherited
            return {k: walk(v, f"{path}.{k}" if path else k, own) for k, v in node.items()
                    if k not in ("source", "note")}
        if isinstance(node, list):
            return [walk(v, f"{path}[{i}]", inherited) for i, v in enumerate(node)]
        if isinstance(node, (int, float)) and not isinstance(node, bool):
            if inherited is None:
                raise HwsimError(f"{where}: {path} = {node} has no source; write it as "
                                 f"{{value: {node}, source: ...}} or give its section a 'source:'")
            provenance.setdefault(path, inherited)
        return node

    return walk(tree, "", None), provenance
