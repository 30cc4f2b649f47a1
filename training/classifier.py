"""Training and evaluating the three classifiers: frozen encoder, fine-tuned, baseline.

Each phase returns a record (accuracy, epochs, wall time, trainable parameters,
the validation-accuracy curve against epoch and against seconds) that the
`classify` task writes to metrics.json and plots.
"""

from __future__ import annotations

import math
import time

import keras
import numpy as np

from accel import accelerate
from models.classifier import (build_augmentation, build_baseline, build_classifier,
                               build_head, compile_classifier, feature_model, trainable_parameters,
                               unfreeze_encoder)
from runtime.backend import layer_seed
from cli.errors import check_losses_finite
from training.classifier_config import Settings


class EpochClock(keras.callbacks.Callback):
    """Seconds since ``start`` at the end of every epoch (validation included), put
    in the epoch's logs as ``seconds``, so the per-epoch backup keeps them."""

    def __init__(self, offset: float = 0.0):
        super().__init__()
        self.offset = offset

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["seconds"] = self.offset + time.perf_counter() - self._start


class EpochOrder(keras.callbacks.Callback):
    """Gives an :class:`~storage.training_backup.EpochFeed` its epoch (the
    backup does it where there is one) and keeps the history, as the backup does."""

    def __init__(self, feed):
        super().__init__()
        self.feed = feed
        self.history: dict = {}

    def on_epoch_begin(self, epoch, logs=None):
        self.feed.set_epoch(epoch)

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))


def clone_encoder(encoder: keras.Model) -> keras.Model:
    """A copy with its own weights: fine-tuning one copy leaves the others pretrained."""
    copy = keras.models.clone_model(encoder)
    copy.set_weights(encoder.get_weights())
    return copy


def scaled_epochs(epochs: int, patience: int, n_train: int, batch_size: int,
                  min_steps: int = 300, cap: int = 100) -> tuple:
    """More epochs (and patience) for small label subsets: at least ``min_steps`` steps.

    With 1% of the labels an epoch is a handful of steps; the same epoch count
    would stop training long before it converges. ``cap`` bounds only the
    scaling up: a phase set to more than ``cap`` epochs keeps its own count.
    """
    steps = max(1, math.ceil(n_train / batch_size))
    scaled = max(epochs, min(cap, math.ceil(min_steps / steps)))
    return scaled, max(patience, round(patience * scaled / max(1, epochs)))


def _budget(settings: Settings, epochs: int, n_train: int, epoch_scale: bool) -> tuple:
    """(epochs, patience) of a phase: as set, or scaled up for a small subset."""
    if not epoch_scale:
        return epochs, settings.patience
    return scaled_epochs(epochs, settings.patience, n_train, settings.batch_size,
                         settings.min_steps)


def _augmentation(settings: Settings, offset: int):
    """The augmentation sub-model when ``settings.augment``, else None."""
    if not settings.augment:
        return None
    return build_augmentation(settings.flip, settings.shift, settings.erasing,
                              seed=layer_seed(settings.seed, 100 * offset))


def _compile(model, learning_rate: float, settings: Settings, n_train: int, epochs: int):
    """``compile_classifier`` with the settings' schedule and weight average."""
    decay_steps = (epochs * settings.steps_per_epoch(n_train)
                   if settings.lr_schedule == "cosine" else None)
    return compile_classifier(model, learning_rate, settings.weight_decay,
                              settings.label_smoothing, settings.ema_momentum(n_train),
                              decay_steps=decay_steps)


def _fit(model, x, y, x_val, y_val, epochs, settings: Settings, offset: float = 0.0,
         patience: int | None = None, extra_callbacks: tuple = (),
         backup_dir: str | None = None, feed_seed: int = 0) -> dict:
    """Trains ``model`` on batches in an order drawn from ``(feed_seed, epoch)``;
    with ``backup_dir``, saves its whole state there after every epoch and first
    continues from the state found there (``storage.training_backup``)."""
    from storage.feeds import for_fit
    from storage.training_backup import EpochFeed, TrainingBackup

    patience = settings.patience if patience is None else patience
    ema = getattr(model.optimizer, "use_ema", False)
    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_accuracy", mode="max", patience=patience, restore_best_weights=True)
    # Before EarlyStopping: the weights it keeps at the end of an epoch (and
    # restores) are then the averaged ones that were validated.
    callbacks = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if ema else []
    clock = EpochClock(offset)
    callbacks += [early_stopping, keras.callbacks.TerminateOnNaN(), clock, *extra_callbacks]
    watched = [early_stopping]
    if settings.lr_schedule == "plateau":
        watched.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=max(1, patience // 2), min_lr=1e-6))
        callbacks.append(watched[-1])
    feed = EpochFeed(x, y, settings.batch_size, feed_seed)
    accelerate(model)  # the backend speed paths; the saved files stay plain Keras
    initial_epoch, finished = 0, False
    if backup_dir is None:
        keeper = EpochOrder(feed)
    else:
        keeper = TrainingBackup(backup_dir, feed, watched=watched)
        initial_epoch = keeper.restore(model)
        finished = keeper.finished
        if keeper.stopped:
            initial_epoch = epochs  # early stopping had ended it: no further epoch
        if initial_epoch:
            print(f"resuming from {backup_dir}: " + ("training had finished"
                  if finished else f"epoch {initial_epoch} of {epochs} done"), flush=True)
        if keeper.history.get("seconds"):
            clock.offset = keeper.history["seconds"][-1]  # the time already spent
        if ema and initial_epoch and initial_epoch < epochs:
            # The state was saved at an epoch's end, with the averaged weights in the
            # model and the raw ones in the average's place; the next epoch's start
            # swaps them back: a fresh SwapEMAWeights, believing the raw weights are
            # in the model, swaps them when a test begins.
            swap = keras.callbacks.SwapEMAWeights()
            swap.set_model(model)
            swap.on_test_begin()
    if not finished:
        # shuffle=False: the feed shuffles (see storage.training_backup.EpochFeed).
        model.fit(for_fit(feed), validation_data=(x_val, y_val), epochs=epochs,
                  initial_epoch=initial_epoch, callbacks=[*callbacks, keeper],  # keeper last
                  verbose=settings.verbose, shuffle=False, validation_batch_size=512)
    history = keeper.history
    check_losses_finite(history, "try a lower learning rate")
    seconds = history.get("seconds", [offset])
    val_acc = history["val_accuracy"]
    return {"epochs": len(val_acc), "wall_time_s": seconds[-1] - offset,
            "best_val_accuracy": max(val_acc), "val_accuracy": val_acc,
            "val_loss": history["val_loss"], "seconds": seconds}


def evaluate(model, x_test, y_test, num_classes: int = 10,
             flip_average: bool = False) -> dict:
    """Test accuracy, per-class accuracy and the predicted labels.

    With ``flip_average`` (for a model trained on flipped images), also the
    accuracy of predictions averaged over each image and its mirror image
    (``test_accuracy_flip_averaged``), a common test-time augmentation,
    reported beside the plain accuracy, never instead of it.
    """
    probs = model.predict(x_test, batch_size=512, verbose=0)
    pred = np.argmax(probs, axis=-1)
    per_class = [float(np.mean(pred[y_test == c] == c)) if np.any(y_test == c) else None
                 for c in range(num_classes)]
    result = {"test_accuracy": float(np.mean(pred == y_test)),
              "per_class_accuracy": per_class, "predictions": pred}
    if flip_average:
        mirrored = model.predict(x_test[:, :, ::-1], batch_size=512, verbose=0)  # NHWC: W
        result["test_accuracy_flip_averaged"] = float(np.mean(
            np.argmax(probs + mirrored, axis=-1) == y_test))
    return result


def pretrained_parts(encoder, settings: Settings) -> tuple:
    """``(extractor, head)``: a frozen copy of ``encoder`` up to
    ``settings.features`` and a fresh head, seeded as the frozen phase builds them."""
    keras.utils.set_random_seed(settings.seed)
    extractor = feature_model(clone_encoder(encoder), settings.features)
    extractor.trainable = False
    head = build_head(tuple(extractor.output.shape[1:]), settings.hidden_units,
                      settings.dropout, feature_dropout=settings.feature_dropout)
    return extractor, head


def train_frozen(encoder, x, y, x_val, y_val, x_test, y_test, settings: Settings,
                 epoch_scale: bool = False, backup_dir: str | None = None) -> tuple:
    """The head trained on the frozen encoder's features.

    Args:
        encoder: the pretrained encoder (left unchanged: a copy is used).
        x, y, x_val, y_val, x_test, y_test: images and integer labels.
        settings: a :class:`Settings`.
        epoch_scale: give small training sets more epochs (:func:`scaled_epochs`).
        backup_dir: keep the training state there after every epoch, and continue
            from the one found there.

    Returns:
        ``(record, (extractor, head, classifier))``: the classifier is the frozen
        extractor and the head, as one model.
    """
    extractor, head = pretrained_parts(encoder, settings)
    # The frozen encoder runs in inference mode, so training the head on its
    # cached outputs is training the frozen classifier, minus the repeated encoder.
    start = time.perf_counter()
    f_train = extractor.predict(x, batch_size=512, verbose=0)
    f_val = extractor.predict(x_val, batch_size=512, verbose=0)
    feature_s = time.perf_counter() - start
    epochs, patience = _budget(settings, settings.epochs, len(x), epoch_scale)
    _compile(head, settings.learning_rate, settings, len(x), epochs)
    frozen = _fit(head, f_train, y, f_val, y_val, epochs, settings, offset=feature_s,
                  patience=patience, backup_dir=backup_dir, feed_seed=settings.seed)
    frozen["wall_time_s"] += feature_s
    frozen["feature_extraction_s"] = feature_s
    del f_train, f_val
    # Not compiled: it has not been trained as a whole, so it is saved without
    # an optimizer state that would not match on loading.
    model = build_classifier(extractor, head, frozen=True)
    frozen["trainable_parameters"] = trainable_parameters(model)
    frozen.update(evaluate(model, x_test, y_test))
    return frozen, (extractor, head, model)


def train_fine_tuned(extractor, head, frozen: dict, x, y, x_val, y_val, x_test, y_test,
                     settings: Settings, epoch_scale: bool = False,
                     backup_dir: str | None = None) -> dict:
    """The frozen classifier (``extractor`` and its trained ``head``, ``frozen`` its
    record) with the encoder unfrozen and trained with the head; the arguments
    as for :func:`train_frozen`. The record holds the model under ``"model"``."""
    keras.utils.set_random_seed(layer_seed(settings.seed, 1))
    # The same head weights (dropout has none) with the end-to-end dropout, in a
    # fresh head: its dropout's random stream does not depend on the frozen phase.
    tuned_head = build_head(tuple(extractor.output.shape[1:]), settings.hidden_units,
                            settings.head_dropout_end_to_end,
                            feature_dropout=settings.feature_dropout)
    tuned_head.set_weights(head.get_weights())
    # The same encoder layers (shared weights) behind the augmentation; a frozen
    # classifier built on them keeps its own head.
    model = build_classifier(extractor, tuned_head, frozen=False,
                             augmentation=_augmentation(settings, offset=1))
    unfrozen = unfreeze_encoder(model, settings.unfreeze_last)
    epochs, patience = _budget(settings, settings.fine_tune_epochs, len(x), epoch_scale)
    _compile(model, settings.fine_tune_lr, settings, len(x), epochs)
    tuned = _fit(model, x, y, x_val, y_val, epochs, settings,
                 offset=frozen["wall_time_s"], patience=patience, backup_dir=backup_dir,
                 feed_seed=layer_seed(settings.seed, 1))
    tuned["unfrozen_layers"] = unfrozen
    tuned["augment"] = settings.augment
    tuned["trainable_parameters"] = trainable_parameters(model)
    # Cumulative: fine-tuning starts from the trained frozen classifier.
    tuned["total_wall_time_s"] = frozen["wall_time_s"] + tuned["wall_time_s"]
    tuned["epoch_offset"] = frozen["epochs"]
    tuned.update(evaluate(model, x_test, y_test,
                          flip_average=settings.trains_on_flips))
    tuned["model"] = model
    return tuned


def train_pretrained(encoder, x, y, x_val, y_val, x_test, y_test, settings: Settings,
                     epoch_scale: bool = False, on_frozen=None,
                     fine_tune: bool = True) -> dict:
    """Trains the head on the frozen encoder, then fine-tunes the encoder with it
    (:func:`train_frozen`, then :func:`train_fine_tuned`).

    Args:
        encoder: the pretrained encoder (left unchanged: a copy is trained).
        x, y, x_val, y_val, x_test, y_test: images and integer labels.
        settings: a :class:`Settings`.
        epoch_scale: give small training sets more epochs (:func:`scaled_epochs`).
        on_frozen: called with the frozen classifier before fine-tuning changes
            it (to save it).
        fine_tune: False: the frozen classifier only.

    Returns:
        ``{"frozen": record, "fine_tuned": record}``; each record holds the
        trained model under ``"model"`` (the fine-tuned one in both, where there
        is one).
    """
    frozen, (extractor, head, model) = train_frozen(encoder, x, y, x_val, y_val, x_test,
                                                    y_test, settings, epoch_scale)
    if on_frozen is not None:
        on_frozen(model)
    if not fine_tune:
        frozen["model"] = model
        return {"frozen": frozen}
    tuned = train_fine_tuned(extractor, head, frozen, x, y, x_val, y_val, x_test, y_test,
                             settings, epoch_scale)
    frozen["model"] = tuned["model"]
    return {"frozen": frozen, "fine_tuned": tuned}


def train_baseline(encoder, x, y, x_val, y_val, x_test, y_test, settings: Settings,
                   epoch_scale: bool = False, backup_dir: str | None = None) -> dict:
    """The supervised CNN (``encoder``'s architecture + head, random init) from
    scratch; ``backup_dir`` as for :func:`train_frozen`."""
    keras.utils.set_random_seed(layer_seed(settings.seed, 2))
    model = build_baseline(encoder, settings.features, settings.hidden_units,
                           settings.head_dropout_end_to_end,
                           augmentation=_augmentation(settings, offset=2),
                           feature_dropout=settings.feature_dropout)
    epochs, patience = _budget(settings, settings.baseline_epochs, len(x), epoch_scale)
    _compile(model, settings.baseline_lr, settings, len(x), epochs)
    record = _fit(model, x, y, x_val, y_val, epochs, settings, patience=patience,
                  backup_dir=backup_dir, feed_seed=layer_seed(settings.seed, 2))
    record["trainable_parameters"] = trainable_parameters(model)
    record["augment"] = settings.augment
    record.update(evaluate(model, x_test, y_test,
                           flip_average=settings.trains_on_flips))
    record["model"] = model
    return record
