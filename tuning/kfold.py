"""k-fold cross-validation inside a KerasTuner trial, with early stopping,
TensorBoard logs and HParams per trial.

KerasTuner has no k-fold. :class:`KFoldTrialMixin` replaces a tuner's
``run_trial`` (``make_tuner(..., tuner_class=KFoldTrialMixin, folds=K)``):
for K >= 2 each trial trains K models on seeded folds of the training arrays
and reports the mean of the K best validation scores and their standard
deviation; K = 1 trains one model on the given ``validation_data`` (hold-out).
Every fold uses the same seeds in every trial, so trials are compared on
identical splits and initial weights.

Hyperband rounds after the first continue a parent trial: each fold loads its
parent's fold weights where they are on this machine (a distributed worker
may not have them; it then trains from scratch for the round's epochs).
"""

from __future__ import annotations

import gc
import os
import time

import numpy as np


def fold_indices(n: int, folds: int, seed: int) -> list:
    """``folds`` (train_idx, val_idx) pairs over ``range(n)``, shuffled by ``seed``."""
    from sklearn.model_selection import KFold

    if folds < 2:
        raise ValueError(f"k-fold needs folds >= 2, got {folds}")
    if n < folds:
        raise ValueError(f"cannot split {n} samples into {folds} folds")
    return list(KFold(n_splits=folds, shuffle=True, random_state=seed).split(np.arange(n)))


def _best_in_history(history, name: str, direction: str) -> float:
    values = history.history.get(name)
    if not values:
        raise KeyError(f"objective {name!r} is not among the fit's metrics "
                       f"{sorted(history.history)}")
    return float(np.nanmin(values) if direction == "min" else np.nanmax(values))


def _take(a, idx):
    return None if a is None else a[idx]


class KFoldTrialMixin:
    """Mixin for a KerasTuner ``Tuner``: k-fold (or hold-out) ``run_trial``.

    Keyword arguments (popped before the tuner's own ``__init__``):
        folds: K; 1 is the plain hold-out on ``validation_data``.
        fold_seed: seeds the folds and each fold's initial weights.
        patience: early stopping patience (epochs) inside each fold.
        tensorboard_dir: root of the per-trial logs
            (``<tensorboard_dir>/<trial_id>``); None writes none.
        on_trial_done: optional ``callable(trial_id, metrics)``, e.g. to print.
        fit_verbose: Keras verbosity of each fold's ``fit``; None uses the
            ``verbose`` given to ``search`` (which also sets KerasTuner's
            trial tables).
    """

    def __init__(self, *args, folds: int = 1, fold_seed: int = 0, patience: int = 3,
                 tensorboard_dir: str | None = None, on_trial_done=None,
                 fit_verbose: int | None = None, **kwargs):
        if folds < 1:
            raise ValueError(f"folds must be >= 1, got {folds}")
        self.folds = folds
        self.fold_seed = fold_seed
        self.patience = patience
        self.tensorboard_dir = tensorboard_dir
        self.on_trial_done = on_trial_done
        self.fit_verbose = fit_verbose
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------ the trial

    def run_trial(self, trial, x, y=None, validation_data=None, epochs=1, verbose=0,
                  callbacks=(), **fit_kwargs):
        """Trains ``folds`` models; returns the metrics dict the oracle records."""
        import keras

        hp = trial.hyperparameters
        objective = self.oracle.objective
        name, direction = objective.name, objective.direction
        initial_epoch = 0
        if "tuner/epochs" in hp.values:  # Hyperband sets each round's budget
            epochs = hp.values["tuner/epochs"]
            initial_epoch = hp.values["tuner/initial_epoch"]
        parent = hp.values.get("tuner/trial_id")
        if self.fit_verbose is not None:
            verbose = self.fit_verbose
        # Only Hyperband reuses fold weights; other tuners keep no per-fold files.
        keep_weights = "tuner/epochs" in hp.values

        log_root = None
        if self.tensorboard_dir:
            log_root = os.path.join(self.tensorboard_dir, str(trial.trial_id))
            from storage.run_folder import remove_written_folder
            remove_written_folder(log_root)  # a retried trial starts clean

        if self.folds == 1:
            splits = [(x, y, validation_data)]
        else:
            splits = [(_take(x, tr), _take(y, tr), (_take(x, va), _take(y, va)))
                      for tr, va in fold_indices(len(x), self.folds, self.fold_seed)]

        start = time.perf_counter()
        scores, epochs_run = [], []
        for k, (x_tr, y_tr, val) in enumerate(splits):
            keras.backend.clear_session()
            keras.utils.set_random_seed(self.fold_seed + k)  # same start in every trial
            model = self.hypermodel.build(hp)
            start_epoch = initial_epoch
            if parent is not None:
                parent_file = self._fold_weights(parent, k)
                if os.path.isfile(parent_file):
                    # Build the optimizer first so its state is restored too.
                    model.optimizer.build(model.trainable_variables)
                    model.load_weights(parent_file)
                else:
                    start_epoch = 0  # parent trained elsewhere: start afresh
            fold_callbacks = [keras.callbacks.TerminateOnNaN(), *callbacks]
            if getattr(self.hypermodel, "early_stopping", True):
                fold_callbacks.insert(0, keras.callbacks.EarlyStopping(
                    monitor=name, mode=direction, patience=self.patience,
                    restore_best_weights=True))
            if log_root:
                fold_callbacks.append(keras.callbacks.TensorBoard(
                    os.path.join(log_root, f"fold{k + 1}" if self.folds > 1 else "holdout"),
                    write_graph=False, profile_batch=0))
            history = self.hypermodel.fit(hp, model, x_tr, y_tr, validation_data=val,
                                          epochs=epochs, initial_epoch=start_epoch,
                                          callbacks=fold_callbacks, verbose=verbose,
                                          **fit_kwargs)
            if hasattr(self.hypermodel, "trial_score"):
                scores.append(self.hypermodel.trial_score(model, history))
            else:
                scores.append(_best_in_history(history, name, direction))
            epochs_run.append(len(next(iter(history.history.values()), ())))
            if keep_weights:
                model.save_weights(self._fold_weights(trial.trial_id, k))
            # Drop this fold's model before the next is built: with
            # clear_session above, memory stays flat across trials.
            del model, history
            gc.collect()
        metrics = {
            name: float(np.mean(scores)),
            f"{name}_std": float(np.std(scores)),
            "folds": float(self.folds),
            "epochs": float(np.mean(epochs_run)),
            "seconds": float(time.perf_counter() - start),
        }
        if log_root:
            from tuning.dashboard import write_trial_hparams
            write_trial_hparams(log_root, trial, metrics)
        if self.on_trial_done is not None:
            self.on_trial_done(trial.trial_id, metrics)
        return metrics

    def _fold_weights(self, trial_id, k: int) -> str:
        return os.path.join(self.get_trial_dir(trial_id), f"fold{k + 1}.weights.h5")
