"""The VAE's hyperparameters, without Keras (``--help`` reads them); how it is
trained is :class:`training.vae.VAETraining`."""

from __future__ import annotations

import dataclasses

from configs import checks
from cli.args import positive_float, positive_int
from cli.options import option

LIKELIHOODS = ("gaussian", "bernoulli")


@dataclasses.dataclass
class VAEConfig:
    """Hyperparameters of the VAE (:func:`models.vae.build_vae`); each option
    field is also a command-line option of the ``vae`` task."""

    latent_dim: int = option(16, type=positive_int,
                             help="size of the latent space; 2 draws the manifold figure")
    width: int = option(32, type=positive_int,
                        help="filters of the first convolution; the second has twice as many")
    beta: float = option(1.0, type=positive_float,
                         help="weight of the KL term; 1 trains on the ELBO, more trades "
                              "reconstruction for a smoother latent space")
    likelihood: str = option(
        "gaussian", choices=LIKELIHOODS,
        help="the decoder's likelihood: gaussian (a calibrated decoder: each image's "
             "variance is its optimal one, its mean squared error, which balances "
             "reconstruction and KL and gives sharp images) or bernoulli (binary "
             "cross-entropy, blurrier)")

    def __post_init__(self):
        checks.positive_ints(self, ("latent_dim", "width"))
        checks.positive_numbers(self, ("beta",))
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {', '.join(LIKELIHOODS)}. "
                             f"Received: likelihood={self.likelihood}")
