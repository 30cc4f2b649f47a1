"""The DCGAN's hyperparameters and how it is trained, without Keras (``--help``
reads them)."""

from __future__ import annotations

import dataclasses

from configs import checks
from runtime.args import positive_float, positive_int, rate
from runtime.options import option


def ema_momentum(text: str) -> float:
    """argparse type: a moving-average momentum in [0, 1) (0: no average)."""
    return rate(text)


@dataclasses.dataclass
class GANConfig:
    """Hyperparameters of the DCGAN (:func:`models.gan.build_gan`); each option
    field is also a command-line option of the ``gan`` task."""

    latent_dim: int = option(100, type=positive_int, help="size of the generator's noise input")
    width: int = option(16, type=positive_int,
                        help="width multiplier w: generator 6w/3w/w filters, discriminator "
                             "w/2w/4w; 64 is the report's 384/192/64")
    spectral_norm: bool = option(
        False, action="store_true",
        help="spectral normalisation in the discriminator instead of its batch norm (the "
             "generator is unchanged)")

    def __post_init__(self):
        checks.positive_ints(self, ("latent_dim", "width"))


@dataclasses.dataclass
class GANTraining:
    """How a DCGAN is trained: Adam for each network, optionally an average of
    the generator's weights."""

    # Batch 64 and 10 epochs: FID 81 -> 40-47 in the reference features against
    # batch 128 and 5 epochs (benchmarks/results/gan_recipes.md).
    epochs: int = option(10, type=positive_int, help="training epochs")
    batch_size: int = option(64, type=positive_int, help="images per step")
    lr: float = option(2e-4, type=positive_float, help="Adam learning rate of both networks")
    beta1: float = option(0.5, type=positive_float, help="Adam beta_1 of both networks")
    d_lr: float | None = option(
        None, type=positive_float, default_help="--lr",
        help="the discriminator's learning rate, to train it faster or slower than the "
             "generator (two time-scale update rule)")
    ema: float = option(
        0.0, type=ema_momentum,
        help="momentum of an exponential moving average of the generator's weights, saved "
             "as the generator; 0 keeps the last weights")

    def __post_init__(self):
        checks.positive_ints(self, ("epochs", "batch_size"))
        checks.positive_numbers(self, ("lr", "beta1"))
        if self.d_lr is not None:
            checks.positive_numbers(self, ("d_lr",))
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1) (0: no average). Received: ema={self.ema}")
