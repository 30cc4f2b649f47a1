"""--resume of the tasks that train several models (denoise, classify, latent --sweep,
tune's final retraining): a run stopped at chosen moments and resumed ends with the
metrics of an uninterrupted run; finished phases are reused, not retrained."""

import json
import os

import pytest

# Every backend repeats an uninterrupted training to the last bit (torch too, since
# every weight has its own path: tests/test_weight_paths.py).
REL = 1e-6
TINY_CAE = ["--conv-filters", "4", "8", "8", "--dense-units", "16", "--latent-dim", "3"]
DIGITS = ["--dataset", "digits", "--train-size", "120", "--test-size", "60", "--verbose", "0"]


class Killed(BaseException):
    """Stands for kill -9: nothing in the code under test catches it."""


def run_task(task, *argv):
    """``main.py <task> ...`` in this process (as ``all`` runs its steps)."""
    import keras

    from tasks.registry import build_parser

    keras.backend.clear_session()
    args = build_parser().parse_args([task, *argv])
    return args.task_module.run(args)


def kill_at(monkeypatch, phase, epoch):
    """Raises Killed right after ``phase`` committed the backup of ``epoch``, or,
    for epoch 0, right after it claimed the backup folder (before any epoch)."""
    import storage.training_backup as backup
    import training.phases as phases

    def write_json(path, obj, real=backup.write_json):
        written = real(path, obj)
        folder, name = os.path.split(path)
        try:
            with open(os.path.join(folder, "phase.json")) as f:
                owner = json.load(f)["phase"]
        except OSError:
            return written
        if owner == phase and name == (f"epoch-{epoch:04d}.json" if epoch else "phase.json"):
            raise Killed(f"{phase}, epoch {epoch}")
        return written

    monkeypatch.setattr(backup, "write_json", write_json)
    monkeypatch.setattr(phases, "write_json", write_json)


def interrupted(monkeypatch, moments, task, *argv):
    """Runs ``task`` killed at each of ``moments`` in turn (each later run with
    ``--resume``), then to its end; returns the printed output of the last run."""
    for i, (phase, epoch) in enumerate(moments):
        with monkeypatch.context() as patch:
            kill_at(patch, phase, epoch)
            with pytest.raises(Killed):
                run_task(task, *argv, *(["--resume"] if i else []))
    return run_task(task, *argv, "--resume")


def metrics(out):
    return json.loads((out / "metrics.json").read_text())


# ------------------------------------------------------------ the phases' records


@pytest.mark.backend_independent
def test_a_finished_phase_is_kept_and_only_its_own_backup_restored(tmp_path):
    from storage.run_folder import make_run_dir, record
    from training.phases import PhasedRun

    make_run_dir("classify", str(tmp_path))

    def backup_of(phase, epoch):
        record(str(tmp_path / "backup"), "folders")  # as TrainingBackup does before it writes
        os.makedirs(tmp_path / "backup", exist_ok=True)
        (tmp_path / "backup" / "phase.json").write_text(json.dumps({"phase": phase,
                                                                    "tag": None}))
        (tmp_path / "backup" / f"epoch-{epoch:04d}.json").write_text("{}")

    run = PhasedRun(str(tmp_path), resume=False)
    assert run.start("frozen") == str(tmp_path / "backup")
    backup_of("frozen", 1)
    run.finish("frozen", {"accuracy": 0.5})
    assert not (tmp_path / "backup").exists()
    resumed = PhasedRun(str(tmp_path), resume=True)
    assert resumed.finished("frozen") and resumed.record("frozen")["accuracy"] == 0.5
    assert not resumed.finished("baseline")

    # Killed after its record, before its backup went: it may not have written
    # every file, so it is finished again from its backup.
    backup_of("frozen", 2)
    assert not resumed.finished("frozen")
    resumed.start("frozen")
    assert resumed.resumes("frozen") and not resumed.resumes("baseline")
    # Another phase never restores it: its state is removed.
    resumed.start("baseline")
    assert os.listdir(tmp_path / "backup") == ["phase.json"]
    assert not resumed.resumes("baseline")
    # Without --resume nothing is reused, not even the phase's own backup.
    backup_of("baseline", 1)
    fresh = PhasedRun(str(tmp_path), resume=False)
    assert not fresh.finished("frozen")
    fresh.start("baseline")
    assert not fresh.resumes("baseline")


@pytest.mark.backend_independent
def test_resume_with_other_options_names_the_first_that_differs(tmp_path):
    from cli.errors import UserError
    from training.phases import PhasedRun

    first = PhasedRun(str(tmp_path), resume=False)
    first.check_options({"data": {"seed": 0}, "epochs": 3, "verbose": 1})
    assert not (tmp_path / "phases").exists()  # recorded once a phase starts
    first.start("cae")
    again = PhasedRun(str(tmp_path), resume=True)
    again.check_options({"data": {"seed": 0}, "epochs": 3, "verbose": 0})  # verbose is free
    with pytest.raises(UserError, match="was run with --epochs 3, not 5; resume it with "
                                        "--epochs 3"):
        again.check_options({"data": {"seed": 0}, "epochs": 5, "verbose": 1})


@pytest.mark.backend_independent
def test_resume_needs_the_folder_of_a_run(tmp_path):
    from conftest import run_main
    from test_cli import assert_one_line_error

    assert_one_line_error(run_main("denoise", "--dataset", "digits", "--resume"),
                          "--resume needs --out DIR")
    missing = str(tmp_path / "nothing")
    assert_one_line_error(run_main("classify", "--dataset", "digits", "--resume", "--out",
                                   missing), f"--resume: {missing!r} is no folder")
    assert not os.path.exists(missing)


# ----------------------------------------------------------------- the tasks


@pytest.mark.slow
def test_denoise_resumes_each_cae_to_the_uninterrupted_results(tmp_path, monkeypatch):
    argv = [*DIGITS, *TINY_CAE, "--epochs", "2", "--batch-size", "32", "--noises",
            "none,gaussian:0.5", "--train-noise", "gaussian:0.5", "--examples", "2"]
    run_task("denoise", *argv, "--out", str(tmp_path / "whole"))
    # The plain CAE stopped after its first epoch; the denoising CAE, started from
    # the plain one, stopped before its first: it starts again from the plain CAE.
    interrupted(monkeypatch, [("plain_ld3", 1), ("denoising_ld3", 0)], "denoise", *argv,
                "--out", str(tmp_path / "resumed"))
    whole, resumed = metrics(tmp_path / "whole"), metrics(tmp_path / "resumed")
    for a, b in zip(whole["results"], resumed["results"]):
        assert b["plain_mse"] == pytest.approx(a["plain_mse"], rel=REL)
        assert b["denoising_mse"] == pytest.approx(a["denoising_mse"], rel=REL)
    assert not (tmp_path / "resumed" / "backup").exists()


@pytest.mark.slow
def test_latent_sweep_reuses_finished_caes(tmp_path, monkeypatch, capsys):
    argv = [*DIGITS, *TINY_CAE, "--epochs", "2", "--batch-size", "32", "--tsne-samples", "30",
            "--sweep", "2"]
    run_task("latent", *argv, "--out", str(tmp_path / "whole"))
    # The explored CAE finished, the sweep's stopped after its first epoch.
    interrupted(monkeypatch, [("sweep_ld2", 1)], "latent", *argv,
                "--out", str(tmp_path / "resumed"))
    printed = capsys.readouterr().out
    assert "reusing the finished cae CAE" in printed
    assert "epoch 1 of 2 done" in printed
    whole, resumed = metrics(tmp_path / "whole"), metrics(tmp_path / "resumed")
    assert resumed["test_mse"] == pytest.approx(whole["test_mse"], rel=REL)
    assert resumed["knn5_accuracy"] == whole["knn5_accuracy"]  # the CAE was reused
    (a,), (b,) = whole["sweep"], resumed["sweep"]
    assert b["test_mse"] == pytest.approx(a["test_mse"], rel=REL)
    assert b["knn5_accuracy"] == a["knn5_accuracy"]


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") == "jax",
                    reason="about 110 s of compiling on 2 cores on jax: runs in the "
                           "tensorflow and torch passes (jax's backups: the CAE's tests)")
def test_classify_resumes_every_kind_of_phase(tmp_path, monkeypatch, capsys):
    import tuning.kfold

    from models.cae import CAEConfig, build_cae

    cae = str(tmp_path / "cae.keras")
    build_cae(CAEConfig(conv_filters=(4, 8, 8), dense_units=16, latent_dim=3)).save(cae)
    argv = [*DIGITS, "--encoder", cae, "--features", "dense1", "--max-trials", "2",
            "--tuning-epochs", "1", "--epochs", "2", "--fine-tune-epochs", "2",
            "--baseline-epochs", "2", "--label-fractions", "1", "--label-counts", "",
            "--no-semi-supervised", "--min-steps", "1"]
    run_task("classify", *argv, "--out", str(tmp_path / "whole"))

    resumed = ["--out", str(tmp_path / "resumed")]
    trial = tuning.kfold.KFoldTrialMixin.run_trial
    calls = []

    def second_trial_killed(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Killed("second trial")
        return trial(self, *args, **kwargs)

    with monkeypatch.context() as patch:  # the head's search, after its first trial
        patch.setattr(tuning.kfold.KFoldTrialMixin, "run_trial", second_trial_killed)
        with pytest.raises(Killed):
            run_task("classify", *argv, *resumed)
    capsys.readouterr()
    # Fine-tuning before its first epoch (it starts again from the head the frozen
    # phase saved), then the baseline after its first.
    interrupted(monkeypatch, [("fine_tuned", 0), ("baseline", 1)], "classify", *argv,
                *resumed, "--resume")
    printed = capsys.readouterr().out
    assert "reusing the finished search of the head" in printed
    assert "reusing the finished frozen classifier" in printed
    assert "reusing the finished fine-tuned classifier" in printed
    assert "epoch 1 of 2 done" in printed
    whole, again = metrics(tmp_path / "whole"), metrics(tmp_path / "resumed")
    assert again["tuning"]["best_hyperparameters"] == whole["tuning"]["best_hyperparameters"]
    for key in ("frozen", "fine_tuned", "baseline"):
        a, b = whole["models"][key], again["models"][key]
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=REL), key
        assert b["test_accuracy"] == a["test_accuracy"], key
    assert [r["fraction"] for r in again["label_efficiency"]] == [1.0]
    for name in ("classifier_frozen.keras", "classifier_fine_tuned.keras", "baseline.keras"):
        assert (tmp_path / "resumed" / name).is_file()
    assert not (tmp_path / "resumed" / "backup").exists()


@pytest.mark.slow
def test_tune_retraining_resumes_and_a_finished_one_is_reused(tmp_path, monkeypatch, capsys):
    # The VAE: a model trained on images alone, with its own random draws.
    argv = [*DIGITS, "--model", "vae", "--space", "small", "--max-trials", "1", "--epochs", "1",
            "--final-epochs", "3"]
    run_task("tune", *argv, "--out", str(tmp_path / "whole"))
    interrupted(monkeypatch, [("retrain", 2)], "tune", *argv, "--out", str(tmp_path / "resumed"))
    assert "epoch 2 of 3 done" in capsys.readouterr().out
    whole, resumed = metrics(tmp_path / "whole"), metrics(tmp_path / "resumed")
    assert resumed["retrain_epochs"] == whole["retrain_epochs"] == 3
    for key in ("retrain_val_neg_elbo", "test_neg_elbo_nats"):
        assert resumed[key] == pytest.approx(whole[key], rel=REL), key
    run_task("tune", *argv, "--out", str(tmp_path / "resumed"))
    assert "reusing the finished retraining" in capsys.readouterr().out
    assert metrics(tmp_path / "resumed")["test_neg_elbo_nats"] == resumed["test_neg_elbo_nats"]
