"""main.py all: steps in order, a failed step does not stop independent ones."""

import json
import os

import pytest

from tasks import all as study
from tasks.all import Step


def test_failed_step_skips_dependents_and_not_the_others(tmp_path, monkeypatch, capsys):
    import main as cli

    tiny_vae = ["--out", "{root}/vae", "--train-size", "64", "--test-size", "32",
                "--epochs", "1", "--latent-dim", "2", "--dense-units", "16", "--verbose", "0"]
    monkeypatch.setattr(study, "STEPS", [
        Step("cae", ["--out", "{root}/cae", "--epochs", "0"], []),  # argparse rejects it
        Step("latent", ["--out", "{root}/latent", "--model", "{root}/cae/cae.keras"], [],
             needs=("cae",)),
        Step("vae", tiny_vae, []),
    ])
    code = cli.main(["all", "--dataset", "digits", "--out", str(tmp_path)])
    assert code == 0
    summary = {r["step"]: r for r in json.loads((tmp_path / "summary.json").read_text())}
    assert summary["cae"]["status"] == "failed"
    assert summary["latent"]["status"] == "skipped" and "cae" in summary["latent"]["reason"]
    assert summary["vae"]["status"] == "ok"
    assert summary["vae"]["value"] < 0  # an ELBO read from the step's metrics.json
    assert (tmp_path / "vae" / "metrics.json").is_file()
    assert (tmp_path / "report.html").is_file()
    printed = capsys.readouterr().out
    assert "step 1/3: cae (then: latent, vae)" in printed
    assert "| vae | ok | test ELBO (nats) |" in printed


@pytest.mark.backend_independent
def test_unknown_step_is_a_one_line_error():
    from conftest import run_main
    from test_cli import assert_one_line_error

    assert_one_line_error(run_main("all", "--steps", "cae,paint"), "'cae,paint'", "paint",
                          "latent")


@pytest.mark.backend_independent
def test_quick_shrinks_every_step():
    for step in study.STEPS:
        argv = study.step_argv(step, "ROOT", study.AllConfig(quick=True))
        assert "--train-size" in argv, step.name
        assert all("{root}" not in a for a in argv)
        assert argv[-4:] == ["--dataset", "fashion_mnist", "--seed", "0"]  # DataConfig's


def _capture_runs(monkeypatch, *tasks):
    """Replaces the ``run`` of each task module: each records its arguments."""
    import importlib

    seen = {}
    for task in tasks:
        module = importlib.import_module(f"tasks.{task}")
        monkeypatch.setattr(module, "run", lambda args, task=task: seen.setdefault(task, args))
    return seen


@pytest.mark.backend_independent
def test_compute_options_reach_the_training_steps(tmp_path, monkeypatch):
    from runtime.compute import ComputeConfig

    seen = _capture_runs(monkeypatch, "cae", "latent")
    monkeypatch.setattr(study, "STEPS", [
        Step("cae", ["--out", "{root}/cae"], []),
        Step("latent", ["--out", "{root}/latent", "--model", "{root}/cae/cae.keras"], []),
    ])
    config = study.AllConfig(dataset="digits", compute=ComputeConfig(
        precision="mixed_bfloat16", distribute="data_parallel", cpu_devices=2))
    config.output.out = str(tmp_path)
    study.run_study(config)
    cae = seen["cae"]
    assert (cae.precision, cae.distribute, cae.cpu_devices) == ("mixed_bfloat16",
                                                                "data_parallel", 2)
    assert not hasattr(seen["latent"], "precision")  # latent trains nothing of its own


@pytest.mark.backend_independent
def test_ctrl_c_prints_the_command_that_continues_the_study(tmp_path, monkeypatch, capsys):
    import keras

    from cli.errors import UserError

    def interrupt(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(study, "STEPS", [Step("cae", ["--out", "{root}/cae"], [])])
    import tasks.cae
    monkeypatch.setattr(tasks.cae, "run", interrupt)
    config = study.AllConfig(dataset="digits")
    config.output.out = str(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        study.run_study(config)
    assert stopped.value.code == 130
    assert (f"continue the study with: python3 main.py --backend {keras.backend.backend()} "
            f"all --resume --out {tmp_path}") in capsys.readouterr().err
    with pytest.raises(UserError, match="holds an earlier study: continue it .* with --resume"):
        study.run_study(config)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "jax",
                    reason="five processes, over a minute on 2 cores: runs in the jax pass "
                           "only, where a resumed training repeats the uninterrupted one to "
                           "the last bit (torch's CPU kernels round one gradient differently "
                           "after a restore)")
def test_study_killed_three_times_resumes_to_the_same_summary(tmp_path):
    """A tiny study (tests/study_kill_probe.py: a CAE, then a denoising CAE, on
    digits) killed with SIGKILL in the CAE's training, between the two steps and in
    the denoising CAE's training, each time continued with --resume, ends with the
    uninterrupted study's figures."""
    import subprocess
    import sys

    probe = os.path.join(os.path.dirname(__file__), "study_kill_probe.py")

    def study_run(moment, out, *extra):
        return subprocess.run([sys.executable, probe, moment, "--out", str(out), *extra],
                              capture_output=True, text=True, timeout=600)

    whole = study_run("none", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = tmp_path / "killed"
    for i, moment in enumerate(["epoch:cae:1", "step:cae", "epoch:denoise:1"]):
        done = study_run(moment, killed, *(["--resume"] if i else []))
        assert done.returncode == -9, (moment, done.stderr[-3000:])
        if i == 1:
            assert "epoch 1 of 3 done" in done.stdout  # the CAE went on from its backup
    last = study_run("none", killed, "--resume")
    assert last.returncode == 0, last.stderr[-3000:]
    assert "kept: cae finished" in last.stdout
    assert "epoch 1 of 3 done" in last.stdout  # the denoising CAE, from its backup

    def figures(out):  # summary.md without its wall times and folders
        rows = (out / "summary.md").read_text().splitlines()[2:]
        return [row.split(" | ")[:4] for row in rows]

    assert figures(killed) == figures(tmp_path / "whole")
    assert [row[0] for row in figures(killed)] == ["| cae", "| denoise"]
    whole_mse, killed_mse = (json.loads((out / "cae" / "metrics.json").read_text())["test_mse"]
                             for out in (tmp_path / "whole", killed))
    assert killed_mse == whole_mse
    a, b = (json.loads((out / "denoise" / "metrics.json").read_text())["results"]
            for out in (tmp_path / "whole", killed))
    assert [r["denoising_mse"] for r in b] == [r["denoising_mse"] for r in a]
