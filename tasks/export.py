"""`python main.py export`: a saved inference model as ONNX or a TensorFlow SavedModel.

Keras's own ``model.export`` does the work. Which backend can write which format
(Keras 3.15): ONNX on tensorflow (tf2onnx), jax (jax2onnx) and torch (torch.onnx);
a SavedModel on tensorflow and jax (torch needs torch_xla).

Nothing is written until it is complete and checked: the export goes to a
temporary folder beside ``--out``; an ONNX model is made one self-contained file
(jax2onnx keeps large weights in a ``.onnx.data`` file beside it), run in
onnxruntime on random inputs and refused unless it reproduces Keras's outputs
within :data:`ONNX_TOLERANCE`; only then is it renamed onto ``--out``. An existing
``--out`` is replaced only with ``--overwrite``, and only where it is what export
writes (an ONNX file export wrote, a SavedModel folder holding nothing else);
a folder is never deleted otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import shutil
import tempfile
import warnings

from cli.errors import UserError
from cli.options import add_config, from_args, option
from runtime.quiet import import_tensorflow_quietly

HELP = "export a saved inference model (.keras) to ONNX or a TensorFlow SavedModel"

FORMATS = {"onnx": "onnx", "saved_model": "tf_saved_model"}  # ours -> Keras's name
# The backends on which Keras writes each format, and the package each one needs.
WRITERS = {
    "onnx": {"tensorflow": "tf2onnx", "jax": "jax2onnx", "torch": "onnxscript"},
    "saved_model": {"tensorflow": "tensorflow", "jax": "tensorflow"},
}
ONNX_TOLERANCE = 1e-4  # largest |onnxruntime - Keras| accepted on random inputs
# Written into each ONNX file's metadata: --overwrite replaces only such a file.
ONNX_STAMP = ("written_by", "unsupervised28 export")
# What a SavedModel folder holds (tf.saved_model.save, Keras's model.export).
SAVED_MODEL_ENTRIES = {"saved_model.pb", "saved_model.pbtxt", "fingerprint.pb",
                       "keras_metadata.pb", "variables", "assets"}
_ONNX_SINGLE_FILE_LIMIT = 2**31 - 2**20  # protobuf's 2 GB, less room for the graph


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
        help="the .onnx file or the SavedModel folder to write (its folder must exist)")
    overwrite: bool = option(
        False, action="store_true",
        help="replace an existing --out: only an ONNX file export wrote or a SavedModel "
             "folder that holds nothing else (without it an existing --out is refused)")


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


def check_out(out: str, fmt: str, overwrite: bool) -> None:
    """UserError, before any work, for an ``out`` that cannot or must not be written."""
    what = "an ONNX file" if fmt == "onnx" else "a SavedModel folder"
    if fmt == "onnx" and not out.endswith(".onnx"):
        raise UserError(f"--out {out!r}: an ONNX model is one file; give a path ending "
                        f"in .onnx")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise UserError(f"--out {out!r}: its folder {parent!r} does not exist (or is no "
                        f"folder); create it first or give another --out")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"--out {out!r}: its folder {parent!r} is not writable; give a "
                        f"folder you can write to")
    if not os.path.lexists(out):
        return
    if not overwrite:
        raise UserError(f"--out {out!r} exists; give another --out, or --overwrite to "
                        f"replace it (only {what} that export wrote)")
    if fmt == "onnx" and not _written_by_export(out):
        raise UserError(f"--out {out!r} is not an ONNX file written by export, so "
                        f"--overwrite leaves it alone; give another --out")
    if fmt == "saved_model" and not _is_saved_model(out):
        raise UserError(f"--out {out!r} is not a SavedModel folder (saved_model.pb, "
                        f"variables/, assets/, nothing else), so --overwrite leaves it "
                        f"alone; give another --out")


def _written_by_export(path: str) -> bool:
    """Whether ``path`` is a plain file holding an ONNX model stamped by export."""
    if os.path.islink(path) or not os.path.isfile(path):
        return False
    import onnx

    try:
        model = onnx.load(path, load_external_data=False)
    except Exception:  # not ONNX at all: protobuf's errors have no common type
        return False
    return any((p.key, p.value) == ONNX_STAMP for p in model.metadata_props)


def _is_saved_model(path: str) -> bool:
    """Whether ``path`` is a real folder with saved_model.pb and nothing but a
    SavedModel's own entries."""
    if os.path.islink(path) or not os.path.isdir(path):
        return False
    names = set(os.listdir(path))
    if "saved_model.pb" not in names or names - SAVED_MODEL_ENTRIES:
        return False
    variables = os.path.join(path, "variables")
    return not os.path.isdir(variables) or all(
        n.startswith("variables.") for n in os.listdir(variables))


def input_shape(model, path: str) -> tuple:
    """The shape of ``model``'s one input; UserError for a model never built
    (an unbuilt Sequential has none) or one with several or unsized inputs."""
    try:
        shape = model.input_shape
    except (AttributeError, ValueError):
        raise UserError(f"--model {path!r} was never built (it has no input shape); "
                        f"export a model a task wrote, or call it on data before "
                        f"saving it") from None
    if not isinstance(shape, tuple) or any(not isinstance(d, int) for d in shape[1:]):
        raise UserError(f"--model {path!r} has input shape {shape}; export takes one "
                        f"input of a fixed size (besides the batch)")
    return shape


def export_model(model, fmt: str, out: str, backend: str) -> float | None:
    """Writes ``model`` as ``fmt`` onto ``out`` (see the module's docstring);
    returns the ONNX file's largest difference from Keras (None: not checked)."""
    from storage.run_folder import record, seal_written

    folder = os.path.dirname(os.path.abspath(out))
    try:
        tmp = tempfile.mkdtemp(prefix=".export-", dir=folder)
    except OSError as e:
        raise UserError(f"--out {out!r}: cannot write into {folder!r} ({e.strerror}); "
                        f"give another --out") from None
    if fmt == "saved_model":
        import_tensorflow_quietly()  # written through TensorFlow on jax too
    try:
        staged = os.path.join(tmp, "model.onnx" if fmt == "onnx" else "saved_model")
        _keras_export(model, fmt, staged, backend)
        diff = None
        if fmt == "onnx":
            staged = _self_contained(staged, os.path.join(tmp, "single", "model.onnx"))
            diff = onnx_difference(model, staged)
            if diff is not None and not diff <= ONNX_TOLERANCE:
                raise UserError(f"the ONNX file written on {backend} differs from Keras's "
                                f"outputs by {diff:.1e} (more than {ONNX_TOLERANCE:g}), so "
                                f"nothing was written; {_other_backends(fmt, backend)}")
        record(out, "files" if fmt == "onnx" else "folders")  # in its run folder, if any
        _put_in_place(staged, out, tmp)
        if fmt != "onnx":
            # In place and whole: its run lists the files, so --overwrite keeps
            # anything put into the folder later.
            seal_written(out)
        return diff
    except OSError as e:
        raise UserError(f"--out {out!r}: cannot write it ({e.strerror or e}); nothing "
                        f"was written") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _keras_export(model, fmt: str, path: str, backend: str) -> None:
    try:
        with warnings.catch_warnings():  # the converters' tracing chatter
            warnings.simplefilter("ignore")
            model.export(path, format=FORMATS[fmt], verbose=False)
    except (OSError, UserError):
        raise
    except Exception as e:  # a converter's failure: one line, not its traceback
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise UserError(f"Keras could not export this model as {fmt} on {backend} "
                        f"({first}); {_other_backends(fmt, backend)}") from None


def _other_backends(fmt: str, backend: str) -> str:
    others = [b for b in WRITERS[fmt] if b != backend]
    return "try " + " or ".join(f"--backend {b}" for b in others) if others else \
        "no other backend writes it"


def _self_contained(path: str, single: str) -> str:
    """``path`` rewritten as one file, its weights inside (an exporter may have
    put them in a data file beside it), stamped as export's; returns ``single``."""
    import onnx

    model = onnx.load(path)  # reads any external data from beside it
    del model.metadata_props[:]
    model.metadata_props.add(key=ONNX_STAMP[0], value=ONNX_STAMP[1])
    if model.ByteSize() > _ONNX_SINGLE_FILE_LIMIT:
        raise UserError("the model is over 2 GB, more than one ONNX file holds; "
                        "give --format saved_model")
    os.makedirs(os.path.dirname(single))
    onnx.save_model(model, single, save_as_external_data=False)
    return single


def _put_in_place(staged: str, out: str, tmp: str) -> None:
    """Renames ``staged`` onto ``out``; an existing SavedModel folder (checked by
    :func:`check_out`) is moved into ``tmp`` first and deleted with it."""
    if os.path.isdir(out) and not os.path.islink(out):
        aside = os.path.join(tmp, "replaced")
        os.rename(out, aside)
        try:
            os.rename(staged, out)
        except OSError:
            os.rename(aside, out)  # the old one back: nothing lost
            raise
        return
    os.replace(staged, out)


def onnx_difference(model, path: str, seed: int = 0) -> float | None:
    """Largest |onnxruntime - Keras| over every output for 8 random inputs; None
    without onnxruntime."""
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import numpy as np
    import onnxruntime

    rng = np.random.default_rng(seed)
    x = rng.random((8, *model.input_shape[1:])).astype("float32")
    try:
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: x})
    except Exception as e:  # onnxruntime cannot run it: say so in one line
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise UserError(f"onnxruntime cannot run the exported file ({first}), so nothing "
                        f"was written") from None
    want = model.predict(x, verbose=0)
    want = want if isinstance(want, list) else [want]
    if len(got) != len(want):
        return float("inf")
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
    out = config.out or default_out(config.model, config.format)
    check_out(out, config.format, config.overwrite)
    model = load_keras_model(config.model, "--model")
    if isinstance(model, (VAE, GAN)):
        raise UserError(f"--model {config.model!r} is a training wrapper "
                        f"({type(model).__name__}); export one of its networks instead "
                        f"(encoder.keras, decoder.keras or generator.keras beside it)")
    shape = input_shape(model, config.model)
    # Frozen: torch's ONNX tracer rejects weights that require gradients when it
    # meets them as constants (the variables of nested models). Inference only here.
    model.trainable = False
    # Keras exports only a model that has been called (it traces that call).
    model(keras.ops.zeros((1, *shape[1:])))
    diff = export_model(model, config.format, out, backend)
    print(f"exported {config.model} as {config.format} on {backend}: {out}", flush=True)
    if diff is not None:
        print(f"onnxruntime reproduces Keras's outputs to {diff:.1e} (max abs "
              f"difference, 8 random inputs)", flush=True)
    elif config.format == "onnx":
        print("onnxruntime is not installed: the file was not checked", flush=True)
    return out
