"""Training the semi-supervised classifier on labelled and unlabelled images.

:class:`LabelledUnlabelledFeed` gives each step a batch of labelled images (with
their labels) and a larger batch of unlabelled ones; :func:`train_semi_supervised`
builds a :class:`models.semi_supervised.SemiSupervisedClassifier` on a copy of a
pretrained encoder (or on its architecture with fresh weights), trains it with
early stopping on validation accuracy (keeping the last epoch's weights), and
returns a record like the other classifiers' (:mod:`training.classifier`) whose
model is the plain-Keras inference classifier.
"""

from __future__ import annotations

import math
import time

import keras
import numpy as np

from accel import accelerate
from models.semi_supervised import build_semi_supervised
from runtime.backend import layer_seed
from storage.feeds import IndexedFeed, for_fit
from cli.errors import UserError, check_losses_finite
from training.classifier import EpochClock, EpochOrder, clone_encoder, evaluate
from training.classifier_config import Settings
from training.semi_supervised_config import SemiSupervisedSettings

# Seeds of this model's draws, apart from the other classifiers' (offsets 0-2).
SEED_OFFSET = 3


class LabelledUnlabelledFeed(IndexedFeed):
    """``((labelled, unlabelled), labels)`` batches: an epoch is one pass over the
    unlabelled images (whole batches only: constant shapes, one compiled step);
    the labelled images are drawn in passes of their own, each a fresh
    permutation, as many as the epoch needs. Both orders are drawn from
    ``(seed, epoch)``, so an epoch resumed after a restart sees the same batches.
    Give ``fit`` ``storage.feeds.for_fit(feed)``.

    Args:
        x, y: the labelled images and their integer labels.
        x_unlabelled: the unlabelled images (all training images, say).
        labelled_batch: labelled images per step.
        unlabelled_batch: unlabelled images per step (at most all of them).
        seed: seeds the orders.
    """

    def __init__(self, x, y, x_unlabelled, labelled_batch: int, unlabelled_batch: int,
                 seed: int, **kwargs):
        super().__init__(**kwargs)
        if len(x) == 0 or len(x_unlabelled) == 0:
            raise ValueError(f"the feed needs labelled and unlabelled images; received "
                             f"{len(x)} labelled, {len(x_unlabelled)} unlabelled")
        self.x, self.y, self.x_unlabelled = x, y, x_unlabelled
        self.labelled_batch = int(labelled_batch)
        self.unlabelled_batch = min(int(unlabelled_batch), len(x_unlabelled))
        self.seed = seed
        self.set_epoch(0)

    def __len__(self):
        return len(self.x_unlabelled) // self.unlabelled_batch

    def draw_orders(self, epoch: int) -> dict:
        rng = np.random.default_rng([self.seed, epoch])
        unlabelled = rng.permutation(len(self.x_unlabelled))
        passes = math.ceil(len(self) * self.labelled_batch / len(self.x))
        labelled = np.concatenate([rng.permutation(len(self.x)) for _ in range(passes)])
        return {"labelled": labelled, "unlabelled": unlabelled}

    def batch(self, i, orders, take):
        lab = orders["labelled"][i * self.labelled_batch:(i + 1) * self.labelled_batch]
        unl = orders["unlabelled"][i * self.unlabelled_batch:(i + 1) * self.unlabelled_batch]
        return (take(self.x, lab), take(self.x_unlabelled, unl)), take(self.y, lab)


def build_model(encoder, settings: Settings, semi: SemiSupervisedSettings, decoder=None):
    """The training model on a copy of ``encoder`` (its weights, or fresh ones with
    ``semi.semi_supervised_start == "scratch"``) and of ``decoder`` when given."""
    keras.utils.set_random_seed(layer_seed(settings.seed, SEED_OFFSET))
    if semi.semi_supervised_start == "scratch":
        start = keras.models.clone_model(encoder)  # clone_model re-initialises
        decoder = None
    else:
        start = clone_encoder(encoder)
        decoder = None if decoder is None else clone_encoder(decoder)
    return build_semi_supervised(
        start, settings.features, decoder, settings.hidden_units,
        settings.head_dropout_end_to_end, settings.feature_dropout,
        weak_shift=semi.weak_shift, strong_view=semi.strong_view,
        seed=layer_seed(settings.seed, 100 * SEED_OFFSET),
        reconstruction_weight=semi.reconstruction_weight, consistency=semi.consistency,
        consistency_weight=semi.consistency_weight, threshold=semi.pseudo_label_threshold,
        distribution_alignment=semi.distribution_alignment,
        # No label smoothing: it caps the confidence the model learns (0.91 for 10
        # classes at 0.1), below the pseudo-labels' threshold (measured: 5% of the
        # unlabelled images passed 0.95 with it).
        label_smoothing=0.0)


class LastStepWeights(keras.callbacks.Callback):
    """The trainable weights at the end of the latest epoch, before Keras puts the
    moving average in their place at the end of ``fit`` (``use_ema``)."""

    def __init__(self, model):
        super().__init__()
        self.values = self.read(model)

    @staticmethod
    def read(model):
        return [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]

    def on_epoch_end(self, epoch, logs=None):
        self.values = self.read(self.model)


def compile_model(model, settings: Settings, semi: SemiSupervisedSettings, steps: int,
                  ema_momentum: float = 0.0):
    """AdamW with the learning rate decayed to 0 along a cosine over ``steps``; with
    ``ema_momentum`` > 0, the optimizer keeps a moving average of the weights
    (Keras's ``use_ema``), which ``fit`` puts in the model when it ends."""
    schedule = keras.optimizers.schedules.CosineDecay(semi.semi_supervised_lr, max(1, steps))
    model.compile(optimizer=keras.optimizers.AdamW(
        schedule, weight_decay=settings.weight_decay, use_ema=ema_momentum > 0,
        ema_momentum=ema_momentum or 0.99))
    return accelerate(model)  # the backend speed paths; the saved model stays plain Keras


def check_labels(y, num_classes: int = 10) -> None:
    """At least one labelled image of every class: fewer labels than classes leave a
    class the cross-entropy never sees."""
    present = len(np.unique(y))
    if len(y) < num_classes or present < num_classes:
        raise UserError(f"{len(y)} labelled images of {present} classes: the semi-supervised "
                        f"model needs at least one label of each of the {num_classes} classes")


def train_semi_supervised(encoder, x, y, x_unlabelled, x_val, y_val, x_test, y_test,
                          settings: Settings, semi: SemiSupervisedSettings | None = None,
                          decoder=None, backup_dir: str | None = None) -> dict:
    """The semi-supervised classifier on the labelled ``(x, y)`` and ``x_unlabelled``.

    Args:
        encoder: the pretrained encoder (left unchanged: a copy is trained).
        x, y: the labelled training images and their integer labels.
        x_unlabelled: the images used without labels (all training images).
        x_val, y_val, x_test, y_test: validation and test images and labels.
        settings: the classifiers' :class:`Settings` (head, features, weight
            decay, label smoothing, patience, seed, verbosity).
        semi: this model's own settings (default: their defaults).
        decoder: the CAE's decoder to start from, if any (else a fresh one).
        backup_dir: keep the training state there after every epoch, and continue
            from the one found there.

    Returns:
        A record as :func:`training.classifier.train_baseline`'s; ``"model"`` is
        the inference classifier (image -> class probabilities, plain Keras).
    """
    from storage.training_backup import TrainingBackup

    semi = semi or SemiSupervisedSettings()
    check_labels(y)
    model = build_model(encoder, settings, semi, decoder)
    feed = LabelledUnlabelledFeed(x, y, x_unlabelled, semi.labelled_batch_size,
                                  semi.unlabelled_batch_size,
                                  layer_seed(settings.seed, SEED_OFFSET))
    epochs = semi.semi_supervised_epochs
    ema = semi.ema_momentum(len(feed))
    compile_model(model, settings, semi, epochs * len(feed), ema)
    # The last epoch's weights, not the best validation epoch's: the learning rate
    # decays to 0 by the last epoch, and a validation subset as scarce as the
    # labels (120 images at 480 labels: +-3 points of noise) picks an epoch by
    # chance: at 480 labels it had picked epoch 6 of 20 (82.64% on the test images),
    # where the last epoch scores 83.81% (benchmarks/results/semi_supervised_labels.md).
    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_accuracy", mode="max", patience=settings.patience,
        restore_best_weights=False)
    clock = EpochClock()
    callbacks = [early_stopping, keras.callbacks.TerminateOnNaN(), clock]
    if ema:
        # Validation sees the moving average; training, and the backup kept at
        # each epoch's end, the weights themselves.
        callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=False))
    initial_epoch, finished = 0, False
    if backup_dir is None:
        keeper = EpochOrder(feed)
    else:
        keeper = TrainingBackup(backup_dir, feed, watched=[early_stopping])
        initial_epoch = keeper.restore(model)
        finished = keeper.finished
        if keeper.stopped:
            initial_epoch = epochs  # early stopping had ended it: no further epoch
        if keeper.history.get("seconds"):
            clock.offset = keeper.history["seconds"][-1]
    last_step = LastStepWeights(model) if ema else None
    if last_step is not None:
        callbacks.append(last_step)
    if not finished:
        model.fit(for_fit(feed), validation_data=(x_val, y_val), epochs=epochs,
                  initial_epoch=initial_epoch, callbacks=[*callbacks, keeper],  # keeper last
                  verbose=settings.verbose, shuffle=False, validation_batch_size=512)
    history = keeper.history
    check_losses_finite(history, "try a lower --semi-supervised-lr")
    classifier = model.classifier()
    last_step_accuracy = None
    if last_step is not None:
        # fit has put the moving average in the model, unless no epoch was left to
        # run after a restart: finalising again is harmless either way.
        model.optimizer.finalize_variable_values(model.trainable_variables)
        average = LastStepWeights.read(model)
        for variable, value in zip(model.trainable_variables, last_step.values):
            variable.assign(value)
        last_step_accuracy = evaluate(classifier, x_test, y_test)["test_accuracy"]
        for variable, value in zip(model.trainable_variables, average):
            variable.assign(value)
    val_acc = history["val_accuracy"]
    record = {"epochs": len(val_acc), "wall_time_s": history["seconds"][-1],
              "best_val_accuracy": max(val_acc), "val_accuracy": val_acc,
              "val_loss": history["val_loss"], "seconds": history["seconds"],
              "pseudo_label_rate": history.get("pseudo_label_rate"),
              "labelled_images": int(len(x)), "unlabelled_images": int(len(x_unlabelled)),
              "settings": dict(vars(semi)),
              # With a moving average (test_accuracy's), the last step's weights'.
              "last_step_test_accuracy": last_step_accuracy,
              "trainable_parameters": int(sum(math.prod(w.shape)
                                              for w in classifier.trainable_weights))}
    record.update(evaluate(classifier, x_test, y_test))
    record["model"] = classifier
    return record
