"""`python main.py export`: a saved inference model as ONNX or a TensorFlow SavedModel.

Keras's own ``model.export`` does the work. Which backend can write which format
(Keras 3.15): ONNX on tensorflow (tf2onnx), jax (jax2onnx) and torch (torch.onnx);
a SavedModel on tensorflow and jax (torch needs torch_xla). An ONNX file is run
once in onnxruntime on random inputs and its largest difference from Keras's
outputs printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import shutil
import tempfile
import warnings

from runtime.errors import UserError
from runtime.options import add_config, from_args, option
from runtime.quiet import import_tensorflow_quietly

HELP = "export a saved inference model (.keras) to ONNX or a TensorFlow SavedModel"

FORMATS = {"onnx": "onnx", "saved_model": "tf_saved_model"}  # ours -> Keras's name
# The backends on which Keras writes each format, and the package each one needs.
WRITERS = {
    "onnx": {"tensorflow": "tf2onnx", "jax": "jax2onnx", "torch": "onnxscript"},
    "saved_model": {"tensorflow": "tensorflow", "jax": "tensorflow"},
}


@dataclasses.dataclass
class ExportConfig:
    """Which model to export, in which format, to where."""

    model: str = option(
        metavar="FILE.keras",
        help="an inference model written by a task (cae.keras, encoder.keras, "
             "decoder.keras, generator.keras, classifier_*.keras, ...)")
    format: str = option(
        choices=tuple(FORMATS),
        help="onnx: one .onnx file (runs in onnxruntime); saved_model: a TensorFlow "
             "SavedModel folder (TF Serving, tf.saved_model.load)")
    out: str | None = option(
        None, metavar="PATH", default_help="next to --model, FILE.onnx or FILE_saved_model",
        help="the .onnx file or the SavedModel folder to write")



def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser, ExportConfig, task="export")


def check_backend(fmt: str, backend: str) -> None:
    """UserError naming a backend that can, if Keras cannot write ``fmt`` on ``backend``
    or the package it needs is missing."""
    writers = WRITERS[fmt]
    if backend not in writers:
        raise UserError(f"Keras cannot export --format {fmt} on the {backend} backend; "
                        f"run with --backend {next(iter(writers))} (or: "
                        f"{', '.join(writers)})")
    package = writers[backend]
    if importlib.util.find_spec(package) is None:
        raise UserError(f"--format {fmt} on {backend} needs the package {package!r}; "
                        f"pip install -r requirements.txt")


def default_out(model_path: str, fmt: str) -> str:
    stem = os.path.splitext(model_path)[0]
    return stem + ".onnx" if fmt == "onnx" else stem + "_saved_model"


def export_model(model, fmt: str, out: str) -> str:
    """``model.export`` into a temporary path beside ``out``, then renamed onto it."""
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".export-", dir=folder)
    if fmt == "saved_model":
        import_tensorflow_quietly()  # written through TensorFlow on jax too
    try:
        written = os.path.join(tmp, os.path.basename(out))
        with warnings.catch_warnings():  # the converters' tracing chatter
            warnings.simplefilter("ignore")
            model.export(written, format=FORMATS[fmt], verbose=False)
        if os.path.isdir(out):
            shutil.rmtree(out)
        os.replace(written, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def onnx_difference(model, path: str, seed: int = 0) -> float | None:
    """Largest |onnxruntime - Keras| over every output for 8 random inputs; None
    without onnxruntime."""
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import numpy as np
    import onnxruntime

    rng = np.random.default_rng(seed)
    x = rng.random((8, *model.input_shape[1:])).astype("float32")
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})
    want = model.predict(x, verbose=0)
    want = want if isinstance(want, list) else [want]
    return max(float(np.max(np.abs(np.asarray(g) - np.asarray(w))))
               for g, w in zip(got, want))


CONFIG = ExportConfig


def run(args) -> str:
    return export(from_args(ExportConfig, args))


def export(config: ExportConfig) -> str:
    """Writes ``config.model`` in ``config.format``; returns the path written."""
    import keras

    from models.gan import GAN
    from models.saving import load_keras_model
    from models.vae import VAE

    backend = keras.backend.backend()
    check_backend(config.format, backend)
    model = load_keras_model(config.model, "--model")
    if isinstance(model, (VAE, GAN)):
        raise UserError(f"--model {config.model!r} is a training wrapper "
                        f"({type(model).__name__}); export one of its networks instead "
                        f"(encoder.keras, decoder.keras or generator.keras beside it)")
    # Frozen: torch's ONNX tracer rejects weights that require gradients when it
    # meets them as constants (the variables of nested models). Inference only here.
    model.trainable = False
    # Keras exports only a model that has been called (it traces that call).
    model(keras.ops.zeros((1, *model.input_shape[1:])))
    out = config.out or default_out(config.model, config.format)
    if os.path.isfile(out) and config.format == "saved_model":
        raise UserError(f"--out {out!r} is a file; a SavedModel is a folder")
    export_model(model, config.format, out)
    print(f"exported {config.model} as {config.format} on {backend}: {out}", flush=True)
    if config.format == "onnx":
        diff = onnx_difference(model, out)
        if diff is not None:
            print(f"onnxruntime reproduces Keras's outputs to {diff:.1e} (max abs "
                  f"difference, 8 random inputs)", flush=True)
    return out
