"""Seeded, class-balanced subsets of a labelled split (the label-efficiency study)."""

from __future__ import annotations

import argparse
import math

import numpy as np


def fraction(text: str) -> float:
    """A float in (0, 1]; raises ValueError naming the value otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number; give a label fraction in (0, 1]") from None
    if not 0.0 < value <= 1.0:  # also rejects nan
        raise ValueError(f"label fraction {value:g} is outside (0, 1]; give e.g. 0.01,0.1,1")
    return value


def fraction_list(text: str) -> list:
    """argparse type: comma-separated label fractions, each in (0, 1], e.g. ``0.01,0.1,1``."""
    parts = [t.strip() for t in text.split(",") if t.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"{text!r} holds no fractions; give e.g. 0.01,0.1,1")
    try:
        values = [fraction(t) for t in parts]
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return sorted(set(values))


def class_balanced_subset(labels: np.ndarray, frac: float, seed: int = 0) -> np.ndarray:
    """Indices of a seeded subset holding ``frac`` of every class (at least one each).

    Each class keeps ``max(1, round(frac * count))`` of its examples, drawn
    without replacement, so the class proportions of ``labels`` are kept.

    Args:
        labels: integer class labels, shape (N,).
        frac: the fraction in (0, 1].
        seed: seeds the draw.

    Returns:
        Sorted int64 indices into ``labels``.
    """
    frac = fraction(str(frac))
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        keep = max(1, min(len(members), int(math.floor(frac * len(members) + 0.5))))
        chosen.append(rng.choice(members, size=keep, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)


MAX_LABEL_COUNT = 10_000_000  # more labels than any dataset here holds


def count_list(text: str) -> list:
    """argparse type: comma-separated label counts, each a whole number in
    [1, 10 000 000], e.g. ``100,250``; an empty text is no counts."""
    values = []
    for part in (t.strip() for t in text.split(",")):
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{part!r} is not a whole number; give label counts such as 100,250") from None
        if not 1 <= value <= MAX_LABEL_COUNT:
            raise argparse.ArgumentTypeError(
                f"label count {value} is outside [1, {MAX_LABEL_COUNT:,}]; give e.g. 100")
        values.append(value)
    return sorted(set(values))


def class_balanced_count(labels: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Indices of a seeded subset of ``count`` labels spread evenly over the classes
    (``count // classes`` each, the remainder one more each for classes drawn with
    the seed), e.g. 100 labels of 10 classes: 10 of each.

    Raises:
        ValueError: fewer labels than classes, or a class with fewer examples
            than its share.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if count < len(classes):
        raise ValueError(f"{count} labels are fewer than the {len(classes)} classes; give at "
                         f"least {len(classes)} (one of each class)")
    rng = np.random.default_rng(seed)
    shares = np.full(len(classes), count // len(classes))
    shares[rng.permutation(len(classes))[:count % len(classes)]] += 1
    chosen = []
    for cls, share in zip(classes, shares):
        members = np.flatnonzero(labels == cls)
        if share > len(members):
            raise ValueError(f"{count} labels need {share} of class {cls}, which has "
                             f"{len(members)}; give at most {len(members) * len(classes)}")
        chosen.append(rng.choice(members, size=share, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)
