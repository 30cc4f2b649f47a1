"""Start-up: on jax and torch a task never imports TensorFlow unless it uses it
(startup/imports.py); on tensorflow it is imported at once, quietly."""

import json
import math
import os
import subprocess
import sys

import pytest

import keras
from conftest import ROOT

BACKEND = keras.backend.backend()

# Runs main.py in-process, then says which heavy modules it loaded.
PROBE = """
import json, sys
sys.path.insert(0, {root!r})
import main
code = main.main({argv!r})
print(json.dumps({{"code": code, "tensorflow": "tensorflow" in sys.modules}}))
"""


def _run_main(argv, tmp_path):
    env = dict(os.environ, KERAS_BACKEND=BACKEND)
    result = subprocess.run([sys.executable, "-c", PROBE.format(root=ROOT, argv=argv)],
                            capture_output=True, text=True, env=env, cwd=str(tmp_path),
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def test_a_task_imports_tensorflow_only_on_its_own_backend(tmp_path):
    """A seeded CAE run that saves and reloads models: TensorFlow stays unloaded
    on jax and torch, and nothing it would print reaches stderr on tensorflow."""
    out = tmp_path / "run"
    seen, stderr = _run_main(["cae", "--dataset", "digits", "--epochs", "1", "--verbose", "0",
                              "--out", str(out)], tmp_path)
    assert seen["code"] == 0 and (out / "encoder.keras").exists()
    assert seen["tensorflow"] == (BACKEND == "tensorflow")
    assert "oneDNN" not in stderr and "cuda" not in stderr.lower()
    reloaded = keras.saving.load_model(str(out / "encoder.keras"))
    config = json.loads((out / "metrics.json").read_text())["config"]
    assert reloaded.output_shape[-1] == config["cae"]["latent_dim"]


@pytest.mark.skipif(BACKEND == "tensorflow", reason="jax and torch keep TensorFlow unloaded")
def test_keras_is_told_tensorflow_is_absent_until_it_is_imported():
    """On jax or torch Keras is told TensorFlow is absent and it stays unloaded;
    asked for the tensorflow backend, the same call imports it."""
    code = """
import sys
from startup.imports import import_tensorflow_for_backend
from keras.src.utils import module_utils
import_tensorflow_for_backend({backend!r})
print(module_utils.tensorflow._available, "tensorflow" in sys.modules)
"""
    env = dict(os.environ, KERAS_BACKEND=BACKEND)
    lines = []
    for backend in (BACKEND, "tensorflow"):
        result = subprocess.run([sys.executable, "-c", code.format(backend=backend)],
                                capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        lines.append(result.stdout.split())
    assert lines[0] == ["False", "False"]  # jax or torch: not imported, Keras told
    assert lines[1][1] == "True"  # asked for tensorflow: imported


def test_keras_starts_without_its_optional_packages_which_still_import_later():
    """Keras's import skips scikit-learn, matplotlib, IPython (and jax on torch
    and tensorflow, where TensorFlow's import loads Keras); once Keras is loaded,
    the toolkit imports and uses them as usual."""
    code = """
import json, sys
from startup.imports import KERAS_OPTIONAL_IMPORTS, import_tensorflow_for_backend
import_tensorflow_for_backend({backend!r})
hidden = KERAS_OPTIONAL_IMPORTS[{backend!r}]
loaded = [name for name in hidden if name in sys.modules]
import keras, matplotlib.pyplot, sklearn.datasets
import numpy as np
assert "keras" in sys.modules and len(sklearn.datasets.load_digits().images) == 1797
matplotlib.pyplot.figure()
print(json.dumps({{"hidden": hidden, "loaded": loaded}}))
"""
    env = dict(os.environ, KERAS_BACKEND=BACKEND)
    result = subprocess.run([sys.executable, "-c", code.format(backend=BACKEND)],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert "sklearn" in seen["hidden"] and seen["loaded"] == []


@pytest.mark.skipif(BACKEND != "torch", reason="torch._dynamo is torch's")
def test_keras_starts_on_torch_without_dynamo_and_torch_compile_still_works():
    """Keras's two ``@dynamo.disable()`` marks do not load ``torch._dynamo`` at
    import; a later ``jit_compile=True`` loads it and gets the real marks, and
    seeded draws give the same numbers either way."""
    code = """
import json, sys
from startup.imports import import_tensorflow_for_backend
import_tensorflow_for_backend("torch")
import keras, numpy as np
at_import = "torch._dynamo" in sys.modules
before = keras.random.normal((3,), seed=7).tolist()
inputs = keras.Input((4,))
hidden = keras.layers.Dropout(0.5, seed=1)(keras.layers.Dense(4)(inputs))
model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
model.compile("adam", "mse", jit_compile=True)
loss = model.fit(np.ones((32, 4)), np.ones((32, 1)), verbose=0).history["loss"][0]
from keras.src.backend.torch import random
after = keras.random.normal((3,), seed=7).tolist()
marked = getattr(random.torch_seed_generator.twin, "_torchdynamo_disable", False)
print(json.dumps({"at_import": at_import, "loss": loss, "same": before == after,
                  "marked": marked}))
"""
    env = dict(os.environ, KERAS_BACKEND="torch")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["at_import"] is False
    assert seen["same"] and math.isfinite(seen["loss"]) and seen["marked"]


@pytest.mark.backend_independent
def test_openmp_waits_passively_only_on_a_busy_machine(monkeypatch):
    """The wait policy follows the CPU time other processes used while the start
    sleeps: one busy core of two -> PASSIVE; an idle machine -> OpenMP's default;
    the user's own setting always wins."""
    from startup import threads

    real_cpu_times = threads._cpu_times
    samples = []
    monkeypatch.setattr(threads, "_cpu_times", lambda: samples.pop(0))
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    samples[:] = [(100, 1000), (150, 1100)]  # half the jiffies busy: one core of two
    assert threads.busy_cores() == pytest.approx(1.0)
    samples[:] = [(100, 1000), (150, 1100)]
    assert threads.choose_omp_wait_policy() == "PASSIVE"
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    samples[:] = [(100, 1000), (102, 1100)]  # 2% busy: idle
    assert threads.choose_omp_wait_policy() is None
    assert "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    samples[:] = [(100, 1000), (150, 1100)]
    assert threads.choose_omp_wait_policy() is None
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    busy, total = real_cpu_times()  # the real /proc/stat reads
    assert 0 <= busy <= total
