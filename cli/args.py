"""argparse types: bad input becomes a one-line error naming what is valid."""

from __future__ import annotations

import argparse
import math

# Sizes and counts past int32 overflow somewhere in NumPy or a backend; nothing
# this toolkit trains needs more.
MAX_INT = 2**31 - 1

MAX_SEED = 2**32 - 1  # what NumPy's and the backends' seeding accept


def _number(text: str, kind, ok, problem: str, valid: str, most: int = MAX_INT):
    """``text`` parsed with ``kind`` (int or float) and checked with ``ok``; else an
    argparse error saying what is wrong (``problem``) and what is ``valid``.
    Infinity and NaN are never valid; integers above ``most`` neither."""
    noun = "an integer" if kind is int else "a number"
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {noun}; give {valid}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number; give {valid}")
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{value} {problem}; give {valid}")
    if kind is int and value > most:
        raise argparse.ArgumentTypeError(f"{text} is too large; give {valid} up to {most}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _number(text, int, lambda v: v >= 1, "is not positive", "an integer >= 1")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _number(text, int, lambda v: v >= 0, "is negative", "an integer >= 0")


def positive_float(text: str) -> float:
    """argparse type: a float > 0."""
    return _number(text, float, lambda v: v > 0, "is not positive", "a number > 0")


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    return _number(text, float, lambda v: v >= 0, "is negative", "a finite number >= 0")


def random_seed(text: str) -> int:
    """argparse type: a seed, 0 ... 2**32 - 1 (what NumPy and the backends accept)."""
    return _number(text, int, lambda v: v >= 0, "is negative", "an integer >= 0",
                   most=MAX_SEED)


def rate(text: str) -> float:
    """argparse type: a number in [0, 1) (a dropout rate, label smoothing, a shift)."""
    return _number(text, float, lambda v: 0.0 <= v < 1.0, "is outside [0, 1)",
                   "a number in [0, 1)")


def probability(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    return _number(text, float, lambda v: 0.0 <= v <= 1.0, "is outside [0, 1]",
                   "a number in [0, 1]")


def int_list(text: str) -> list:
    """argparse type: comma-separated positive integers, e.g. ``2,4,8``."""
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers, e.g. 2,4,8") from None
    bad = [v for v in values if v < 1]
    if not values or bad:
        raise argparse.ArgumentTypeError(
            f"{text!r} holds non-positive values {bad}; give positive integers, e.g. 2,4,8")
    huge = [v for v in values if v > MAX_INT]
    if huge:
        raise argparse.ArgumentTypeError(
            f"{text!r} holds values too large {huge}; give integers up to {MAX_INT}")
    return values
