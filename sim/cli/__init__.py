"""The `hwsim` command line: one sub-module per command, registered in COMMANDS."""
from __future__ import annotations

import argparse
import sys

from workloads.errors import HwsimError

from .. import __version__
from . import (graph_cmd, hardware_cmd, host_cmd, models_cmd, predict_cmd, roofline_cmd, simulate_cmd, tile_cmd,
               validate_cmd, warm_cmd)

COMMANDS = (models_cmd, graph_cmd, hardware_cmd, host_cmd, predict_cmd, roofline_cmd, simulate_cmd, tile_cmd,
            validate_cmd, warm_cmd)

DESCRIPTION = """hwsim: LLM workloads on GPUs, NPUs, PIM, FPGAs and edge devices.

Traces LLMs from PyTorch into operator graphs and reports FLOPs, bytes and
arithmetic intensity per operator and layer.

examples:
  hwsim models
  hwsim graph --model llama-3.1-8b --phase decode --batch 8 --seq-len 4096
  hwsim graph --model path/to/config.json --phase prefill --seq-len 2048 --json
  hwsim roofline --model llama-3.1-8b --hardware h100
  hwsim hardware
  hwsim predict --model llama-3.1-8b --hardware h100 --phase decode --batch 32 --seq-len 2048
  hwsim validate
"""


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad usage in one line (exit code 2), pointing at --help."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hwsim", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"hwsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 0
    import warnings

    plain = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):      # hwsim's warnings: one line each
        if category.__module__.split(".")[0] in ("workloads", "hw_models", "mapping", "sim"):
            print(f"hwsim {args.command}: warning: {message}", file=sys.stderr)
        else:
            plain(message, category, filename, lineno, file, line)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            return args.run(args) or 0
    except HwsimError as exc:
        print(f"hwsim {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hwsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
