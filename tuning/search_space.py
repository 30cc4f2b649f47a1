"""Hyperparameters every trainable hypermodel shares: optimizer, learning rate, batch size.

The CAE hypermodel (``tuning/cae_hypermodel.py``) and the classifier head's
hypermodel both subclass :class:`TrainableHyperModel`, so both get the same
optimizer choice (Adam, or SGD with Nesterov momentum), the same log-uniform
learning rate and a batch size that ``fit`` reads back from the trial.
"""

from __future__ import annotations

import keras_tuner as kt

#: SGD's momentum: the reports tuned "SGD with momentum", not the momentum itself.
SGD_MOMENTUM = 0.9

TRAINING_SPACE = {
    "optimizer": ["adam", "sgd"],
    "learning_rate": (1e-4, 1e-2),  # log-uniform
    "batch_size": [32, 64, 128, 256],
}


def declare_training_hyperparameters(hp: kt.HyperParameters, space: dict) -> None:
    """Declares ``optimizer``, ``learning_rate`` and ``batch_size`` on ``hp``.

    Declared in ``build`` (not in ``fit``) so every tuner sees the whole
    space before the first trial; ``fit`` then reads the value back.
    """
    hp.Choice("optimizer", list(space["optimizer"]))
    low, high = space["learning_rate"]
    hp.Float("learning_rate", low, high, sampling="log")
    hp.Choice("batch_size", list(space["batch_size"]))


def make_optimizer(hp: kt.HyperParameters):
    """The trial's Keras optimizer."""
    import keras

    lr = hp.get("learning_rate")
    if hp.get("optimizer") == "sgd":
        return keras.optimizers.SGD(lr, momentum=SGD_MOMENTUM, nesterov=True)
    return keras.optimizers.Adam(lr)


class TrainableHyperModel(kt.HyperModel):
    """A hypermodel whose ``fit`` uses the trial's ``batch_size``.

    Subclasses implement ``build(hp)`` (calling
    :func:`declare_training_hyperparameters` and compiling with
    :func:`make_optimizer`) and name the metric to minimise in ``objective``.
    """

    #: The metric the tuner minimises, a key of ``History.history``.
    objective = "val_loss"

    def fit(self, hp, model, *args, **kwargs):
        kwargs["batch_size"] = hp.get("batch_size")
        return model.fit(*args, **kwargs)
