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
    # 512, not keras-io's 16 (and no decoder layer): a step takes about 1.5x as
    # long on 2 CPU cores, and the reconstructions' FID after 10 epochs of batch
    # 128 falls from 28.1 to 15.8 (18.0 at 256; 14.1 after the default 10 epochs of
    # batch 64); benchmarks/results/sample_quality_fashion_mnist.md.
    dense_units: int = option(512, type=positive_int,
                              help="width of the hidden dense layer on each side: the "
                                   "encoder's before the mean and log-variance, the "
                                   "decoder's before its 7x7 feature map")
    # 0.25, not the ELBO's 1: the codes carry more of each image (KL about 68 nats
    # against 35), so the decoder's reconstructions, the floor of every sampler
    # fitted to the codes (gmm, flow), are much sharper: FID 28.1 against 42.0 with
    # the earlier narrow decoder, at the same training cost
    # (benchmarks/results/sample_quality_fashion_mnist.md).
    beta: float = option(0.25, type=positive_float,
                         help="weight of the KL term; 1 trains on the ELBO, less keeps "
                              "more of each image in the codes (sharper reconstructions, "
                              "and samples of the samplers fitted to the codes: gmm, "
                              "flow), more gives a smoother latent space")
    likelihood: str = option(
        "gaussian", choices=LIKELIHOODS,
        help="the decoder's likelihood: gaussian (a calibrated decoder: each image's "
             "variance is its optimal one, its mean squared error, which balances "
             "reconstruction and KL and gives sharp images) or bernoulli (binary "
             "cross-entropy, blurrier)")

    def __post_init__(self):
        checks.positive_ints(self, ("latent_dim", "width", "dense_units"))
        checks.positive_numbers(self, ("beta",))
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {', '.join(LIKELIHOODS)}. "
                             f"Received: likelihood={self.likelihood}")
