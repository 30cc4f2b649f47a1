"""Variational autoencoder (VAE) for 28x28x1 images in [0, 1].

After keras-io examples/generative/vae.py: a convolutional encoder to the mean
and log-variance of q(z|x), a convolutional decoder to a sigmoid image, and a
small subclassed model holding both; unlike the example, a wide dense layer on
each side (``dense_units``), which makes the decoder much sharper. The
reparameterisation draws its noise from the model's SeedGenerator so training
is seeded (and stateless on JAX).
Loss: the decoder's negative log-likelihood plus ``beta`` times the KL
divergence to N(0, I), averaged over the batch. The likelihood is either
Bernoulli (binary cross-entropy summed over pixels) or a calibrated Gaussian
(Rybkin et al. 2021, "optimal sigma-VAE"): a Gaussian of the decoder's mean and
one variance per image, set to its optimum, the image's mean squared error. Its
negative log-density is D/2 * (log(2 pi mse) + 1) for D pixels, so the
reconstruction term weighs against the KL as the error falls, and the images
come out much sharper than Bernoulli's. The Gaussian's nats are those of a
density, not comparable with Bernoulli's probabilities. The training step is in
:mod:`models.train_steps` (one per backend).
"""

from __future__ import annotations

import math

import keras
from keras import ops

from configs.vae import VAEConfig
from models import train_steps
from models.phased import PhasedModel

IMAGE_SHAPE = (28, 28, 1)
_DEFAULT = VAEConfig()  # the defaults, written once there


def build_vae_encoder(latent_dim: int = _DEFAULT.latent_dim, width: int = _DEFAULT.width,
                      dense_units: int = _DEFAULT.dense_units) -> keras.Model:
    """Image -> ``[z_mean, z_log_var]``, each of size ``latent_dim``."""
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    x = keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu",
                            name="conv1")(inputs)  # 14x14
    x = keras.layers.Conv2D(2 * width, 3, strides=2, padding="same", activation="relu",
                            name="conv2")(x)  # 7x7
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense_units, activation="relu", name="dense")(x)
    z_mean = keras.layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = keras.layers.Dense(latent_dim, name="z_log_var")(x)
    return keras.Model(inputs, [z_mean, z_log_var], name="vae_encoder")


def build_vae_decoder(latent_dim: int = _DEFAULT.latent_dim, width: int = _DEFAULT.width,
                      dense_units: int = _DEFAULT.dense_units) -> keras.Model:
    """Latent point -> 28x28x1 image in [0, 1] (sigmoid)."""
    inputs = keras.Input((latent_dim,), name="z")
    x = keras.layers.Dense(dense_units, activation="relu", name="decoder_hidden")(inputs)
    x = keras.layers.Dense(7 * 7 * 2 * width, activation="relu", name="decoder_dense")(x)
    x = keras.layers.Reshape((7, 7, 2 * width), name="reshape")(x)
    x = keras.layers.Conv2DTranspose(2 * width, 3, strides=2, padding="same",
                                     activation="relu", name="deconv1")(x)  # 14x14
    x = keras.layers.Conv2DTranspose(width, 3, strides=2, padding="same",
                                     activation="relu", name="deconv2")(x)  # 28x28
    image = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid", name="image")(x)
    return keras.Model(inputs, image, name="vae_decoder")


# Floor of the Gaussian decoder's variance: keeps log(variance) finite on an
# image reconstructed exactly (sigma >= 1e-3, a thousandth of the pixel range).
MIN_VARIANCE = 1e-6


def gaussian_nll(images, reconstruction):
    """Per-image negative log-density (nats) of ``images`` under a Gaussian of mean
    ``reconstruction`` and the image's optimal variance (its mean squared error,
    floored at ``MIN_VARIANCE``)."""
    squared = ops.square(images - reconstruction)
    pixels = ops.cast(ops.prod(ops.shape(images)[1:]), images.dtype)
    mse = ops.mean(squared, axis=(1, 2, 3))
    variance = mse + MIN_VARIANCE
    return 0.5 * pixels * (ops.log(2.0 * math.pi * variance) + mse / variance)


def bernoulli_nll(images, reconstruction):
    """Per-image binary cross-entropy summed over pixels (nats)."""
    return ops.sum(ops.binary_crossentropy(images, reconstruction), axis=(1, 2, 3))


NEGATIVE_LOG_LIKELIHOODS = {"bernoulli": bernoulli_nll, "gaussian": gaussian_nll}


def vae_losses(images, reconstruction, z_mean, z_log_var, likelihood: str = "bernoulli"):
    """Per-batch mean reconstruction loss (the likelihood's negative log, summed over
    pixels) and KL (nats)."""
    nll = NEGATIVE_LOG_LIKELIHOODS[likelihood](images, reconstruction)
    reconstruction_loss = ops.mean(nll)
    kl = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
    kl_loss = ops.mean(ops.sum(kl, axis=1))
    return reconstruction_loss, kl_loss


@keras.saving.register_keras_serializable(package="unsupervised28")
class VAE(PhasedModel):
    """Encoder + reparameterisation + decoder, trained on the ELBO.

    Args:
        encoder: model from :func:`build_vae_encoder`.
        decoder: model from :func:`build_vae_decoder`.
        beta: weight of the KL term (1 is the ELBO).
        seed: seeds the reparameterisation noise.
        likelihood: the decoder's, ``"bernoulli"`` or ``"gaussian"`` (see the
            module). Bernoulli when absent, as in files saved before the choice.
    """

    SUBMODELS = ("encoder", "decoder")
    TRACKERS = {"total_loss_tracker": "loss",
                "reconstruction_loss_tracker": "reconstruction_loss",
                "kl_loss_tracker": "kl_loss"}

    def __init__(self, encoder, decoder, beta: float = 1.0, seed: int | None = None,
                 likelihood: str = "bernoulli", **kwargs):
        super().__init__({"encoder": encoder, "decoder": decoder}, seed=seed, **kwargs)
        if likelihood not in NEGATIVE_LOG_LIKELIHOODS:
            raise ValueError(f"likelihood must be one of "
                             f"{', '.join(NEGATIVE_LOG_LIKELIHOODS)}. "
                             f"Received: likelihood={likelihood}")
        self.beta = float(beta)
        self.likelihood = likelihood

    @property
    def latent_dim(self) -> int:
        return int(self.decoder.input_shape[-1])

    def sample_z(self, z_mean, z_log_var):
        eps = ops.cast(train_steps.batch_normal(ops.shape(z_mean), self.seed_generator),
                       z_mean.dtype)
        return z_mean + ops.exp(0.5 * z_log_var) * eps

    def call(self, images, training=False):
        z_mean, z_log_var = self.encoder(images, training=training)
        return self.decoder(self.sample_z(z_mean, z_log_var), training=training)

    def _loss(self, data, training):
        images = keras.utils.unpack_x_y_sample_weight(data)[0]
        z_mean, z_log_var = self.encoder(images, training=training)
        reconstruction = self.decoder(self.sample_z(z_mean, z_log_var), training=training)
        # Losses in float32 also when the networks compute in a mixed precision.
        reconstruction, z_mean, z_log_var = (ops.cast(t, "float32") for t in
                                             (reconstruction, z_mean, z_log_var))
        reconstruction_loss, kl_loss = vae_losses(ops.cast(images, "float32"), reconstruction,
                                                  z_mean, z_log_var, self.likelihood)
        total = reconstruction_loss + self.beta * kl_loss
        return total, {"loss": total, "reconstruction_loss": reconstruction_loss,
                       "kl_loss": kl_loss}

    def train_phases(self):
        return [train_steps.Phase(self._loss, self.trainable_variables, self.optimizer)]

    def test_loss(self, data):
        return self._loss(data, training=False)

    def extra_config(self) -> dict:
        return {"beta": self.beta, "likelihood": self.likelihood}


def build_vae(latent_dim: int = _DEFAULT.latent_dim, width: int = _DEFAULT.width,
              beta: float = _DEFAULT.beta, likelihood: str = _DEFAULT.likelihood,
              seed: int | None = None, dense_units: int = _DEFAULT.dense_units) -> VAE:
    """A VAE whose encoder and decoder are built and named."""
    return VAE(build_vae_encoder(latent_dim, width, dense_units),
               build_vae_decoder(latent_dim, width, dense_units),
               beta=beta, seed=seed, likelihood=likelihood, name="vae")
