"""The VAE (``models.vae``) as a KerasTuner hypermodel: latent size, width, width
of the dense layers, beta, learning rate and batch size.

The objective is the validation negative ELBO in nats (``val_neg_elbo``: the
reconstruction BCE plus the KL, lower is better). It is not ``val_loss``: that
weighs the KL by the trial's beta, so trials with other betas would not be
compared on the same quantity. The VAE's own ``train_step``
(``models.train_steps``) trains every trial unchanged on every backend.
"""

from __future__ import annotations

import keras

from tuning.search_space import TrainableHyperModel

SPACES = {
    "default": {
        "latent_dim": [2, 8, 16, 32],
        "width": [16, 32, 64],
        "dense_units": [128, 256, 512],
        "beta": (0.25, 4.0),  # log-uniform
        "learning_rate": (1e-4, 3e-3),  # log-uniform
        "batch_size": [32, 64, 128, 256],
    },
    "small": {
        "latent_dim": [2, 4],
        "width": [4, 8],
        "dense_units": [8, 16],
        "beta": (0.5, 2.0),
        "learning_rate": (1e-3, 1e-2),
        "batch_size": [16, 32],
    },
}


class NegativeElbo(keras.callbacks.Callback):
    """Adds ``neg_elbo`` and ``val_neg_elbo`` (reconstruction + KL, nats per
    image) to each epoch's logs; put it before the callbacks that read them."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for prefix in ("", "val_"):
            if f"{prefix}reconstruction_loss" in logs:
                logs[f"{prefix}neg_elbo"] = (logs[f"{prefix}reconstruction_loss"]
                                             + logs[f"{prefix}kl_loss"])


class VAEHyperModel(TrainableHyperModel):
    """Builds and compiles a VAE (Adam) from a trial's hyperparameters.

    Args:
        space: a name in :data:`SPACES` or a dict shaped like them.
        seed: seeds the reparameterisation noise of every trial's VAE.
    """

    OBJECTIVES = {"val_neg_elbo": "min", "val_reconstruction_loss": "min"}
    supports_folds = False

    def __init__(self, space="default", seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.space = SPACES[space] if isinstance(space, str) else dict(space)
        self.seed = seed

    def build(self, hp):
        from models.vae import build_vae

        s = self.space
        vae = build_vae(latent_dim=hp.Choice("latent_dim", s["latent_dim"]),
                        width=hp.Choice("width", s["width"]),
                        dense_units=hp.Choice("dense_units", s["dense_units"]),
                        beta=hp.Float("beta", *s["beta"], sampling="log"),
                        # The space and its reported BCE are Bernoulli's.
                        likelihood="bernoulli", seed=self.seed)
        lr = hp.Float("learning_rate", *s["learning_rate"], sampling="log")
        hp.Choice("batch_size", s["batch_size"])
        vae.compile(optimizer=keras.optimizers.Adam(lr))
        return vae

    def search_data(self, data) -> tuple:
        return data.x_train, None, (data.x_val,)

    def fit(self, hp, model, x, y=None, callbacks=(), **kwargs):
        # NegativeElbo first, so early stopping and the history see val_neg_elbo.
        return super().fit(hp, model, x, callbacks=[NegativeElbo(), *(callbacks or ())],
                           **kwargs)

    def test_metrics(self, model, data) -> dict:
        test = model.evaluate(data.x_test, batch_size=512, verbose=0, return_dict=True)
        rec, kl = float(test["reconstruction_loss"]), float(test["kl_loss"])
        # One reparameterised sample per image: a stochastic estimate.
        return {"test_neg_elbo_nats": rec + kl, "test_reconstruction_bce": rec,
                "test_kl": kl}
