"""The acceleration layer is one switch: importing the toolkit changes nothing
global, ``--no-accel`` and ``UNSUPERVISED28_ACCEL=0`` run stock Keras with the
same results, and an untested Keras version turns acceleration off by itself."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import keras
from conftest import ROOT, run_main

BACKEND = keras.backend.backend()

# Runs in a fresh process: fingerprints of Keras's classes and process state,
# before and after importing the toolkit's packages and building, training and
# saving a CAE with them.
FINGERPRINT = """
import json, os, sys
sys.path.insert(0, {root!r})
from runtime.quiet import import_tensorflow_quietly
import_tensorflow_quietly()
import keras
from keras.src.trainers import data_adapters

def fingerprint():
    classes = [keras.layers.Layer, keras.Model, keras.layers.Conv2D,
               keras.layers.Conv2DTranspose, keras.layers.BatchNormalization,
               keras.layers.Dense, keras.optimizers.Adam, keras.optimizers.AdamW]
    try:
        from keras.src.backend.tensorflow.trainer import TensorFlowTrainer
        classes.append(TensorFlowTrainer)
    except ImportError:
        pass
    try:
        from keras.src.backend.jax.trainer import JAXEpochIterator
        classes.append(JAXEpochIterator)
    except ImportError:
        pass
    seen = {{}}
    for cls in classes:
        for klass in cls.__mro__:
            for name, value in vars(klass).items():
                if name == "__annotations__":  # Python creates it on first read
                    continue
                seen[f"{{klass.__module__}}.{{klass.__qualname__}}.{{name}}"] = id(value)
    for name in ("clear_session",):
        seen["keras.backend." + name] = id(getattr(keras.backend, name))
    seen["get_data_adapter"] = id(data_adapters.get_data_adapter)
    dynamo = sys.modules.get("torch._dynamo")
    seen["torch._dynamo"] = "absent" if dynamo is None else type(dynamo).__name__ + \\
        str(hasattr(dynamo, "OptimizedModule"))
    for var in ("OMP_WAIT_POLICY", "XLA_FLAGS", "JAX_COMPILATION_CACHE_DIR",
                "UNSUPERVISED28_ACCEL", "TF_ENABLE_ONEDNN_OPTS"):
        seen["env." + var] = os.environ.get(var)
    return seen

before = fingerprint()
import models, training, evaluation, tuning, accel, data, storage, plots  # noqa
from models.cae import CAEConfig, build_cae
from training.cae import CAETraining
import numpy as np
model = build_cae(CAEConfig(conv_filters=(2, 2, 2), dense_units=4, latent_dim=2))
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
accel.accelerate(model)
model.fit(np.zeros((4, 28, 28, 1), "float32"), np.zeros((4, 28, 28, 1), "float32"),
          verbose=0)
after = fingerprint()
changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
print(json.dumps(changed))
"""


def test_importing_and_using_the_toolkit_changes_nothing_global():
    """A user's own script that imports models, training, evaluation, ... and
    trains an accelerated model leaves Keras's classes and functions, the
    process's environment and ``torch._dynamo`` as they were."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "UNSUPERVISED28_ACCEL")}
    env["KERAS_BACKEND"] = BACKEND
    result = subprocess.run([sys.executable, "-c", FINGERPRINT.format(root=ROOT)],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_the_fingerprint_sees_what_start_up_changes():
    """The control: the same fingerprint after ``startup.start`` (main.py's
    process-wide settings) reports what it changed."""
    code = FINGERPRINT.replace("import models, training,",
                               "import startup; startup.start([], {backend!r}); "
                               "import models, training,").format(root=ROOT, backend=BACKEND)
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "UNSUPERVISED28_ACCEL", "JAX_COMPILATION_CACHE_DIR")}
    env["KERAS_BACKEND"] = BACKEND
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    changed = json.loads(result.stdout.strip().splitlines()[-1])
    assert "env.JAX_COMPILATION_CACHE_DIR" in changed
    if BACKEND == "tensorflow":
        assert "get_data_adapter" in changed


def _tiny_conv_model():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same")(inputs)
    return keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same")(x))


def test_an_untested_keras_version_turns_acceleration_off_in_one_line(monkeypatch, capsys):
    from accel import accelerate
    from runtime import acceleration

    monkeypatch.setattr(acceleration, "_warned", set())
    assert acceleration.enabled(BACKEND)  # the control: the tested version
    monkeypatch.setattr(keras, "__version__", "3.99.0")
    model = _tiny_conv_model()
    assert not acceleration.enabled(BACKEND)
    assert accelerate(model) is model
    assert not any({"call", "convolution_op"} & set(vars(layer)) for layer in model.layers)
    assert "call" not in vars(model)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1  # said once, however often asked
    assert "keras 3.99.0" in lines[0] and "stock Keras" in lines[0]


@pytest.mark.skipif(BACKEND == "tensorflow", reason="tensorflow has no model speed paths")
def test_accelerate_changes_the_objects_it_is_given_and_the_switch_stops_it(monkeypatch):
    from accel import accelerate

    monkeypatch.setenv("UNSUPERVISED28_ACCEL", "0")
    model = accelerate(_tiny_conv_model())
    assert not any({"call", "convolution_op"} & set(vars(layer)) for layer in model.layers)
    monkeypatch.setenv("UNSUPERVISED28_ACCEL", "1")
    model = accelerate(model)
    assert any({"call", "convolution_op"} & set(vars(layer)) for layer in model.layers)


def test_start_up_on_an_untested_version_makes_no_speed_setting():
    """``startup.start`` with a faked newer Keras: no heap padding, no jax cache,
    one line on stderr, Keras still imported (stock)."""
    code = """
import importlib.metadata as metadata, json, os, sys
sys.path.insert(0, {root!r})
real = metadata.version
metadata.version = lambda name: "3.99.0" if name == "keras" else real(name)
import startup.heap as heap
calls = []
heap.keep_freed_memory = lambda: calls.append(1)
import startup
on = startup.start([], {backend!r})
print(json.dumps({{"on": on, "heap": calls, "cache": os.environ.get("JAX_COMPILATION_CACHE_DIR"),
                  "keras": "keras" in sys.modules}}))
"""
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["KERAS_BACKEND"] = BACKEND
    result = subprocess.run([sys.executable, "-c", code.format(root=ROOT, backend=BACKEND)],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {"on": False, "heap": [], "cache": None, "keras": True}
    notes = [line for line in result.stderr.splitlines() if "acceleration is off" in line]
    assert len(notes) == 1 and "keras 3.99.0" in notes[0]


# ------------------------------------------------- the stock path, end to end

TINY = ["--dataset", "digits", "--train-size", "256", "--test-size", "128", "--verbose", "0"]


def _metrics(out):
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_cae_gives_the_same_test_mse_with_acceleration_on_and_off(tmp_path):
    """A seeded 1-epoch CAE: ``--no-accel`` (stock Keras) and the default give
    the same test MSE within 1e-3 relative, and metrics.json says which ran."""
    runs = {}
    for name, switch in (("on", []), ("off", ["--no-accel"])):
        out = tmp_path / name
        result = run_main(*switch, "cae", *TINY, "--epochs", "1", "--out", str(out))
        assert result.returncode == 0, result.stderr[-2000:]
        runs[name] = _metrics(out)
    assert runs["on"]["accelerated"] is True and runs["off"]["accelerated"] is False
    assert runs["off"]["test_mse"] == pytest.approx(runs["on"]["test_mse"], rel=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("task,options,headline", [
    ("vae", ["--epochs", "1", "--latent-dim", "2", "--width", "4", "--dense-units", "16"],
     "test_elbo_nats"),
    ("gan", ["--epochs", "1", "--width", "4"], "final_epoch"),
])
def test_generative_tasks_train_on_stock_keras(task, options, headline, tmp_path):
    out = tmp_path / task
    result = run_main(task, *TINY, *options, "--out", str(out),
                      env={"UNSUPERVISED28_ACCEL": "0"})
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = _metrics(out)
    assert metrics["accelerated"] is False
    values = metrics[headline] if isinstance(metrics[headline], dict) else [metrics[headline]]
    assert np.all(np.isfinite(list(values.values() if isinstance(values, dict) else values)))
    for name in os.listdir(out):  # the inference models load with plain Keras
        if name.endswith(".keras") and name != "vae.keras":
            keras.saving.load_model(str(out / name), compile=False)


@pytest.mark.slow
def test_classify_trains_on_stock_keras(tmp_path):
    from models.cae import CAEConfig, build_cae

    cae_path = str(tmp_path / "cae.keras")
    build_cae(CAEConfig(conv_filters=(4, 8, 8), dense_units=16, latent_dim=4)).save(cae_path)
    out = tmp_path / "run"
    result = run_main(
        "classify", *TINY, "--encoder", cae_path, "--features", "dense1",
        "--max-trials", "1", "--tuning-epochs", "1", "--epochs", "1",
        "--fine-tune-epochs", "1", "--baseline-epochs", "1", "--label-fractions", "1",
        "--label-counts", "", "--no-semi-supervised",
        "--min-steps", "1", "--out", str(out), env={"UNSUPERVISED28_ACCEL": "0"})
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = _metrics(out)
    assert metrics["accelerated"] is False
    for key in ("frozen", "fine_tuned", "baseline"):
        assert 0.0 <= metrics["models"][key]["test_accuracy"] <= 1.0
