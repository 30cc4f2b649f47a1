"""The CAE's hyperparameters, without Keras (``--help`` reads them)."""

from __future__ import annotations

import dataclasses
import json

from configs import checks
from cli.args import non_negative_float, positive_int, rate
from cli.options import option

IMAGE_SHAPE = (28, 28, 1)


@dataclasses.dataclass
class CAEConfig:
    """Hyperparameters of the CAE; each option field is also a command-line
    option of the tasks that train one (:mod:`cli.options`)."""

    latent_dim: int = option(10, type=positive_int, help="size of the latent code")
    conv_filters: tuple = option(
        (32, 64, 128), type=positive_int, nargs=3, metavar=("F1", "F2", "F3"),
        help="widths of the three encoder convolutions (the decoder mirrors them)")
    dense_units: int = option(256, type=positive_int,
                              help="width of the hidden dense layer on each side")
    dropout: float = option(0.0, type=rate,
                            help="dropout after the hidden dense layers, in [0, 1)")
    l2: float = option(0.0, type=non_negative_float, help="L2 penalty on every kernel, >= 0")
    kernel_size: int = 3  # of every convolution

    def __post_init__(self):
        self.conv_filters = tuple(int(f) for f in self.conv_filters)
        if len(self.conv_filters) != 3 or min(self.conv_filters) < 1:
            raise ValueError("conv_filters must be three positive integers. "
                             f"Received: conv_filters={self.conv_filters}")
        checks.positive_ints(self, ("dense_units", "latent_dim", "kernel_size"))
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1). Received: dropout={self.dropout}")
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0. Received: l2={self.l2}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["conv_filters"] = list(self.conv_filters)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "CAEConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
