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
from runtime.errors import check_losses_finite
from training.classifier_config import Settings


class EpochClock(keras.callbacks.Callback):
    """Seconds since ``start`` at the end of every epoch (validation included)."""

    def __init__(self, offset: float = 0.0):
        super().__init__()
        self.offset = offset
        self.seconds = []

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(self.offset + time.perf_counter() - self._start)


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
         patience: int | None = None, extra_callbacks: tuple = ()) -> dict:
    clock = EpochClock(offset)
    patience = settings.patience if patience is None else patience
    callbacks = []
    if getattr(model.optimizer, "use_ema", False):
        # Before EarlyStopping: the weights it keeps at the end of an epoch (and
        # restores) are then the averaged ones that were validated.
        callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    callbacks += [
        keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=patience,
                                      restore_best_weights=True),
        keras.callbacks.TerminateOnNaN(),
        clock,
        *extra_callbacks,
    ]
    if settings.lr_schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=max(1, patience // 2), min_lr=1e-6))
    start = time.perf_counter()
    accelerate(model)  # the backend speed paths; the saved files stay plain Keras
    history = model.fit(x, y, validation_data=(x_val, y_val), epochs=epochs,
                        batch_size=settings.batch_size, callbacks=callbacks,
                        verbose=settings.verbose)
    check_losses_finite({k: [float(v) for v in vals] for k, vals in history.history.items()},
                        "try a lower learning rate")
    val_acc = [float(v) for v in history.history["val_accuracy"]]
    return {"epochs": len(val_acc), "wall_time_s": time.perf_counter() - start,
            "best_val_accuracy": max(val_acc), "val_accuracy": val_acc,
            "val_loss": [float(v) for v in history.history["val_loss"]],
            "seconds": clock.seconds}


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


def train_pretrained(encoder, x, y, x_val, y_val, x_test, y_test, settings: Settings,
                     epoch_scale: bool = False, on_frozen=None,
                     fine_tune: bool = True) -> dict:
    """Trains the head on the frozen encoder, then fine-tunes the encoder with it.

    Args:
        encoder: the pretrained encoder (left unchanged: a copy is trained).
        x, y, x_val, y_val, x_test, y_test: images and integer labels.
        settings: a :class:`Settings`.
        epoch_scale: give small training sets more epochs (:func:`scaled_epochs`).
        on_frozen: called with the frozen classifier before fine-tuning changes
            it (to save it).

    Returns:
        ``{"frozen": record, "fine_tuned": record}``; each record holds the
        trained model under ``"model"`` (the same object for both, fine-tuned
        at the end).
    """
    keras.utils.set_random_seed(settings.seed)
    extractor = feature_model(clone_encoder(encoder), settings.features)
    extractor.trainable = False
    # The frozen encoder runs in inference mode, so training the head on its
    # cached outputs is training the frozen classifier, minus the repeated encoder.
    start = time.perf_counter()
    f_train = extractor.predict(x, batch_size=512, verbose=0)
    f_val = extractor.predict(x_val, batch_size=512, verbose=0)
    feature_s = time.perf_counter() - start
    head = build_head(f_train.shape[1:], settings.hidden_units, settings.dropout,
                      feature_dropout=settings.feature_dropout)
    epochs, patience = _budget(settings, settings.epochs, len(x), epoch_scale)
    _compile(head, settings.learning_rate, settings, len(x), epochs)
    frozen = _fit(head, f_train, y, f_val, y_val, epochs, settings, offset=feature_s,
                  patience=patience)
    frozen["wall_time_s"] += feature_s
    frozen["feature_extraction_s"] = feature_s
    feature_shape = f_train.shape[1:]
    del f_train, f_val
    # Not compiled: it has not been trained as a whole, so it is saved without
    # an optimizer state that would not match on loading.
    model = build_classifier(extractor, head, frozen=True)
    frozen["trainable_parameters"] = trainable_parameters(model)
    frozen.update(evaluate(model, x_test, y_test))
    if on_frozen is not None:
        on_frozen(model)
    if not fine_tune:
        frozen["model"] = model
        return {"frozen": frozen}

    keras.utils.set_random_seed(layer_seed(settings.seed, 1))
    new_dropout = settings.head_dropout_end_to_end != settings.dropout
    if new_dropout:
        # The same head weights (dropout has none) with the end-to-end dropout.
        tuned_head = build_head(feature_shape, settings.hidden_units,
                                settings.head_dropout_end_to_end,
                                feature_dropout=settings.feature_dropout)
        tuned_head.set_weights(head.get_weights())
        head = tuned_head
    if settings.augment or new_dropout:
        # The same encoder layers (shared weights) behind the augmentation; the
        # frozen classifier saved above stays as it is.
        model = build_classifier(extractor, head, frozen=False,
                                 augmentation=_augmentation(settings, offset=1))
    unfrozen = unfreeze_encoder(model, settings.unfreeze_last)
    epochs, patience = _budget(settings, settings.fine_tune_epochs, len(x), epoch_scale)
    _compile(model, settings.fine_tune_lr, settings, len(x), epochs)
    tuned = _fit(model, x, y, x_val, y_val, epochs, settings,
                 offset=frozen["wall_time_s"], patience=patience)
    tuned["unfrozen_layers"] = unfrozen
    tuned["augment"] = settings.augment
    tuned["trainable_parameters"] = trainable_parameters(model)
    # Cumulative: fine-tuning starts from the trained frozen classifier.
    tuned["total_wall_time_s"] = frozen["wall_time_s"] + tuned["wall_time_s"]
    tuned["epoch_offset"] = frozen["epochs"]
    tuned.update(evaluate(model, x_test, y_test,
                          flip_average=settings.trains_on_flips))
    frozen["model"] = tuned["model"] = model
    return {"frozen": frozen, "fine_tuned": tuned}


def train_baseline(encoder, x, y, x_val, y_val, x_test, y_test, settings: Settings,
                   epoch_scale: bool = False) -> dict:
    """The supervised CNN (``encoder``'s architecture + head, random init) from scratch."""
    keras.utils.set_random_seed(layer_seed(settings.seed, 2))
    model = build_baseline(encoder, settings.features, settings.hidden_units,
                           settings.head_dropout_end_to_end,
                           augmentation=_augmentation(settings, offset=2),
                           feature_dropout=settings.feature_dropout)
    epochs, patience = _budget(settings, settings.baseline_epochs, len(x), epoch_scale)
    _compile(model, settings.baseline_lr, settings, len(x), epochs)
    record = _fit(model, x, y, x_val, y_val, epochs, settings, patience=patience)
    record["trainable_parameters"] = trainable_parameters(model)
    record["augment"] = settings.augment
    record.update(evaluate(model, x_test, y_test,
                           flip_average=settings.trains_on_flips))
    record["model"] = model
    return record
