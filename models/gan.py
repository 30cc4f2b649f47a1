"""DCGAN for 32x32x1 images in [-1, 1] (28x28 images padded by 2 pixels).

As the report built it: a generator of transposed convolutions with batch norm
and ReLU and a tanh output; a discriminator of strided convolutions with
LeakyReLU(0.2) and batch norm, giving a logit; every kernel initialised from
N(0, 0.02); the non-saturating loss; Adam(2e-4, beta_1=0.5) for each network.
``width`` scales every layer: the generator has 6w, 3w, w filters and the
discriminator w, 2w, 4w, so ``width=64`` is the report's 384/192/64 and the
default 16 trains in minutes on two CPU cores.

Each training step updates the discriminator on a real and a generated batch,
then the generator on a fresh generated batch (:mod:`models.train_steps`).
"""

from __future__ import annotations

import keras
from keras import ops

from configs.gan import GANConfig
from models import train_steps
from models.phased import PhasedModel

GAN_IMAGE_SHAPE = (32, 32, 1)
_DEFAULT = GANConfig()  # the defaults, written once there


def _init():
    return keras.initializers.RandomNormal(0.0, 0.02)


def _batch_norm(name):
    return keras.layers.BatchNormalization(
        momentum=0.9, epsilon=1e-5,
        gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02), name=name)


def build_generator(latent_dim: int = _DEFAULT.latent_dim,
                    width: int = _DEFAULT.width) -> keras.Model:
    """Noise (latent_dim,) -> 32x32x1 image in [-1, 1]."""
    inputs = keras.Input((latent_dim,), name="z")
    x = keras.layers.Dense(4 * 4 * 6 * width, use_bias=False, kernel_initializer=_init(),
                           name="project")(inputs)
    x = keras.layers.Reshape((4, 4, 6 * width), name="reshape")(x)
    x = _batch_norm("bn0")(x)
    x = keras.layers.ReLU(name="relu0")(x)
    for i, filters in enumerate((3 * width, width), start=1):  # 4 -> 8 -> 16
        x = keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same",
                                         use_bias=False, kernel_initializer=_init(),
                                         name=f"deconv{i}")(x)
        x = _batch_norm(f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    image = keras.layers.Conv2DTranspose(1, 4, strides=2, padding="same", activation="tanh",
                                         kernel_initializer=_init(), name="image")(x)  # 32
    return keras.Model(inputs, image, name="generator")


def build_discriminator(width: int = _DEFAULT.width,
                        spectral_norm: bool = _DEFAULT.spectral_norm) -> keras.Model:
    """32x32x1 image in [-1, 1] -> one logit (real > 0).

    ``spectral_norm`` wraps every convolution and the logit layer in Keras's
    built-in ``SpectralNormalization`` (Miyato et al. 2018) in place of batch
    norm; only the discriminator has it, so the saved generator stays plain.
    """
    def sn(layer):
        return keras.layers.SpectralNormalization(layer, name=f"sn_{layer.name}") \
            if spectral_norm else layer

    inputs = keras.Input(GAN_IMAGE_SHAPE, name="image")
    x = inputs
    for i, filters in enumerate((width, 2 * width, 4 * width), start=1):  # 32->16->8->4
        x = sn(keras.layers.Conv2D(filters, 4, strides=2, padding="same",
                                   use_bias=i == 1 or spectral_norm,
                                   kernel_initializer=_init(), name=f"conv{i}"))(x)
        if i > 1 and not spectral_norm:  # DCGAN: no batch norm on the input layer
            x = _batch_norm(f"d_bn{i}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"lrelu{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    logit = sn(keras.layers.Dense(1, kernel_initializer=_init(), name="logit"))(x)
    return keras.Model(inputs, logit, name="discriminator")


def discriminator_loss(real_logits, fake_logits):
    """-log D(x) - log(1 - D(G(z))), from logits (softplus is stable)."""
    return ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))


def generator_loss(fake_logits):
    """Non-saturating: -log D(G(z))."""
    return ops.mean(ops.softplus(-fake_logits))


def to_gan_range(images):
    """(N, 28, 28, 1) in [0, 1] -> (N, 32, 32, 1) in [-1, 1], zero-padded (as -1)."""
    import numpy as np

    padded = np.pad(np.asarray(images, "float32"), ((0, 0), (2, 2), (2, 2), (0, 0)))
    return padded * 2.0 - 1.0


def from_gan_range(images):
    """(N, 32, 32, 1) in [-1, 1] -> centre 28x28 crop in [0, 1]."""
    import numpy as np

    images = np.asarray(images, "float32")[:, 2:30, 2:30, :]
    return np.clip((images + 1.0) / 2.0, 0.0, 1.0)


@keras.saving.register_keras_serializable(package="unsupervised28")
class GAN(PhasedModel):
    """Generator and discriminator trained against each other.

    Args:
        discriminator: model from :func:`build_discriminator`.
        generator: model from :func:`build_generator`.
        seed: seeds the noise drawn in training.
    """

    SUBMODELS = ("discriminator", "generator")
    TRACKERS = {"d_loss_tracker": "d_loss", "g_loss_tracker": "g_loss",
                "d_real_tracker": "d_real", "d_fake_tracker": "d_fake"}

    def __init__(self, discriminator, generator, seed: int | None = None, **kwargs):
        super().__init__({"discriminator": discriminator, "generator": generator}, seed=seed,
                         **kwargs)
        # One discriminator call on real and fake together: only without batch
        # norm, whose batch statistics would then mix the two.
        self._joint_batch = any(isinstance(layer, keras.layers.SpectralNormalization)
                                for layer in discriminator.layers)

    @property
    def latent_dim(self) -> int:
        return int(self.generator.input_shape[-1])

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        """Args: the discriminator's and the generator's optimizers; ``kwargs``
        go to ``keras.Model.compile`` (e.g. ``jit_compile``, ``run_eagerly``)."""
        # Under mixed_float16 each optimizer scales its loss (compile would wrap only one).
        d_optimizer = train_steps.with_loss_scale(d_optimizer, self)
        g_optimizer = train_steps.with_loss_scale(g_optimizer, self)
        super().compile(optimizer=g_optimizer, **kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        # Both optimizers behind model.optimizer: the JAX trainer then keeps
        # both optimizers' variables in its state (see models.train_steps).
        self.optimizer = train_steps.OptimizerGroup(
            [d_optimizer, g_optimizer],
            [self.discriminator.trainable_variables, self.generator.trainable_variables])
        self.optimizer.build()

    def call(self, images, training=False):
        """The discriminator's logits for 32x32 images (Keras builds the model
        by calling it on a training batch); draw images with ``generator``."""
        return self.discriminator(images, training=training)

    def _noise(self, images):
        return train_steps.batch_normal((ops.shape(images)[0], self.latent_dim),
                                        self.seed_generator)

    def _d_loss(self, data, training=True):
        real = keras.utils.unpack_x_y_sample_weight(data)[0]
        fake = ops.stop_gradient(self.generator(self._noise(real), training=training))
        if self._joint_batch:
            # Spectral normalisation rewrites its kernel in place on each training
            # call; torch's autograd rejects a second call in the same graph.
            logits = self.discriminator(ops.concatenate([real, fake]), training=training)
            real_logits, fake_logits = logits[:ops.shape(real)[0]], logits[ops.shape(real)[0]:]
        else:
            real_logits = self.discriminator(real, training=training)
            fake_logits = self.discriminator(fake, training=training)
        # Losses in float32 also when the networks compute in a mixed precision.
        real_logits = ops.cast(real_logits, "float32")
        fake_logits = ops.cast(fake_logits, "float32")
        loss = discriminator_loss(real_logits, fake_logits)
        return loss, {"d_loss": loss, "d_real": ops.mean(ops.sigmoid(real_logits)),
                      "d_fake": ops.mean(ops.sigmoid(fake_logits))}

    def _g_loss(self, data, training=True):
        real = keras.utils.unpack_x_y_sample_weight(data)[0]
        fake_logits = ops.cast(self.discriminator(
            self.generator(self._noise(real), training=training), training=training), "float32")
        loss = generator_loss(fake_logits)
        return loss, {"g_loss": loss}

    def train_phases(self):
        return [
            train_steps.Phase(self._d_loss, self.discriminator.trainable_variables,
                              self.d_optimizer),
            train_steps.Phase(self._g_loss, self.generator.trainable_variables,
                              self.g_optimizer),
        ]

    def test_loss(self, data):
        d_loss, logs = self._d_loss(data, training=False)
        g_loss, g_logs = self._g_loss(data, training=False)
        return d_loss + g_loss, {**logs, **g_logs}


def build_gan(latent_dim: int = _DEFAULT.latent_dim, width: int = _DEFAULT.width,
              seed: int | None = None, spectral_norm: bool = _DEFAULT.spectral_norm) -> GAN:
    return GAN(build_discriminator(width, spectral_norm), build_generator(latent_dim, width),
               seed=seed, name="gan")


def default_optimizers(lr: float = 2e-4, beta_1: float = 0.5, d_lr: float | None = None,
                       ema: float = 0.0):
    """Adam(``beta_1``) for the discriminator (``d_lr``, default ``lr``) and the
    generator (``lr``); ``ema`` > 0 keeps an exponential moving average of the
    generator's weights in its optimizer (``use_ema``): :func:`use_generator_ema`
    copies it into the generator after training. The defaults are the report's
    recipe, as :class:`training.gan.GANTraining`'s (a test pins them equal)."""
    g_kwargs = {"use_ema": True, "ema_momentum": ema} if ema else {}
    return (keras.optimizers.Adam(d_lr or lr, beta_1=beta_1, name="d_adam"),
            keras.optimizers.Adam(lr, beta_1=beta_1, name="g_adam", **g_kwargs))


def use_generator_ema(gan) -> bool:
    """Replaces the generator's weights by their moving average, if kept."""
    if not gan.g_optimizer.use_ema:
        return False
    gan.g_optimizer.finalize_variable_values(gan.generator.trainable_variables)
    return True
