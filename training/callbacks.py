"""Keras callbacks the training commands use, each importable and testable alone."""

from __future__ import annotations

import os

import keras
import numpy as np


class GANMonitor(keras.callbacks.Callback):
    """A GAN's fixed-noise sample grid after every epoch (``samples_epoch_NNN.png`` in
    ``out``) and its per-iteration losses and discriminator outputs (``iterations``).

    Args:
        out: folder for the grids.
        latent_dim: the generator's input size.
        seed: seeds the fixed noise, so every epoch's grid shows the same points.
        n: images per grid.
    """

    KEYS = ("d_loss", "g_loss", "d_real", "d_fake")
    BACKUP_STATE = ("iterations",)  # kept by storage.training_backup for --resume

    def __init__(self, out: str, latent_dim: int, seed: int = 0, n: int = 64):
        super().__init__()
        self.out = out
        self.noise = np.random.default_rng(seed).standard_normal(
            (n, latent_dim)).astype("float32")
        self.iterations = {key: [] for key in self.KEYS}
        self._previous = {}

    def on_epoch_begin(self, epoch, logs=None):
        self._previous = {}

    def on_train_batch_end(self, batch, logs=None):
        # Keras reports running means over the epoch; recover each batch's
        # value: v_k = k * m_k - (k - 1) * m_(k-1).
        for key in self.iterations:
            mean = float(logs[key])
            k = batch + 1
            value = k * mean - (k - 1) * self._previous.get(key, 0.0)
            self.iterations[key].append(value)
            self._previous[key] = mean

    def on_epoch_end(self, epoch, logs=None):
        from models.gan import from_gan_range
        from plots.figures import image_grid

        images = from_gan_range(self.model.generator.predict(self.noise, verbose=0))
        image_grid(images, os.path.join(self.out, f"samples_epoch_{epoch + 1:03d}.png"),
                   f"DCGAN samples after epoch {epoch + 1} (fixed noise)")


class StartFrom(keras.callbacks.Callback):
    """Copies ``plain``'s weights into the CAE about to be trained, when training
    begins: the model itself if it is named ``cae``, else its layer ``cae`` (the
    denoising trainer wraps the CAE behind a noise layer)."""

    def __init__(self, plain: keras.Model):
        super().__init__()
        self.plain = plain

    def on_train_begin(self, logs=None):
        cae = self.model.get_layer("cae") if self.model.name != "cae" else self.model
        cae.set_weights(self.plain.get_weights())
