"""The DCGAN's hyperparameters, without Keras (``--help`` reads them); how it is
trained is :class:`training.gan.GANTraining`."""

from __future__ import annotations

import dataclasses

from configs import checks
from cli.args import positive_int
from cli.options import option


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
