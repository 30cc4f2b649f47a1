"""Loading the 28x28 image datasets: Fashion-MNIST, MNIST and scikit-learn's digits.

Sources for Fashion-MNIST and MNIST, tried in order:

1. ``data_dir``: a directory holding the four standard IDX ``.gz`` files.
2. Debian's package ``dataset-fashion-mnist`` (Fashion-MNIST only), located
   with ``dpkg -L``.
3. tensorflow-datasets, which downloads and caches where a network is reachable.

``digits`` is scikit-learn's bundled 8x8 digits resized to 28x28: always there,
offline, for smoke runs.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import shutil
import subprocess

import numpy as np

from cli.errors import UserError

DATASETS = ("fashion_mnist", "mnist", "digits")

CLASS_NAMES = {
    "fashion_mnist": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ],
    "mnist": [str(i) for i in range(10)],
    "digits": [str(i) for i in range(10)],
}

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

DEBIAN_PACKAGE = {"fashion_mnist": "dataset-fashion-mnist"}

# Where a run may take its default validation size from: the reports we follow
# split the 60 000 training images 48 000 / 12 000.
DEFAULT_VAL_SIZE = 12_000

DIGITS_DATA_DIR = ("--data-dir reads the IDX files of fashion_mnist or mnist; digits comes "
                   "with scikit-learn: drop --data-dir, or give --dataset mnist")


@dataclasses.dataclass
class Dataset:
    """Images as float32 in [0, 1], shape (N, 28, 28, 1); labels as int64."""

    name: str
    source: str
    class_names: list
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    # What was used instead of a size asked for that the data cannot give.
    notes: list = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.name} from {self.source}: train {len(self.x_train)}, "
                f"validation {len(self.x_val)}, test {len(self.x_test)}")


# --------------------------------------------------------------------------- IDX


def read_idx(path: str, expected_ndim: int) -> np.ndarray:
    """Reads one gzipped (or plain) IDX file of unsigned bytes, validating it.

    Args:
        path: the file.
        expected_ndim: 3 for images, 1 for labels.

    Raises:
        UserError: the file is missing, truncated or not an IDX file of that shape.
    """
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise UserError(f"IDX file not found: {path}") from None
    except (OSError, EOFError) as e:
        raise UserError(f"cannot read IDX file {path}: {e} (corrupt or truncated gzip)") from None
    if len(raw) < 4:
        raise UserError(f"corrupt IDX file {path}: {len(raw)} bytes, too short for a header")
    zero, dtype_code, ndim = raw[0] << 8 | raw[1], raw[2], raw[3]
    if zero != 0 or dtype_code != 0x08:
        raise UserError(
            f"corrupt IDX file {path}: magic number 0x{raw[:4].hex()}, expected "
            f"0x000008{expected_ndim:02x} (unsigned bytes, {expected_ndim} dimensions)")
    if ndim != expected_ndim:
        raise UserError(f"corrupt IDX file {path}: {ndim} dimensions, expected {expected_ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"corrupt IDX file {path}: header truncated")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims))
    body = len(raw) - header
    if body != expected:
        raise UserError(
            f"corrupt IDX file {path}: header says {dims} = {expected} bytes of data, "
            f"file holds {body} (truncated or padded)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load_idx_dir(directory: str) -> tuple:
    """Reads the four standard IDX files from a directory."""
    arrays = {}
    for key, filename in IDX_FILES.items():
        path = os.path.join(directory, filename)
        if not os.path.exists(path) and os.path.exists(path[:-3]):
            path = path[:-3]  # an unzipped copy is fine too
        arrays[key] = read_idx(path, 3 if key.endswith("images") else 1)
    for split in ("train", "test"):
        n_img, n_lab = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_img != n_lab:
            raise UserError(f"IDX files in {directory} disagree: {n_img} {split} images "
                            f"but {n_lab} labels")
        if arrays[f"{split}_images"].shape[1:] != (28, 28):
            raise UserError(f"IDX images in {directory} are "
                            f"{arrays[f'{split}_images'].shape[1:]}, expected (28, 28)")
    return (arrays["train_images"], arrays["train_labels"],
            arrays["test_images"], arrays["test_labels"])


def debian_dataset_dir(package: str) -> str | None:
    """The folder holding the IDX files of an installed Debian dataset package."""
    if shutil.which("dpkg") is None:
        return None
    try:
        listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True,
                                 timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if listing.returncode != 0:
        return None
    for line in listing.stdout.splitlines():
        if line.endswith(IDX_FILES["train_images"]):
            return os.path.dirname(line)
    return None


def load_tfds(name: str) -> tuple:
    """Fashion-MNIST or MNIST from tensorflow-datasets (needs a network once)."""
    from runtime.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()  # tensorflow-datasets works through TensorFlow
    import tensorflow_datasets as tfds  # slow import, only when needed

    splits = tfds.as_numpy(tfds.load(name, split=["train", "test"], batch_size=-1,
                                      as_supervised=True))
    (x_train, y_train), (x_test, y_test) = splits
    return x_train[..., 0], y_train, x_test[..., 0], y_test


def load_digits_28() -> tuple:
    """scikit-learn's 1 797 8x8 digits, upscaled to 28x28, split 80/20 (seeded)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0  # values 0..16
    # Bilinear upscale 8 -> 28 with numpy: sample at pixel centres.
    coords = (np.arange(28) + 0.5) * 8 / 28 - 0.5
    lo = np.clip(np.floor(coords).astype(int), 0, 7)
    hi = np.clip(lo + 1, 0, 7)
    w = np.clip(coords - lo, 0, 1).astype(np.float32)
    rows = images[:, lo, :] * (1 - w)[None, :, None] + images[:, hi, :] * w[None, :, None]
    up = rows[:, :, lo] * (1 - w)[None, None, :] + rows[:, :, hi] * w[None, None, :]
    up = (np.clip(up, 0, 1) * 255).round().astype(np.uint8)
    order = np.random.default_rng(0).permutation(len(up))
    cut = int(len(up) * 0.8)
    tr, te = order[:cut], order[cut:]
    return up[tr], digits.target[tr], up[te], digits.target[te]


# ------------------------------------------------------------------------ public


def raw_arrays(name: str, data_dir: str | None = None) -> tuple:
    """The uint8 train/test arrays of a dataset and a description of their source."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    if name == "digits":
        if data_dir is not None:
            raise UserError(DIGITS_DATA_DIR)
        return load_digits_28(), "scikit-learn digits (8x8 upscaled to 28x28)"
    if data_dir is not None:
        if not os.path.isdir(data_dir):
            raise UserError(f"--data-dir {data_dir!r} is not a directory; give a folder "
                            f"holding {', '.join(IDX_FILES.values())}")
        return load_idx_dir(data_dir), f"IDX files in {data_dir}"
    tried = []
    package = DEBIAN_PACKAGE.get(name)
    if package:
        folder = debian_dataset_dir(package)
        if folder:
            return load_idx_dir(folder), f"Debian package {package}"
        tried.append(f"Debian package {package} (not installed)")
    try:
        return load_tfds(name), "tensorflow-datasets"
    except Exception as e:  # no network, no package: report below, one line
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        tried.append(f"tensorflow-datasets ({reason})")
    how = (f"install it with `apt-get install {package}` or pass --data-dir"
           if package else "pass --data-dir with the four IDX .gz files")
    raise UserError(f"no source for dataset {name!r}: tried {'; '.join(tried)}; {how}")


def load_dataset(name: str = "fashion_mnist", data_dir: str | None = None,
                 val_size: int = DEFAULT_VAL_SIZE, seed: int = 0,
                 train_limit: int | None = None, test_limit: int | None = None) -> Dataset:
    """Loads a dataset as float32 images in [0, 1] with a seeded validation split.

    Args:
        name: ``fashion_mnist``, ``mnist`` or ``digits``.
        data_dir: a folder with the four IDX ``.gz`` files, tried first.
        val_size: images moved from the training split to validation (seeded).
            For ``digits`` it is capped at a fifth of the training images.
        seed: seeds the split and the subsets.
        train_limit: keep at most this many training images (seeded subset),
            for quick runs; the validation split is taken first, and only a
            quarter of ``train_limit`` of it is kept.
        test_limit: keep at most this many test images (the first ones).

    Returns:
        A :class:`Dataset`; the test split is untouched apart from ``test_limit``.
        Its ``notes`` say where a size was more than the data holds (or the
        validation split was cut) and what was used instead.
    """
    (x_tr, y_tr, x_te, y_te), source = raw_arrays(name, data_dir)
    n_classes = len(CLASS_NAMES[name])
    for split, labels in (("training", y_tr), ("test", y_te)):
        if len(labels) and int(labels.max()) >= n_classes:  # uint8: never negative
            raise UserError(f"{source}: {split} label {int(labels.max())} is not a class of "
                            f"{name}; labels must be 0 ... {n_classes - 1}")
    if val_size < 0:
        raise UserError(f"validation size must be >= 0, got {val_size}")
    notes = []
    if name == "digits" and val_size > len(x_tr) // 5:
        notes.append(f"--val-size {val_size} is more than digits can spare: holding out "
                     f"{len(x_tr) // 5}, a fifth of its {len(x_tr)} training images")
        val_size = len(x_tr) // 5
    if val_size >= len(x_tr):
        raise UserError(f"validation size {val_size} leaves no training images "
                        f"(the training split has {len(x_tr)})")
    order = np.random.default_rng(seed).permutation(len(x_tr))
    val_idx, train_idx = order[:val_size], order[val_size:]
    if train_limit is not None:
        if train_limit > len(train_idx):
            notes.append(f"--train-size {train_limit} is more than the {len(train_idx)} "
                         f"training images left after validation: training on all "
                         f"{len(train_idx)}")
        train_idx = train_idx[:train_limit]
        if val_size and len(val_idx) > max(1, train_limit // 4):
            val_idx = val_idx[:max(1, train_limit // 4)]
            notes.append(f"--train-size {train_limit}: validating on {len(val_idx)} "
                         f"held-out images (a quarter of it) of the {val_size}")
    if test_limit is not None:
        if test_limit > len(x_te):
            notes.append(f"--test-size {test_limit} is more than the {len(x_te)} test "
                         f"images: testing on all {len(x_te)}")
        x_te, y_te = x_te[:test_limit], y_te[:test_limit]

    def prep(x):
        return (x.astype(np.float32) / 255.0)[..., None]

    return Dataset(
        name=name, source=source, class_names=list(CLASS_NAMES[name]),
        x_train=prep(x_tr[train_idx]), y_train=y_tr[train_idx].astype(np.int64),
        x_val=prep(x_tr[val_idx]), y_val=y_tr[val_idx].astype(np.int64),
        x_test=prep(x_te), y_test=y_te.astype(np.int64), notes=notes,
    )
