"""The VAE's hyperparameters and how it is trained, without Keras (``--help``
reads them)."""

from __future__ import annotations

import dataclasses

from configs import checks
from runtime.args import positive_float, positive_int
from runtime.options import option


@dataclasses.dataclass
class VAEConfig:
    """Hyperparameters of the VAE (:func:`models.vae.build_vae`); each option
    field is also a command-line option of the ``vae`` task."""

    latent_dim: int = option(2, type=positive_int,
                             help="size of the latent space; 2 draws the manifold figure")
    width: int = option(32, type=positive_int,
                        help="filters of the first convolution; the second has twice as many")
    beta: float = option(1.0, type=positive_float,
                         help="weight of the KL term; 1 trains on the ELBO, more trades "
                              "reconstruction for a smoother latent space")

    def __post_init__(self):
        checks.positive_ints(self, ("latent_dim", "width"))
        checks.positive_numbers(self, ("beta",))


@dataclasses.dataclass
class VAETraining:
    """How a VAE is trained (Adam on the negative ELBO)."""

    epochs: int = option(10, type=positive_int, help="training epochs")
    batch_size: int = option(128, type=positive_int, help="images per step")
    lr: float = option(1e-3, type=positive_float, help="Adam learning rate")

    def __post_init__(self):
        checks.positive_ints(self, ("epochs", "batch_size"))
        checks.positive_numbers(self, ("lr",))
