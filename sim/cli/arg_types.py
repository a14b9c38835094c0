"""argparse types that refuse nonsense numbers at parse time (one line, exit 2): NaN, infinities, negatives."""
from __future__ import annotations

import argparse
import math


def _number(text: str, cast, minimum: float, strict: bool, what: str):
    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, 0, True, "a positive whole number")


def positive_float(text: str) -> float:
    return _number(text, float, 0.0, True, "a positive number")


def non_negative_float(text: str) -> float:
    return _number(text, float, 0.0, False, "a number of 0 or more")
