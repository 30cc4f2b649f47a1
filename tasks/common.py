"""What every task shares: argument types, run folders, atomic writes, seeding."""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import tempfile

from tasks.data import DATASETS, DEFAULT_VAL_SIZE
from tasks.errors import UserError

# ----------------------------------------------------------- argument types


# Sizes and counts past int32 overflow somewhere in NumPy or a backend; nothing
# this toolkit trains needs more.
MAX_INT = 2**31 - 1
MAX_SEED = 2**32 - 1  # what NumPy's and the backends' seeding accept


def _number(text: str, kind, ok, problem: str, valid: str, most: int = MAX_INT):
    """``text`` parsed with ``kind`` (int or float) and checked with ``ok``; else an
    argparse error saying what is wrong (``problem``) and what is ``valid``.
    Infinity and NaN are never valid; integers above ``most`` neither."""
    noun = "an integer" if kind is int else "a number"
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {noun}; give {valid}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number; give {valid}")
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{value} {problem}; give {valid}")
    if kind is int and value > most:
        raise argparse.ArgumentTypeError(f"{text} is too large; give {valid} up to {most}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _number(text, int, lambda v: v >= 1, "is not positive", "an integer >= 1")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _number(text, int, lambda v: v >= 0, "is negative", "an integer >= 0")


def positive_float(text: str) -> float:
    """argparse type: a float > 0."""
    return _number(text, float, lambda v: v > 0, "is not positive", "a number > 0")


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    return _number(text, float, lambda v: v >= 0, "is negative", "a finite number >= 0")


def random_seed(text: str) -> int:
    """argparse type: a seed, 0 ... 2**32 - 1 (what NumPy and the backends accept)."""
    return _number(text, int, lambda v: v >= 0, "is negative", "an integer >= 0",
                   most=MAX_SEED)


def rate(text: str) -> float:
    """argparse type: a number in [0, 1) (a dropout rate, label smoothing, a shift)."""
    return _number(text, float, lambda v: 0.0 <= v < 1.0, "is outside [0, 1)",
                   "a number in [0, 1)")


def probability(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    return _number(text, float, lambda v: 0.0 <= v <= 1.0, "is outside [0, 1]",
                   "a number in [0, 1]")


def int_list(text: str) -> list:
    """argparse type: comma-separated positive integers, e.g. ``2,4,8``."""
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers, e.g. 2,4,8") from None
    bad = [v for v in values if v < 1]
    if not values or bad:
        raise argparse.ArgumentTypeError(
            f"{text!r} holds non-positive values {bad}; give positive integers, e.g. 2,4,8")
    huge = [v for v in values if v > MAX_INT]
    if huge:
        raise argparse.ArgumentTypeError(
            f"{text!r} holds values too large {huge}; give integers up to {MAX_INT}")
    return values


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """--dataset, --data-dir, --val-size, --train-size, --test-size, --seed."""
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", default="fashion_mnist", choices=DATASETS,
                       help="which images: fashion_mnist (default), mnist, or digits "
                            "(scikit-learn's bundled digits, offline, for smoke runs)")
    group.add_argument("--data-dir", default=None, metavar="DIR",
                       help="folder with the four IDX .gz files (train-images-idx3-ubyte.gz, "
                            "...); tried before Debian's dataset-fashion-mnist package and "
                            "tensorflow-datasets")
    group.add_argument("--val-size", type=positive_int, default=DEFAULT_VAL_SIZE, metavar="N",
                       help="training images held out (seeded) for validation; a smaller "
                            "split shares its images with every larger one (default 12 000, "
                            "leaving 48 000 of Fashion-MNIST's 60 000 to train on)")
    group.add_argument("--train-size", type=positive_int, default=None, metavar="N",
                       help="train on a seeded subset of N images (quick runs); default all "
                            "after the validation split")
    group.add_argument("--test-size", type=positive_int, default=None, metavar="N",
                       help="evaluate on the first N test images; default all 10 000")
    group.add_argument("--seed", type=random_seed, default=0,
                       help="seeds the split, the weights and the shuffling; the same seed "
                            "on the same backend repeats the same metrics (default 0)")


def add_output_arguments(parser: argparse.ArgumentParser, task: str) -> None:
    """--out, --overwrite."""
    parser.add_argument("--out", default=None, metavar="DIR",
                        help=f"run folder for models, metrics and figures "
                             f"(default runs/{task}/<timestamp>)")
    parser.add_argument("--overwrite", action="store_true",
                        help="let --out name a folder that holds an earlier run: its files "
                             "are deleted first (without it such a folder is refused)")


def load_data(args):
    """The dataset named by the data arguments, printed in one line."""
    from tasks.data import load_dataset

    data = load_dataset(args.dataset, data_dir=args.data_dir, val_size=args.val_size,
                        seed=args.seed, train_limit=args.train_size, test_limit=args.test_size)
    print(data.summary(), flush=True)
    return data


# ------------------------------------------------------------- run folders


def make_run_dir(task: str, out: str | None, overwrite: bool = False,
                 resume: bool = False) -> str:
    """Creates (or, for ``resume`` or ``overwrite``, reuses) the run folder, checks
    it is writable and marks it as ``task``'s (see tasks/run_folder.py)."""
    from tasks import run_folder

    if out is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = base = os.path.join("runs", task, stamp)
        n = 1
        while os.path.exists(out):  # two runs started in the same second
            n += 1
            out = f"{base}-{n}"
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out!r} is a file, not a folder; give a folder path")
    run_folder.claim(out, task, overwrite=overwrite, resume=resume)
    created = not os.path.exists(out)
    try:
        os.makedirs(out, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as e:
        raise UserError(f"--out {out!r} is not writable ({e.strerror}); "
                        f"give a folder you can write to") from None
    run_folder.mark(out, task, created)
    return out


# ----------------------------------------------------------- atomic writes


def _atomic(path: str, write) -> str:
    """Calls ``write(tmp_path)`` then renames onto ``path``: never half-written."""
    folder, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    # Keep the extension last: Keras and matplotlib infer the format from it.
    tmp = os.path.join(folder, f".{stem}.tmp{os.getpid()}{ext}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_json(path: str, obj) -> str:
    """Strict JSON (RFC 8259): a NaN or infinite number is written as null."""
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(_finite_or_null(obj), f, indent=2, allow_nan=False)
            f.write("\n")
    return _atomic(path, write)


def write_text(path: str, text: str) -> str:
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    return _atomic(path, write)


def save_model(model, path: str) -> str:
    """``model.save`` to a temporary file, then rename: a crash leaves no half file.

    The file holds only Keras's own classes where the model is an inference model
    (see ``models.saving``): it loads without this toolkit."""
    from models.saving import for_saving

    return _atomic(path, for_saving(model).save)


def save_figure(fig, path: str) -> str:
    import matplotlib.pyplot as plt

    _atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path


def _finite_or_null(obj):
    """``obj`` with NumPy values made Python ones and NaN/infinity made None:
    Python's json would write ``NaN``/``Infinity``, which JSON parsers refuse."""
    if isinstance(obj, dict):
        return {k: _finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_null(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "tolist") and type(obj).__module__ == "numpy":  # scalar or array
        return _finite_or_null(obj.tolist())
    return obj


def read_json(path: str):
    with open(path) as f:
        return json.load(f)


# ---------------------------------------------------------------- training


def check_losses_finite(history: dict, hint: str) -> None:
    """UserError when a loss in ``history`` (Keras ``History.history``) is NaN or
    infinite: TerminateOnNaN stopped that run, and its weights are worthless."""
    for key, values in history.items():
        bad = [i for i, v in enumerate(values) if "loss" in key and not math.isfinite(v)]
        if bad:
            raise UserError(f"training diverged: {key} became {values[bad[0]]} in epoch "
                            f"{bad[0] + 1}, so it was stopped and no model was saved; {hint}")


# ------------------------------------------------------------------ models


def load_keras_model(path: str, what: str = "model"):
    """``keras.saving.load_model`` with a one-line error for a missing or bad file;
    the transposed convolutions get the fast JAX gradient for further training."""
    import keras

    import models  # noqa: F401  registers the custom classes before loading
    from models.layers import speed_up

    if not os.path.isfile(path):
        raise UserError(f"{what} file {path!r} does not exist; give a .keras file "
                        f"written by this toolkit")
    if not path.endswith(".keras"):
        raise UserError(f"{what} file {path!r} is not a .keras file")
    import zipfile
    if not zipfile.is_zipfile(path):  # Keras would say "File not found" here
        raise UserError(f"{what} file {path!r} is not a Keras model (a .keras file is a zip "
                        f"archive; this one is not); give a .keras file written by this toolkit")
    try:
        model = keras.saving.load_model(path)
    except Exception as e:  # any corrupt or foreign file: one line, not a traceback
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot load {what} {path!r}: {first}") from None
    return speed_up(model)


def layer_seed(seed: int, offset: int = 0) -> int:
    """``seed + offset`` for a Keras layer's SeedGenerator: torch keeps its state in
    int32, so a --seed near 2**32 wraps; a seed below 2**31 - 2**10 is kept as it is
    (the margin leaves room for the small offsets models add)."""
    return (seed + offset) % (2**31 - 2**10)


def seed_everything(seed: int) -> None:
    """Seeds Python, NumPy and the backend; makes TensorFlow ops deterministic."""
    import keras

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()


def backend_name() -> str:
    import keras
    return keras.backend.backend()
