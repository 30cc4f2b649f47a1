"""Every count has an upper bound, checked before any work (one line naming it, exit
2), and an option that cannot take effect is refused or says what was used instead."""

import os

import keras
import pytest

from conftest import run_main
from test_cli import assert_one_line_error

BACKEND = keras.backend.backend()


# ------------------------------------------------------------------ processes


@pytest.mark.backend_independent
class TestLocalWorkers:
    def test_at_most_one_worker_per_cpu_core_without_a_gpu(self):
        from cli.errors import UserError
        from tuning.local_workers import check_worker_count, cpu_cores

        cores = cpu_cores()
        check_worker_count(cores, gpus=[])
        with pytest.raises(UserError, match=f"--local-workers {cores + 1}: at most {cores}, "
                                            f"the {cores} CPU core"):
            check_worker_count(cores + 1, gpus=[])

    def test_at_most_one_worker_per_gpu(self):
        from cli.errors import UserError
        from tuning.local_workers import check_worker_count

        check_worker_count(2, gpus=["0", "3"])
        with pytest.raises(UserError, match="--local-workers 3: at most 2, the 2 GPU"):
            check_worker_count(3, gpus=["0", "3"])

    def test_hundreds_are_refused_before_any_process_starts(self, tmp_path):
        out = tmp_path / "search"
        result = run_main("tune", "--dataset", "digits", "--local-workers", "999",
                          "--out", str(out), env={"CUDA_VISIBLE_DEVICES": ""}, timeout=300)
        assert_one_line_error(result, "--local-workers 999: at most", "CPU core")
        assert "started" not in result.stdout and not out.exists()


# ---------------------------------------------------------- simulated devices


@pytest.mark.backend_independent
class TestCpuDevices:
    def test_at_most_64(self):
        from runtime.compute import ComputeConfig

        ComputeConfig(distribute="data_parallel", cpu_devices=64)
        with pytest.raises(ValueError, match="--cpu-devices 65: at most 64"):
            ComputeConfig(distribute="data_parallel", cpu_devices=65)

    def test_without_distribute_is_refused_not_ignored(self, monkeypatch):
        from cli.errors import UserError
        from runtime import compute

        monkeypatch.setattr(compute, "_gpu_count", lambda backend: 0)
        with pytest.raises(UserError, match="--cpu-devices 2 simulates devices for --distribute "
                                            "data_parallel, and without it one device trains"):
            compute.configure(compute.ComputeConfig(precision="float32", cpu_devices=2))

    def test_99999_is_refused_at_once_with_or_without_distribute(self):
        for extra in ([], ["--distribute", "data_parallel"]):
            result = run_main("--backend", "jax", "gan", "--dataset", "digits",
                              "--cpu-devices", "99999", *extra, timeout=120)
            assert_one_line_error(result, "--cpu-devices 99999: at most 64")


@pytest.mark.skipif(BACKEND not in ("jax", "tensorflow"),
                    reason="torch refuses --cpu-devices for its backend first")
def test_cpu_devices_without_distribute_is_refused():
    from runtime import compute
    from cli.errors import UserError

    with pytest.raises(UserError, match="--cpu-devices 2 simulates devices for "
                                        "--distribute data_parallel.*drop --cpu-devices"):
        compute.configure(compute.ComputeConfig(cpu_devices=2))


# ----------------------------------------------------------- samples, components


@pytest.mark.backend_independent
class TestQuality:
    def test_n_has_an_upper_bound(self, tmp_path):
        result = run_main("quality", "--gan", str(tmp_path / "g.keras"), "--n", "100000000",
                          "--out", str(tmp_path / "run"))
        assert_one_line_error(result, "--n 100000000: at most 50000")
        assert not (tmp_path / "run").exists()

    def test_no_model_is_refused(self, tmp_path):
        result = run_main("quality", "--dataset", "digits", "--out", str(tmp_path / "run"))
        assert_one_line_error(result, "no model to score: give --gan, --vae or --cae")
        assert not (tmp_path / "run").exists()


def test_more_mixture_components_than_codes_is_one_line(tmp_path, tiny_images):
    from models.cae import CAEConfig, build_cae
    from models.saving import save_model
    from cli.errors import UserError
    from training.sampler_source import load_sampler

    path = save_model(build_cae(CAEConfig(conv_filters=(2, 2, 2), dense_units=4,
                                          latent_dim=2)), str(tmp_path / "cae.keras"))
    with pytest.raises(UserError, match="--components 12: a mixture of 12 Gaussians needs "
                                        "at least as many training codes, and there are 8; "
                                        "give --components 8 or fewer"):
        load_sampler(path, sampler="gmm", components=12, refit=True,
                     training_images=lambda: tiny_images[:8])
    assert not os.path.exists(tmp_path / "latent_gmm.json")
    load_sampler(path, sampler="gmm", components=8, refit=True,
                 training_images=lambda: tiny_images[:8])  # as many as codes: fits


# ---------------------------------------------------------------------- doctor


@pytest.mark.backend_independent
class TestDoctor:
    def test_fails_when_no_backend_runs(self):
        from cli.errors import UserError
        from tasks.doctor import check_usable

        broken = {name: {"error": "ImportError"} for name in ("tensorflow", "jax", "torch")}
        with pytest.raises(UserError, match="no Keras backend can run here"):
            check_usable("jax", broken)

    def test_fails_when_the_backend_in_use_cannot_run(self):
        from cli.errors import UserError
        from tasks.doctor import check_usable

        probes = {"tensorflow": {"error": "no module"}, "jax": {"devices": ["CPU:0"]},
                  "torch": {"devices": ["CPU:0"]}}
        check_usable("jax", probes)
        with pytest.raises(UserError, match="the backend in use, tensorflow, cannot run.*"
                                            "--backend jax or --backend torch"):
            check_usable("tensorflow", probes)

    def test_timeout_has_bounds(self):
        from tasks.doctor import DoctorConfig

        with pytest.raises(ValueError, match=r"--timeout 1e\+06: give seconds in \(0, 3600\]"):
            DoctorConfig(timeout=1e6)
        result = run_main("doctor", "--timeout", "0")
        assert_one_line_error(result, "--timeout", "not positive")
