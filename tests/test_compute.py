"""--precision, --distribute data_parallel, --cpu-devices, doctor, tune --local-workers."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import ROOT, run_main
from test_cli import assert_one_line_error

BACKEND = keras.backend.backend()
needs_distribution = pytest.mark.skipif(
    BACKEND not in ("jax", "tensorflow"), reason="Keras distributes on jax and tensorflow only")
TINY_DATA = ["--dataset", "digits", "--train-size", "40", "--val-size", "20",
             "--test-size", "10", "--epochs", "1", "--batch-size", "8", "--verbose", "0"]


# ------------------------------------------------------------ bad combinations


@pytest.mark.backend_independent
class TestBadInput:
    @pytest.mark.parametrize("args, fragments", [
        (["cae", "--precision", "float8"], ["--precision", "'float8'", "mixed_bfloat16"]),
        (["gan", "--distribute", "ddp"], ["--distribute", "'ddp'", "data_parallel"]),
        (["vae", "--cpu-devices", "0"], ["--cpu-devices", "0 is not positive"]),
        (["--backend", "torch", "cae", "--distribute", "data_parallel"],
         ["--distribute data_parallel", "torch", "jax and tensorflow"]),
        (["--backend", "torch", "gan", "--cpu-devices", "2"], ["--cpu-devices", "torch"]),
        (["tune", "--local-workers", "2", "--distributed", "chief", "--oracle",
          "127.0.0.1:9"], ["--local-workers", "drop --distributed"]),
        (["tune", "--local-workers", "2", "--distribute", "data_parallel"],
         ["--local-workers", "one device"]),
    ])
    def test_one_line_errors(self, args, fragments):
        assert_one_line_error(run_main(*args), *fragments)

    def test_cpu_devices_with_a_gpu(self, monkeypatch):
        from runtime import compute
        from cli.errors import UserError

        monkeypatch.setattr(compute, "_gpu_count", lambda backend: 1)
        with pytest.raises(UserError, match="--cpu-devices 2 simulates devices.*1 GPU"):
            compute.configure(compute.ComputeConfig(
                precision="float32", distribute="data_parallel", cpu_devices=2))

    def test_cpu_devices_reach_xla_before_jax_loads(self, monkeypatch):
        from runtime.compute import simulated_devices_environment

        monkeypatch.setenv("XLA_FLAGS", "--xla_foo=1 --xla_force_host_platform_device_count=8")
        simulated_devices_environment(["gan", "--cpu-devices=3"])
        assert os.environ["XLA_FLAGS"].split() == [
            "--xla_foo=1", "--xla_force_host_platform_device_count=3"]

    def test_jax_compilation_cache_is_on_unless_the_user_chose(self, monkeypatch, tmp_path):
        from startup import use_jax_compilation_cache

        monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        use_jax_compilation_cache()
        assert os.environ["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "unsupervised28" / "jax")
        monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "mine")
        use_jax_compilation_cache()
        assert os.environ["JAX_COMPILATION_CACHE_DIR"] == "mine"


@pytest.mark.backend_independent
def test_local_workers_strip_their_own_options():
    from tuning.local_workers import without_option

    argv = ["--backend", "jax", "tune", "--local-workers", "2", "--out=x", "--seed", "1"]
    assert without_option(without_option(argv, "--local-workers"), "--out") == \
        ["--backend", "jax", "tune", "--seed", "1"]


@pytest.mark.backend_independent
@pytest.mark.slow
def test_doctor_lists_every_backend():
    result = run_main("doctor", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["versions"]["keras"].startswith("3.")
    for backend in ("tensorflow", "jax", "torch"):
        assert "CPU:0" in report["backends"][backend]["devices"][0], report["backends"][backend]


# ------------------------------------------------------------ mixed precision


@pytest.fixture
def mixed_float16():
    keras.config.set_dtype_policy("mixed_float16")
    yield
    keras.config.set_dtype_policy("float32")


@pytest.mark.slow  # float16 on a CPU: jax compiles it slowly (13 s tensorflow, 137 s jax, busy)
def test_mixed_float16_scales_the_loss_of_the_custom_train_steps(mixed_float16, tiny_images,
                                                                 tmp_path):
    from accel import accelerate
    from models.gan import build_gan, default_optimizers, to_gan_range
    from models.vae import build_vae

    vae = build_vae(latent_dim=2, width=4, seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    gan = build_gan(latent_dim=4, width=2, seed=0)
    gan.compile(*default_optimizers())
    # As the training code: on torch, stock Keras's float16 convolution gradient
    # fails on a CPU (slow_conv2d needs a contiguous weight); accel's does not.
    accelerate(vae), accelerate(gan)
    for model in (vae.optimizer, gan.d_optimizer, gan.g_optimizer):
        assert isinstance(model, keras.optimizers.LossScaleOptimizer)
    assert vae.encoder.layers[1].compute_dtype == "float16"
    vae_logs = vae.fit(tiny_images[:16], batch_size=8, epochs=1, verbose=0).history
    gan_logs = gan.fit(to_gan_range(tiny_images[:16]), batch_size=8, epochs=1, verbose=0).history
    for value in (*vae_logs.values(), *gan_logs.values()):
        assert np.isfinite(value[-1])
    # Every step went through each loss-scale optimizer: applied (an iteration)
    # or skipped for a float16 overflow (the scale halved).
    for optimizer in (vae.optimizer, gan.d_optimizer, gan.g_optimizer):
        applied = int(keras.ops.convert_to_numpy(optimizer.iterations))
        scale = float(keras.ops.convert_to_numpy(optimizer.dynamic_scale))
        assert applied + np.log2(optimizer.initial_scale / scale) == pytest.approx(2)
    # A model trained in mixed precision loads with plain Keras.
    path = str(tmp_path / "encoder.keras")
    vae.encoder.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.layers[1].dtype_policy.name == "mixed_float16"


# ---------------------------------------------------------- data parallelism


@needs_distribution
@pytest.mark.slow
def test_two_devices_train_as_one():
    """CAE, VAE and GAN: two steps on 2 simulated devices give the one-device
    losses and weights (same global batches, same initial weights)."""
    env = dict(os.environ, KERAS_BACKEND=BACKEND)
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "distribute_probe.py"),
                           "2"], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    strategy = {"jax": "DataParallel", "tensorflow": "MirroredStrategy"}[BACKEND]
    for name, result in results.items():
        assert result["devices"] == 2 and result["strategy"] == strategy, name
        for key, value in result["one_device"].items():
            assert result["data_parallel"][key] == pytest.approx(value, rel=1e-4), (name, key)
        assert result["weight_max_abs_diff"] < 1e-4, name


@needs_distribution
@pytest.mark.slow
@pytest.mark.parametrize("task, options", [
    ("cae", ["--conv-filters", "4", "4", "4", "--dense-units", "8", "--latent-dim", "2"]),
    ("gan", ["--width", "2", "--latent-dim", "4"]),
])
def test_task_trains_on_two_devices(task, options, tmp_path):
    out = tmp_path / task
    # 40 training images in batches of 8 and 20 validation images: the last
    # validation batch (4) and the test set (10) split evenly, the batches of 8 too.
    result = run_main(task, *TINY_DATA, *options, "--cpu-devices", "2",
                      "--distribute", "data_parallel", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["devices"] == 2 and metrics["distribute"] == "data_parallel"
    assert metrics["strategy"] == {"jax": "DataParallel", "tensorflow": "MirroredStrategy"}[
        BACKEND]
    assert metrics["precision"] == "float32"


# ------------------------------------------------------------- local workers


@pytest.mark.backend_independent
@pytest.mark.slow
def test_local_workers_run_every_trial_once(tmp_path):
    out = tmp_path / "search"
    result = run_main("tune", "--dataset", "digits", "--train-size", "48", "--test-size", "16",
                      "--space", "small", "--epochs", "1", "--final-epochs", "1",
                      "--verbose", "0", "--max-trials", "4", "--local-workers", "2",
                      "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "started worker1" in result.stdout and "best configuration" in result.stdout
    ran = []
    for w in ("worker0", "worker1"):
        log = (out / "workers" / f"{w}.log").read_text()
        ran += [line.split()[2].rstrip(":") for line in log.splitlines()
                if line.startswith(f"[{w}] trial ")]
    assert sorted(ran) == ["0", "1", "2", "3"]  # every trial, each exactly once
    assert (out / "best.keras").is_file() and (out / "workers" / "chief.log").is_file()
    # Ended well: KerasTuner's state and the workers' folder are listed file by file.
    marker = json.loads((out / ".run.json").read_text())
    assert marker["folders"] == []
    assert {os.path.join("workers", "chief.log"), os.path.join("tuner", "cae", "oracle.json")} \
        <= set(marker["files"])
