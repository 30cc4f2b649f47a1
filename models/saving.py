"""What a saved ``.keras`` file holds: Keras's own classes only, for inference models.

Keras rebuilds a compiled model's loss when it loads the file, so a loss of this
toolkit in the compile config would make the file need ``import models``. The
classifiers train with :class:`models.classifier.SmoothedSparseCrossentropy`;
label smoothing is a training device, and a classifier is evaluated by plain
sparse cross-entropy, so the file is compiled with Keras's
``SparseCategoricalCrossentropy`` (same optimizer settings and metrics).

The convolutions need nothing here: they are Keras's own layers, and the speed
paths of :mod:`accel` live on the loaded objects, never in the file.
"""

from __future__ import annotations

import os
import zipfile

import keras

from models.classifier import SmoothedSparseCrossentropy
from cli.errors import UserError
from storage.files import _atomic


def _models(model: keras.Model):
    """``model`` and every model nested in it."""
    yield model
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _models(layer)


def _has_toolkit_loss(model: keras.Model) -> bool:
    return isinstance(getattr(model, "loss", None), SmoothedSparseCrossentropy)


def _drop_compile_configs(config):
    """Removes every ``compile_config`` inside a serialised model's ``config``."""
    if isinstance(config, dict):
        config.pop("compile_config", None)
        for value in config.values():
            _drop_compile_configs(value)
    elif isinstance(config, list):
        for value in config:
            _drop_compile_configs(value)


def for_saving(model: keras.Model) -> keras.Model:
    """``model`` itself, or, when it or a model nested in it (a classifier's head,
    trained alone first) is compiled with a loss of this toolkit, a copy with the
    same layers and weights: nested models uncompiled (their compile config plays
    no part in the outer model), the model itself compiled as before, with
    Keras's plain stand-in for the toolkit's loss."""
    if not any(_has_toolkit_loss(m) for m in _models(model)):
        return model
    serialised = keras.saving.serialize_keras_object(model)
    _drop_compile_configs(serialised["config"])
    if _has_toolkit_loss(model):
        serialised["compile_config"]["loss"] = "sparse_categorical_crossentropy"
    # Rebuilt from its config, compiled (fresh optimizer variables: loads quietly).
    copy = keras.saving.deserialize_keras_object(serialised)
    copy.set_weights(model.get_weights())
    return copy


def save_model(model, path: str) -> str:
    """``model.save`` to a temporary file, then rename: a crash leaves no half file.

    The file holds only Keras's own classes where the model is an inference model
    (see ``models.saving``): it loads without this toolkit."""
    return _atomic(path, for_saving(model).save)


def load_keras_model(path: str, what: str = "model"):
    """``keras.saving.load_model`` with a one-line error for a missing or bad file;
    the model is on the backend's speed paths (:func:`accel.accelerate`)."""
    import models  # noqa: F401  registers the custom classes before loading
    from accel import accelerate

    if not os.path.isfile(path):
        raise UserError(f"{what} file {path!r} does not exist; give a .keras file "
                        f"written by this toolkit")
    if not path.endswith(".keras"):
        raise UserError(f"{what} file {path!r} is not a .keras file")
    if not zipfile.is_zipfile(path):  # Keras would say "File not found" here
        raise UserError(f"{what} file {path!r} is not a Keras model (a .keras file is a zip "
                        f"archive; this one is not); give a .keras file written by this toolkit")
    try:
        model = keras.saving.load_model(path)
    except Exception as e:  # any corrupt or foreign file: one line, not a traceback
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot load {what} {path!r}: {first}") from None
    return accelerate(model)
