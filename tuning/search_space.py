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
    :func:`make_optimizer`) and list the objectives they can be tuned on in
    ``OBJECTIVES``; ``objective`` is the one this search uses.

    What ``tune`` needs to run any model's search (``tasks/tune.py``):
    :meth:`search_data` (the arrays a trial trains and validates on),
    :meth:`trial_score` (the trial's objective once a model is trained) and
    :meth:`test_metrics` (the retrained best model on the test split).
    """

    #: Objectives this hypermodel can be tuned on, name -> direction; the first
    #: is the default. A name is a key of ``History.history`` unless
    #: :meth:`trial_score` computes it.
    OBJECTIVES = {"val_loss": "min"}
    #: Whether a trial may train K models on K folds (``--folds K``).
    supports_folds = True
    #: Whether trials stop early on the objective (it must be in the history).
    early_stopping = True

    def __init__(self, objective: str | None = None, **kwargs):
        super().__init__(**kwargs)
        name = objective or next(iter(self.OBJECTIVES))
        if name not in self.OBJECTIVES:
            raise ValueError(f"unknown objective {name!r}; valid: {', '.join(self.OBJECTIVES)}")
        self.objective = name

    @property
    def direction(self) -> str:
        return self.OBJECTIVES[self.objective]

    def fit(self, hp, model, *args, **kwargs):
        import keras

        from accel import accelerate
        from storage.feeds import for_fit

        if args and isinstance(args[0], keras.utils.PyDataset):  # one batches itself
            args = (for_fit(args[0]), *args[1:])
        else:
            kwargs["batch_size"] = hp.get("batch_size")
        return accelerate(model).fit(*args, **kwargs)

    def search_data(self, data) -> tuple:
        """(x, y, validation_data) of a trial, from a ``data.datasets.Dataset``:
        by default an autoencoder's (images as inputs and targets)."""
        return data.x_train, data.x_train, (data.x_val, data.x_val)

    def trial_score(self, model, history) -> float:
        """The trial's objective: its best epoch in the history."""
        import numpy as np

        values = history.history.get(self.objective)
        if not values:
            raise KeyError(f"objective {self.objective!r} is not among the fit's metrics "
                           f"{sorted(history.history)}")
        return float(np.nanmin(values) if self.direction == "min" else np.nanmax(values))

    def test_metrics(self, model, data) -> dict:
        """The retrained best model on the test split (for metrics.json)."""
        return {}

    def inference_model(self, model):
        """The model saved as ``best.keras``."""
        return model
