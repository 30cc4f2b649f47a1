"""Shared fixtures. The backend is whatever KERAS_BACKEND says (CI runs all three)."""

import os
import sys

import numpy as np
import pytest

# Before torch loads: its OpenMP threads otherwise spin while waiting, and on a
# busy 2-core machine a Keras-on-torch test then runs 25x slower (measured: the
# real-data CAE test took 166 s instead of 7 s beside one other process).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from runtime.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

import keras  # noqa: E402

from data.datasets import Dataset  # noqa: E402


@pytest.fixture
def tiny_images():
    """Smooth synthetic 28x28 blobs in [0, 1]: for shapes and plumbing only."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:28, 0:28]
    centres = rng.uniform(8, 20, size=(64, 2))
    widths = rng.uniform(3, 6, size=(64, 1, 1))
    images = np.exp(-((yy - centres[:, 0, None, None]) ** 2 + (xx - centres[:, 1, None, None]) ** 2)
                    / (2 * widths ** 2))
    return images[..., None].astype(np.float32)


@pytest.fixture
def tiny_dataset(tiny_images):
    labels = np.arange(len(tiny_images)) % 10
    return Dataset(name="synthetic", source="test fixture", class_names=[str(i) for i in range(10)],
                   x_train=tiny_images[:40], y_train=labels[:40],
                   x_val=tiny_images[40:52], y_val=labels[40:52],
                   x_test=tiny_images[52:], y_test=labels[52:])


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session()


def real_data_or_skip(name="fashion_mnist", **kwargs):
    """Loads real data; where none is installed, skips, unless CI requires it."""
    from data.datasets import load_dataset
    from cli.errors import UserError

    try:
        return load_dataset(name, **kwargs)
    except UserError as e:
        if os.environ.get("REQUIRE_REAL_DATA"):
            raise
        pytest.skip(f"no real {name} data here ({e}); CI installs dataset-fashion-mnist")


def run_main(*args, env=None, timeout=600):
    """Runs `python main.py ...` in a fresh process; returns CompletedProcess."""
    import subprocess

    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *args],
                          capture_output=True, text=True, cwd=ROOT, env=full_env,
                          timeout=timeout)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``backend_independent`` check nothing a Keras backend computes
    (argument parsing, HTML, KerasTuner's network plumbing): CI runs the suite once
    per backend, so they run in the tensorflow pass only."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend == "tensorflow":
        return
    skip = pytest.mark.skip(reason="backend-independent: runs in the tensorflow pass")
    for item in items:
        if "backend_independent" in item.keywords:
            item.add_marker(skip)
