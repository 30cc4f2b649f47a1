"""The DCGAN (``models.gan``) as a KerasTuner hypermodel: latent size, width,
each network's learning rate, Adam's beta_1 and the batch size.

The objective is a sample-quality distance computed once a trial's training
ends (with Hyperband, at the end of each round): ``fid`` (default) or ``kid``
between a fixed number of images generated from a fixed noise seed and the
validation split, in the features of a domain classifier. The GAN's losses
are no objective: the two networks play a game, so a low generator loss may
only mean a weak discriminator, and they say nothing of sample quality. For
the same reason trials do not stop early.

The GAN's own two-phase ``train_step`` (``models.train_steps``) trains every
trial unchanged on every backend.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from tuning.search_space import TrainableHyperModel

SPACES = {
    "default": {
        "latent_dim": [32, 64, 100, 128],
        "width": [8, 16, 32],
        "learning_rate": (5e-5, 1e-3),  # log-uniform, each network its own
        "beta_1": [0.0, 0.3, 0.5, 0.7, 0.9],
        "batch_size": [32, 64, 128, 256],
    },
    "small": {
        "latent_dim": [4, 8],
        "width": [2, 4],
        "learning_rate": (1e-4, 1e-3),
        "beta_1": [0.5, 0.9],
        "batch_size": [16, 32],
    },
}


class GANHyperModel(TrainableHyperModel):
    """Builds and compiles a DCGAN from a trial's hyperparameters.

    Args:
        distance: ``distance(images, split, metric) -> float``: the ``metric``
            (``fid`` or ``kid``) between images in [0, 1] (N, 28, 28, 1) and the
            real ``split`` (``val`` or ``test``).
        space: a name in :data:`SPACES` or a dict shaped like them.
        n_samples: images generated to score a trial.
        noise_seed: seeds the fixed noise they are generated from.
        seed: seeds the noise drawn in training.
    """

    OBJECTIVES = {"fid": "min", "kid": "min"}
    supports_folds = False
    early_stopping = False

    def __init__(self, distance: Callable, space="default", n_samples: int = 5000,
                 noise_seed: int = 0, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.distance = distance
        self.space = SPACES[space] if isinstance(space, str) else dict(space)
        self.n_samples = n_samples
        self.noise_seed = noise_seed
        self.seed = seed

    def build(self, hp):
        import keras

        from models.gan import build_gan

        s = self.space
        gan = build_gan(latent_dim=hp.Choice("latent_dim", s["latent_dim"]),
                        width=hp.Choice("width", s["width"]), seed=self.seed)
        d_lr = hp.Float("d_learning_rate", *s["learning_rate"], sampling="log")
        g_lr = hp.Float("g_learning_rate", *s["learning_rate"], sampling="log")
        beta_1 = hp.Choice("beta_1", s["beta_1"])
        hp.Choice("batch_size", s["batch_size"])
        gan.compile(keras.optimizers.Adam(d_lr, beta_1=beta_1, name="d_adam"),
                    keras.optimizers.Adam(g_lr, beta_1=beta_1, name="g_adam"))
        return gan

    def search_data(self, data) -> tuple:
        from models.gan import to_gan_range

        return to_gan_range(data.x_train), None, None  # no validation pass: see trial_score

    def samples(self, gan) -> np.ndarray:
        """``n_samples`` images in [0, 1] from the fixed noise."""
        from models.gan import from_gan_range

        noise = np.random.default_rng(self.noise_seed).standard_normal(
            (self.n_samples, gan.latent_dim)).astype("float32")
        return from_gan_range(gan.generator.predict(noise, batch_size=500, verbose=0))

    def trial_score(self, model, history) -> float:
        return float(self.distance(self.samples(model), "val", self.objective))

    def test_metrics(self, model, data) -> dict:
        images = self.samples(model)
        return {f"test_{m}": float(self.distance(images, "test", m)) for m in self.OBJECTIVES}

    def inference_model(self, model):
        return model.generator
