"""Noise names and their parameters, without Keras: parsed while reading the command line.

See :mod:`models.noise` for what each kind does.
"""

from __future__ import annotations

import dataclasses
import math

KINDS = ("none", "gaussian", "salt_pepper", "uniform", "occlusion", "mixed")
PATCH = 14  # side of the occlusion patch, as in the reports we follow
DEFAULT_SIGMA = 0.3
DEFAULT_AMOUNT = 0.1

# The evaluation set: every noise the denoising study reports, and the clean images.
EVAL_NOISES = ("none", "gaussian:0.1", "gaussian:0.3", "gaussian:0.5", "gaussian:1",
               "gaussian:2", "salt_pepper:0.1", "uniform", "occlusion", "mixed:0.1:0.3")


@dataclasses.dataclass(frozen=True)
class NoiseSpec:
    """One noise: ``kind`` with its ``sigma`` (Gaussian) and ``amount`` (salt-and-pepper)."""

    kind: str
    sigma: float = DEFAULT_SIGMA
    amount: float = DEFAULT_AMOUNT
    patch: int = PATCH

    @property
    def name(self) -> str:
        if self.kind == "gaussian":
            return f"gaussian:{self.sigma:g}"
        if self.kind == "salt_pepper":
            return f"salt_pepper:{self.amount:g}"
        if self.kind == "mixed":
            return f"mixed:{self.amount:g}:{self.sigma:g}"
        return self.kind

    @property
    def label(self) -> str:
        """A human title, e.g. ``Gaussian σ=0.3``."""
        return {"none": "clean (no noise)",
                "gaussian": f"Gaussian σ={self.sigma:g}",
                "salt_pepper": f"salt & pepper {self.amount:g}",
                "uniform": "uniform U[0,1) added",
                "occlusion": f"occlusion {self.patch}x{self.patch}",
                "mixed": f"salt & pepper {self.amount:g} + Gaussian σ={self.sigma:g}",
                }[self.kind]


def parse_noise(text: str) -> NoiseSpec:
    """``"gaussian:0.5"`` -> NoiseSpec. Raises ValueError naming what is valid."""
    parts = str(text).strip().split(":")
    kind, params = parts[0], parts[1:]
    valid = ("valid: none, gaussian:SIGMA, salt_pepper:AMOUNT, uniform, occlusion, "
             "mixed:AMOUNT:SIGMA")
    if kind not in KINDS:
        raise ValueError(f"unknown noise {text!r}; {valid}")
    n_params = {"gaussian": 1, "salt_pepper": 1, "mixed": 2}.get(kind, 0)
    if len(params) > n_params:
        raise ValueError(f"noise {text!r} takes {n_params} parameter(s); {valid}")
    if kind == "mixed" and len(params) == 1:  # sigma would be a default nobody sees
        raise ValueError(f"noise {text!r} gives the amount but not sigma; give both, "
                         f"mixed:{params[0]}:SIGMA (plain mixed is mixed:{DEFAULT_AMOUNT:g}:"
                         f"{DEFAULT_SIGMA:g})")
    try:
        values = [float(p) for p in params]
    except ValueError:
        raise ValueError(f"noise {text!r} has a non-numeric parameter; {valid}") from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"noise {text!r} has a parameter that is not a finite number; {valid}")
    if kind == "gaussian":
        spec = NoiseSpec(kind, sigma=values[0] if values else DEFAULT_SIGMA)
    elif kind == "salt_pepper":
        spec = NoiseSpec(kind, amount=values[0] if values else DEFAULT_AMOUNT)
    elif kind == "mixed":
        spec = NoiseSpec(kind, amount=values[0] if values else DEFAULT_AMOUNT,
                         sigma=values[1] if len(values) > 1 else DEFAULT_SIGMA)
    else:
        spec = NoiseSpec(kind)
    if not spec.sigma > 0:
        raise ValueError(f"noise {text!r}: sigma must be > 0")
    if not 0 <= spec.amount <= 1:
        raise ValueError(f"noise {text!r}: amount must be in [0, 1]")
    return spec


def parse_noise_list(text: str) -> list:
    """``"all"`` or comma-separated noise names -> list of NoiseSpec."""
    names = EVAL_NOISES if text.strip() == "all" else [t for t in text.split(",") if t.strip()]
    if not names:
        raise ValueError(f"{text!r} names no noise; give e.g. gaussian:0.3,occlusion or all")
    return [parse_noise(n) for n in names]
