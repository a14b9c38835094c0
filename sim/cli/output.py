"""Shared output helpers: aligned text tables, JSON documents and all-or-nothing file writes."""
from __future__ import annotations

import argparse
import json
import sys

from .. import __version__
from ..outputs import (check_distinct, check_folder, check_writable, make_folder, write_file,  # noqa: F401 (re-exported)
                       write_files)


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23M' (SI prefixes), for tables meant for people."""
    if n is None:
        return "-"
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.3g}{prefix}{unit}"
    return f"{n:.3g}{unit}" if isinstance(n, float) else f"{n}{unit}"


def table(rows: list, columns: list) -> str:
    """columns: (header, key or callable, align '<' or '>')."""
    cells = [[h for h, _, _ in columns]]
    for row in rows:
        cells.append([str(get(row) if callable(get) else row.get(get, "")) for _, get, _ in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = []
    for n, r in enumerate(cells):
        lines.append("  ".join(f"{c:{a}{w}}" for c, w, (_, _, a) in zip(r, widths, columns)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def document(command: str, inputs: dict, **body) -> dict:
    """Every JSON output records the inputs and the hwsim version (reproducibility)."""
    return {"hwsim_version": __version__, "command": command, "inputs": inputs, **body}


def emit_json(doc: dict, out: str = None, option: str = "--out"):
    text = json.dumps(doc, indent=2, default=str)
    if out:
        write_atomic(out, text + "\n", option)
    else:
        sys.stdout.write(text + "\n")


def write_atomic(path: str, data, option: str = ""):
    """Write an output file the user named (see sim.outputs.write_file: symlinks, FIFOs and modes kept)."""
    write_file(path, data, option)


def command(sub, name: str, help: str, description: str, examples: str):
    """A sub-command parser whose --help ends with its examples (every command has them)."""
    return sub.add_parser(name, help=help, description=description, epilog=examples,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
