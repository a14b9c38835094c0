"""The `hwsim` command line: one sub-module per command, registered in COMMANDS."""
from __future__ import annotations

import argparse
import os
import sys
import warnings

from workloads.errors import HwsimError, HwsimWarning

from .. import __version__
from . import (graph_cmd, hardware_cmd, host_cmd, models_cmd, power_cmd, predict_cmd, roofline_cmd, serve_cmd,
               simulate_cmd, sweep_cmd, tile_cmd, validate_cmd, warm_cmd)

COMMANDS = (models_cmd, graph_cmd, hardware_cmd, host_cmd, predict_cmd, roofline_cmd, simulate_cmd, serve_cmd, power_cmd,
            sweep_cmd, tile_cmd, validate_cmd, warm_cmd)

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
  hwsim serve --model llama-3.1-70b --system dgx-h100 --mapping tp:4 --rate 2 --dataset sharegpt
  hwsim power --row servers=52,budget=40x --server dgx-a100-80gb --policy polca --days 1
  hwsim validate
  hwsim sweep studies/hbm_compute_sweep.py --report
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
    parser.commands = sub.choices
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:      # named by the command they were given to ("hwsim serve: error: ..."), not by bare "hwsim"
        owner = parser.commands.get(getattr(args, "command", None) or "", parser)
        owner.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "run", None):
        parser.print_help()
        return 0
    shown = warnings.showwarning

    def one_line(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, HwsimWarning):     # hwsim's own warnings: one line, no source location
            print(f"hwsim {args.command}: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = one_line
            warnings.simplefilter("default", HwsimWarning)
            return args.run(args) or 0
    except HwsimError as exc:
        from .workload_args import module_advice
        print(f"hwsim {args.command}: error: {module_advice(str(exc), args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hwsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:       # a defect, not bad input: still one line; the traceback on request
        if os.environ.get("HWSIM_DEBUG"):
            raise
        print(f"hwsim {args.command}: internal error ({type(exc).__name__}: {exc}); please report it with the "
              f"command line (HWSIM_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
