"""Checks the configs' ``__post_init__`` share, worded as Keras words its own
("... must be ... Received: name=value")."""

from __future__ import annotations

import math


def positive_ints(config, names) -> None:
    """ValueError unless each named field of ``config`` is an integer >= 1."""
    for name in names:
        value = getattr(config, name)
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer. Received: {name}={value}")


def positive_numbers(config, names) -> None:
    """ValueError unless each named field of ``config`` is a finite number > 0."""
    for name in names:
        value = getattr(config, name)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0. Received: {name}={value}")
