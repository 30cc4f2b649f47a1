"""The CAE as a KerasTuner hypermodel: conv widths, dense width, latent size,
dropout, L2, optimizer, learning rate and batch size.

The objective is the validation reconstruction MSE (``val_mse``), a metric of
its own so the L2 penalty inside ``val_loss`` does not favour small weights.
"""

from __future__ import annotations

from tuning.search_space import (TRAINING_SPACE, TrainableHyperModel,
                                 declare_training_hyperparameters, make_optimizer)

#: Search spaces by name: ``default`` for real searches, ``small`` for smoke runs
#: and tests (tiny widths, so a trial takes seconds).
SPACES = {
    "default": {
        "conv1": [16, 32, 64],
        "conv2": [32, 64, 128],
        "conv3": [64, 128, 256],
        "dense_units": [64, 128, 256, 512],
        "latent_dim": [8, 10, 16, 32],
        "dropout": (0.0, 0.3, 0.1),  # low, high, step
        "l2": [0.0, 1e-6, 1e-5, 1e-4],
        **TRAINING_SPACE,
    },
    "small": {
        "conv1": [4, 8],
        "conv2": [8],
        "conv3": [8, 16],
        "dense_units": [16, 32],
        "latent_dim": [3, 4],
        "dropout": (0.0, 0.2, 0.1),
        "l2": [0.0, 1e-5],
        "optimizer": ["adam", "sgd"],
        "learning_rate": (1e-3, 1e-2),
        "batch_size": [16, 32],
    },
}


class CAEHyperModel(TrainableHyperModel):
    """Builds and compiles a CAE (``models.cae``) from a trial's hyperparameters.

    Args:
        space: a name in :data:`SPACES` or a dict shaped like them.
    """

    OBJECTIVES = {"val_mse": "min", "val_loss": "min"}

    def __init__(self, space="default", **kwargs):
        super().__init__(**kwargs)
        self.space = SPACES[space] if isinstance(space, str) else dict(space)

    def config(self, hp):
        """The trial's :class:`models.cae.CAEConfig` (declares the architecture hps)."""
        from models.cae import CAEConfig

        s = self.space
        low, high, step = s["dropout"]
        return CAEConfig(
            conv_filters=(hp.Choice("conv1", s["conv1"]), hp.Choice("conv2", s["conv2"]),
                          hp.Choice("conv3", s["conv3"])),
            dense_units=hp.Choice("dense_units", s["dense_units"]),
            latent_dim=hp.Choice("latent_dim", s["latent_dim"]),
            dropout=hp.Float("dropout", low, high, step=step),
            l2=hp.Choice("l2", s["l2"]))

    def build(self, hp):
        from models.cae import build_cae

        model = build_cae(self.config(hp))
        declare_training_hyperparameters(hp, self.space)
        model.compile(optimizer=make_optimizer(hp), loss="mse", metrics=["mse"])
        return model

    def test_metrics(self, model, data) -> dict:
        import numpy as np

        recon = model.predict(data.x_test, batch_size=512, verbose=0)
        return {"test_mse": float(np.mean((np.asarray(recon) - data.x_test) ** 2))}
