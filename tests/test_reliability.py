"""Bad input found by trying everything gets one line (exit 2), JSON is strict,
and no run is lost or silently overwritten."""

import json
import os

import numpy as np
import pytest

from conftest import run_main

TINY_CAE = ["--conv-filters", "4", "8", "8", "--dense-units", "16", "--latent-dim", "3",
            "--verbose", "0"]
DIGITS = ["--dataset", "digits", "--train-size", "256", "--test-size", "100"]


def parse_error(capsys, *argv) -> str:
    """The one-line error main.py's parser prints for ``argv`` (exit 2)."""
    from tasks.registry import build_parser

    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(list(argv))
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.backend_independent
class TestNumbers:
    @pytest.mark.parametrize("argv, fragment", [
        (["cae", "--lr", "1e400"], "'1e400' is not a finite number"),          # item 6
        (["cae", "--lr", "nan"], "'nan' is not a finite number"),
        (["cae", "--l2", "nan"], "'nan' is not a finite number"),              # item 7
        (["cae", "--l2", "-1"], "-1.0 is negative"),
        (["cae", "--dropout", "inf"], "'inf' is not a finite number"),
        (["vae", "--beta=-inf"], "'-inf' is not a finite number"),
        (["classify", "--ema-epochs", "inf"], "'inf' is not a finite number"),
        (["denoise", "--noises", "gaussian:inf"], "not a finite number"),     # item 9
        (["denoise", "--train-noise", "mixed:nan:0.3"], "not a finite number"),
        (["cae", "--seed", "-5"], "-5 is negative"),                           # item 10
        (["cae", "--seed", "99999999999"], "up to 4294967295"),
        (["all", "--seed", "-1"], "-1 is negative"),
        (["cae", "--batch-size", "99999999999999999999999"], "too large"),     # item 11
        (["latent", "--sweep", "2,99999999999999999999"], "too large"),
    ])
    def test_refused_in_one_line(self, capsys, argv, fragment):
        assert fragment in parse_error(capsys, *argv)

    def test_largest_seed_is_accepted(self):
        from tasks.registry import build_parser

        args = build_parser().parse_args(["cae", "--seed", str(2**32 - 1)])
        assert args.seed == 2**32 - 1

    def test_layer_seed_keeps_small_seeds_and_wraps_large_ones(self):
        from runtime.backend import layer_seed

        assert layer_seed(7) == 7 and layer_seed(7, 2) == 9
        assert 0 <= layer_seed(2**32 - 1, 100) < 2**31 - 100

    def test_backend_after_the_task_says_where_it_goes(self, capsys):
        assert "--backend goes before the task" in parse_error(capsys, "cae", "--backend",
                                                                "torch")

    def test_empty_keras_backend_means_unset(self):
        result = run_main("--help", env={"KERAS_BACKEND": ""})
        assert result.returncode == 0, result.stderr


@pytest.mark.backend_independent
class TestStrictJson:
    def test_non_finite_numbers_become_null(self, tmp_path):
        from storage.files import write_json

        path = write_json(str(tmp_path / "m.json"),
                          {"a": float("nan"), "b": [1.0, float("inf")],
                           "c": np.float32("nan"), "d": np.array([2.0, -np.inf]),
                           "e": np.int64(3)})

        def refuse(constant):
            raise AssertionError(f"{constant} is not JSON")

        assert json.loads(open(path).read(), parse_constant=refuse) == {
            "a": None, "b": [1.0, None], "c": None, "d": [2.0, None], "e": 3}

    def test_diverged_history_is_one_line_error(self):
        from cli.errors import check_losses_finite
        from cli.errors import UserError

        check_losses_finite({"loss": [1.0, 0.5], "val_accuracy": [float("nan")]}, "hint")
        with pytest.raises(UserError, match="val_loss became nan in epoch 2.*lower --lr"):
            check_losses_finite({"val_loss": [1.0, float("nan")]}, "try a lower --lr")


@pytest.mark.backend_independent
def test_idx_label_outside_the_classes_is_refused(tmp_path):  # item 8
    from test_data import make_idx_dir, write_idx

    from data.datasets import IDX_FILES, load_dataset
    from cli.errors import UserError

    labels = make_idx_dir(tmp_path)["train_labels"]
    labels[3] = 200
    write_idx(str(tmp_path / IDX_FILES["train_labels"]), labels)
    with pytest.raises(UserError, match="training label 200 is not a class of mnist; "
                                        "labels must be 0 ... 9"):
        load_dataset("mnist", data_dir=str(tmp_path), val_size=10)


@pytest.mark.backend_independent
def test_text_file_named_keras_is_not_called_missing(tmp_path):
    from models.saving import load_keras_model
    from cli.errors import UserError

    path = tmp_path / "model.keras"
    path.write_text("not a model")
    with pytest.raises(UserError, match="is not a Keras model"):
        load_keras_model(str(path))


def test_quality_names_its_own_option_for_a_model_of_another_kind(tmp_path):
    from models.cae import CAEConfig, build_cae
    from models.saving import save_model
    from cli.errors import UserError
    from training.sampler_source import load_sampler

    path = save_model(build_cae(CAEConfig(conv_filters=(2, 2, 2), dense_units=4,
                                          latent_dim=2)), str(tmp_path / "cae.keras"))
    with pytest.raises(UserError) as error:
        load_sampler(path, option="gan")
    assert "--gan" in str(error.value) and "CAE" in str(error.value)
    assert "--codes-from" not in str(error.value)


@pytest.mark.slow
def test_run_stopped_by_nan_exits_non_zero_in_one_line(tmp_path):  # item 6
    out = tmp_path / "run"
    result = run_main("cae", *DIGITS, "--epochs", "2", "--lr", "1e30", *TINY_CAE,
                      "--out", str(out))
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "training diverged" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (out / "metrics.json").exists() and not (out / "cae.keras").exists()


class TestEncoderFiles:  # items 12 and 13: one line, not an AttributeError
    def test_vae_is_not_an_encoder(self):
        from models.classifier import encoder_from_model
        from models.vae import build_vae

        with pytest.raises(ValueError, match="'vae' .*VAE.* is not a CAE or an encoder"):
            encoder_from_model(build_vae(latent_dim=2, width=4))

    def test_unbuilt_sequential_is_not_an_encoder(self):
        import keras

        from models.classifier import encoder_from_model

        model = keras.Sequential([keras.layers.Dense(3)], name="unbuilt")
        with pytest.raises(ValueError, match="'unbuilt' .*never built"):
            encoder_from_model(model)


@pytest.mark.backend_independent
def test_generate_refuses_a_grid_past_its_limit(tmp_path):  # item 14
    result = run_main("generate", "--model", str(tmp_path / "absent.keras"),
                      "--n", "100000000", "--out", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr
    assert "main.py generate: error: --n 100000000: a grid holds at most 1024" in result.stderr
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------- run folders (items 2, 3)


@pytest.mark.backend_independent
class TestRunFolders:
    def test_another_run_is_refused_without_overwrite(self, tmp_path):
        from cli.errors import UserError
        from storage.files import write_text
        from storage.run_folder import make_run_dir

        out = make_run_dir("cae", str(tmp_path / "run"))
        write_text(os.path.join(out, "cae.keras"), "model")  # as the run writes it
        with pytest.raises(UserError, match="holds an earlier cae run.*--overwrite"):
            make_run_dir("cae", out)
        with pytest.raises(UserError, match="holds a cae run; one folder holds one task's"):
            make_run_dir("vae", out)
        assert make_run_dir("vae", out, overwrite=True) == out
        assert not (tmp_path / "run" / "cae.keras").exists()  # never two tasks mixed
        assert json.loads((tmp_path / "run" / ".run.json").read_text())["task"] == "vae"

    def test_run_written_before_the_mark_is_recognised(self, tmp_path):
        from cli.errors import UserError
        from storage.run_folder import make_run_dir

        (tmp_path / "metrics.json").write_text('{"task": "gan"}')
        with pytest.raises(UserError, match="holds a gan run"):
            make_run_dir("cae", str(tmp_path))

    def test_default_folders_of_the_same_second_differ(self, tmp_path, monkeypatch):
        from storage.run_folder import make_run_dir

        monkeypatch.chdir(tmp_path)
        assert make_run_dir("gan", None) != make_run_dir("gan", None)

    def test_stale_temporary_files_are_removed(self, tmp_path):
        from storage.run_folder import make_run_dir

        (tmp_path / "backup").mkdir()
        dead = 2**22 + 12345  # above the default pid_max: no such process
        stale = [tmp_path / f".cae.tmp{dead}.keras",
                 tmp_path / "backup" / f".epoch-0002.tmp{dead}.weights.h5"]
        for path in stale:
            path.write_bytes(b"half")
        live = tmp_path / f".metrics.tmp{os.getppid()}.json"
        live.write_text("{")
        (tmp_path / ".run.json").write_text('{"task": "cae"}')
        make_run_dir("cae", str(tmp_path), resume=True)
        assert not any(p.exists() for p in stale) and live.exists()

    def test_failed_run_leaves_no_empty_folder(self, tmp_path):
        from storage import run_folder
        from storage.files import write_text
        from storage.run_folder import make_run_dir

        empty = make_run_dir("cae", str(tmp_path / "failed"))
        write_text(os.path.join(empty, "config.json"), "{}")  # written by this process
        kept = make_run_dir("cae", str(tmp_path / "interrupted"))
        (tmp_path / "interrupted" / "backup").mkdir()
        run_folder.discard_unfinished()
        assert not os.path.exists(empty) and os.path.isdir(kept)

    def test_resume_with_another_latent_dim_names_the_option(self, tmp_path):  # item 15
        from models.cae import CAEConfig
        from cli.errors import UserError
        from training.cae import check_same_config

        (tmp_path / "config.json").write_text(CAEConfig(latent_dim=10).to_json())
        check_same_config(str(tmp_path), CAEConfig(latent_dim=10))
        with pytest.raises(UserError, match="trained with --latent-dim 10, not 5; resume it "
                                            "with --latent-dim 10"):
            check_same_config(str(tmp_path), CAEConfig(latent_dim=5))

    @pytest.mark.parametrize("task", ["cae", "vae", "gan", "denoise", "classify", "latent",
                                      "tune"])
    def test_ctrl_c_message_says_how_to_resume(self, tmp_path, task):
        import argparse

        from main import interrupted_hint
        from storage.run_folder import make_run_dir

        args = argparse.Namespace(task=task, resume=False)
        run = str(tmp_path / "run")
        assert "nothing was saved: run the same command again" in interrupted_hint(args, [run])
        make_run_dir(task, run)  # a folder the failed run's clean-up kept: it saved something
        assert interrupted_hint(args, [run]) == (
            f"; continue it with: python3 main.py {task} --resume --out {run} "
            f"(and the same options)")
        assert "nothing was saved" in interrupted_hint(
            argparse.Namespace(task="cae" if task != "cae" else "vae", resume=False), [run])
        assert interrupted_hint(argparse.Namespace(task="export"), [run]) == ""


# ------------------------------------------------ fault injection (items 1, 2, 4)


class Killed(BaseException):
    """Stands for kill -9: nothing in the code under test catches it."""


FAULT_EPOCHS = 3


def _train(out, resume=False):
    """A tiny CAE on 128 digits; patience 1 so that the learning-rate plateau and
    early-stopping counters matter to what a resumed run must reproduce."""
    import keras

    from data.datasets import load_dataset
    from models.cae import CAEConfig
    from runtime.backend import seed_everything
    from storage.run_folder import make_run_dir
    from training.cae import CAETraining, train_cae

    make_run_dir("cae", str(out), resume=resume)  # as `main.py cae [--resume]` does
    keras.backend.clear_session()
    seed_everything(0)
    data = load_dataset("digits", val_size=64, train_limit=128, test_limit=100)
    config = CAEConfig(conv_filters=(4, 8, 8), dense_units=16, latent_dim=3)
    return train_cae(data, config, str(out), CAETraining(epochs=FAULT_EPOCHS, batch_size=32,
                                                         lr=5e-3, patience=1),
                     verbose=0, resume=resume, seed=0)[1]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("uninterrupted"))


def _half_written(path):
    with open(path, "wb") as f:
        f.write(b"\x89HDF\r\n")  # a torn file: what a kill mid-write leaves


def test_epoch_feed_gives_each_row_once_in_an_order_drawn_from_seed_and_epoch():
    """The batch order a resumed run relies on: every row once per epoch, targets
    beside their inputs, and the same order from ``(seed, epoch)`` in a new feed."""
    from storage.training_backup import EpochFeed

    x = np.arange(10, dtype="float32").reshape(10, 1)

    def rows(feed, epoch):
        feed.set_epoch(epoch)
        batches = [feed[i] for i in range(len(feed))]
        assert [len(inputs) for inputs, _ in batches] == [4, 4, 2]
        inputs = np.concatenate([inputs for inputs, _ in batches]).ravel()
        targets = np.concatenate([targets for _, targets in batches]).ravel()
        np.testing.assert_array_equal(targets, inputs * 10)
        return inputs.tolist()

    feed = EpochFeed(x, x * 10, batch_size=4, seed=3)
    first = rows(feed, 1)
    assert sorted(first) == list(range(10)) and first != list(range(10))
    assert rows(EpochFeed(x, x * 10, batch_size=4, seed=3), 1) == first
    assert rows(feed, 2) != first
    autoencoder = EpochFeed(x, x, batch_size=4, seed=3)
    autoencoder.set_epoch(1)
    inputs, targets = autoencoder[0]
    assert inputs.ravel().tolist() == first[:4] and targets is inputs


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["backup weights write", "backup commit mark",
                                   "writer raises", "final commit", "final save"])
def test_resume_after_a_fault_ends_as_an_uninterrupted_run(tmp_path, monkeypatch,
                                                           uninterrupted, fault):
    """The run is stopped at a chosen moment, then --resume must finish it with the
    uninterrupted run's test MSE and its whole history."""
    import models.saving as saving
    import storage.training_backup as backup

    commits = []
    real_weights, real_atomic, real_save, real_json = (
        backup._atomic_weights, backup._atomic, saving.save_model, backup.write_json)

    def weights(model, path):  # killed while writing epoch 2's weights
        commits.append(path)
        if len(commits) == 2:
            _half_written(os.path.join(os.path.dirname(path),
                                       f".epoch-0002.tmp{os.getpid()}.weights.h5"))
            raise Killed()
        real_weights(model, path)

    def mark(path, obj):  # killed before epoch 2's commit mark
        if path.endswith("epoch-0002.json"):
            raise Killed()
        return real_json(path, obj)

    def final_mark(path, obj):  # killed after the last epoch, before the final commit
        if obj.get("finished"):
            raise Killed()
        return real_json(path, obj)

    def atomic(path, write):  # the disk fills while writing epoch 2's arrays
        if path.endswith("epoch-0002.npz"):
            raise OSError(28, "No space left on device")
        return real_atomic(path, write)

    def save(model, path):  # killed while writing encoder.keras: cae.keras is done
        if path.endswith("encoder.keras"):
            _half_written(os.path.join(os.path.dirname(path), f".encoder.tmp{os.getpid()}.keras"))
            raise Killed()
        return real_save(model, path)

    with monkeypatch.context() as patch:
        if fault == "backup weights write":
            patch.setattr(backup, "_atomic_weights", weights)
        elif fault == "backup commit mark":
            patch.setattr(backup, "write_json", mark)
        elif fault == "final commit":
            patch.setattr(backup, "write_json", final_mark)
        elif fault == "writer raises":
            patch.setattr(backup, "_atomic", atomic)
        else:
            patch.setattr(saving, "save_model", save)
        with pytest.raises((Killed, OSError)):
            _train(tmp_path)
    assert not (tmp_path / "metrics.json").exists()
    assert (tmp_path / "backup").is_dir()

    resumed = _train(tmp_path, resume=True)
    assert not list(tmp_path.rglob(".*.tmp*"))  # the torn files were removed
    assert resumed["test_mse"] == pytest.approx(uninterrupted["test_mse"], rel=1e-6)
    assert resumed["epochs"] == uninterrupted["epochs"]
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history["loss"]) == uninterrupted["epochs"]
    for name in ("cae.keras", "encoder.keras", "decoder.keras", "metrics.json", "loss.png"):
        assert (tmp_path / name).is_file(), name
    assert not (tmp_path / "backup").exists()


@pytest.mark.backend_independent
def test_worker_without_a_chief_gives_up_in_one_line(tmp_path):  # item 5
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_main("tune", "--distributed", "worker", "--oracle", f"127.0.0.1:{port}",
                      "--oracle-timeout", "1", "--dataset", "digits",
                      "--out", str(tmp_path / "run"), timeout=120)
    assert f"waiting for the chief at 127.0.0.1:{port}" in result.stdout
    assert result.returncode == 2, result.stderr
    errors = result.stderr.strip().splitlines()
    assert errors == [f"main.py tune: error: --oracle 127.0.0.1:{port}: no chief answered "
                      f"within 1 s; start `tune --distributed chief --oracle 127.0.0.1:{port}` "
                      f"first, or raise --oracle-timeout"], result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.backend_independent
def test_task_refuses_the_folder_of_another_run(tmp_path):  # item 3, end to end
    (tmp_path / ".run.json").write_text('{"task": "cae"}')
    (tmp_path / "cae.keras").write_text("a finished run's model")
    result = run_main("vae", "--dataset", "digits", "--out", str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert "holds a cae run; one folder holds one task's run" in result.stderr
    assert (tmp_path / "cae.keras").read_text() == "a finished run's model"


# ------------------------------------- the VAE and the GAN resume as the CAE does


GENERATIVE_EPOCHS = 2


def _train_generative(task, out, resume=False):
    """A tiny VAE or GAN (the GAN with a generator average, whose state is an
    optimizer's) on 128 digits, 4 batches an epoch; no figures. Returns the
    metrics and every weight of the trained model."""
    import keras

    from configs.gan import GANConfig
    from configs.vae import VAEConfig
    from data.datasets import load_dataset
    from runtime.backend import seed_everything
    from storage.run_folder import make_run_dir
    from training.gan import GANTraining, train_gan
    from training.vae import VAETraining, train_vae

    make_run_dir(task, str(out), resume=resume)  # as `main.py vae|gan [--resume]` does
    keras.backend.clear_session()
    seed_everything(0)
    data = load_dataset("digits", val_size=64, train_limit=128, test_limit=100)
    if task == "vae":
        model, metrics = train_vae(data, VAEConfig(latent_dim=2, width=4, dense_units=16),
                                   str(out),
                                   VAETraining(epochs=GENERATIVE_EPOCHS, batch_size=32),
                                   resume=resume, verbose=0, seed=0)
    else:
        model, metrics = train_gan(data, GANConfig(latent_dim=8, width=2), str(out),
                                   GANTraining(epochs=GENERATIVE_EPOCHS, batch_size=32,
                                               ema=0.5),
                                   resume=resume, verbose=0, seed=0)
    return metrics, [np.array(w) for w in model.get_weights()]


@pytest.fixture(scope="module")
def uninterrupted_generative(tmp_path_factory):
    runs = {}

    def run(task):
        if task not in runs:
            out = tmp_path_factory.mktemp(f"uninterrupted_{task}")
            runs[task] = (*_train_generative(task, out),
                          json.loads((out / "history.json").read_text()))
        return runs[task]
    return run


@pytest.mark.slow
@pytest.mark.parametrize("task, fault", [
    (task, fault) for task in ("vae", "gan")
    for fault in ("backup weights write", "backup commit mark", "final save")
] + [(task, "before the first backup") for task in ("vae", "gan")])
def test_generative_resume_after_a_fault_ends_as_an_uninterrupted_run(
        tmp_path, monkeypatch, uninterrupted_generative, task, fault):
    """The VAE or GAN is stopped at a chosen moment; --resume must finish it with
    the uninterrupted run's weights (both optimizers', the sampling noise's and the
    data order's states were saved), metrics and whole history. A run stopped
    before its first backup trains from the start."""
    import models.saving as saving
    import storage.training_backup as backup

    metrics, weights, history = uninterrupted_generative(task)
    commits = []
    real_weights, real_save, real_json = (backup._atomic_weights, saving.save_model,
                                          backup.write_json)
    killed_at = 1 if fault == "before the first backup" else 2

    def torn_weights(model, path):  # killed while writing an epoch's weights
        commits.append(path)
        if len(commits) == killed_at:
            _half_written(os.path.join(os.path.dirname(path),
                                       f".epoch-000{killed_at}.tmp{os.getpid()}.weights.h5"))
            raise Killed()
        real_weights(model, path)

    def mark(path, obj):  # killed before epoch 2's commit mark
        if path.endswith("epoch-0002.json"):
            raise Killed()
        return real_json(path, obj)

    second = {"vae": "encoder.keras", "gan": "discriminator.keras"}[task]

    def save(model, path):  # killed while writing the second model: the first is done
        if path.endswith(second):
            _half_written(os.path.join(os.path.dirname(path),
                                       f".{second[:-6]}.tmp{os.getpid()}.keras"))
            raise Killed()
        return real_save(model, path)

    with monkeypatch.context() as patch:
        if fault in ("before the first backup", "backup weights write"):
            patch.setattr(backup, "_atomic_weights", torn_weights)
        elif fault == "backup commit mark":
            patch.setattr(backup, "write_json", mark)
        else:
            patch.setattr(saving, "save_model", save)
        with pytest.raises(Killed):
            _train_generative(task, tmp_path)
    assert not (tmp_path / "metrics.json").exists()
    assert backup.has_backup(str(tmp_path / "backup")) == (fault != "before the first backup")
    for state in (tmp_path / "backup").glob("epoch-*.json"):  # the saved epochs' time
        assert json.loads(state.read_text())["wall_s"] > 0  # counts in the resumed run's

    resumed, resumed_weights = _train_generative(task, tmp_path, resume=True)
    assert not list(tmp_path.rglob(".*.tmp*"))  # the torn files were removed
    assert not (tmp_path / "backup").exists()
    for mine, theirs in zip(resumed_weights, weights, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
    resumed_history = json.loads((tmp_path / "history.json").read_text())
    if task == "vae":
        assert resumed["test_elbo_nats"] == pytest.approx(metrics["test_elbo_nats"], rel=1e-6)
        assert resumed["epochs"] == GENERATIVE_EPOCHS
        # Key by key: approx of a dict of lists would ask for exact equality.
        assert sorted(resumed_history) == sorted(history)
        for name, values in history.items():
            assert resumed_history[name] == pytest.approx(values, rel=1e-6), name
        names = ("vae.keras", "encoder.keras", "decoder.keras", "metrics.json")
    else:
        assert resumed["iterations"] == metrics["iterations"] == 4 * GENERATIVE_EPOCHS
        assert resumed["final_epoch"] == pytest.approx(metrics["final_epoch"], rel=1e-6)
        for key in ("epochs", "iterations"):
            for name, values in history[key].items():
                assert resumed_history[key][name] == pytest.approx(values, rel=1e-6), name
        names = ("generator.keras", "discriminator.keras", "metrics.json",
                 "samples_epoch_001.png", "samples_epoch_002.png")
    for name in names:
        assert (tmp_path / name).is_file(), name


@pytest.mark.backend_independent
class TestResumeFolder:
    """Which folder --resume trains in, and a run stopped before its first backup."""

    def test_a_run_stopped_before_its_first_backup_trains_again_in_its_folder(
            self, tmp_path, capsys):
        from storage.run_folder import make_run_dir
        from training.resume import run_folder

        out = str(tmp_path / "run")
        make_run_dir("gan", out)
        (tmp_path / "run" / "backup").mkdir()
        (tmp_path / "run" / "backup" / "epoch-0001.weights.h5").write_bytes(b"\x89HDF")
        assert run_folder("gan", out, resume=True, overwrite=False) == out
        assert "holds no saved epoch of a gan run: training from the start" in \
            capsys.readouterr().out
        assert run_folder("gan", out, resume=False, overwrite=False) == out
        assert "stopped before it saved an epoch: training there from the start" in \
            capsys.readouterr().out

    def test_a_finished_run_is_not_resumed_nor_rerun(self, tmp_path):
        from cli.errors import UserError
        from storage.run_folder import make_run_dir
        from training.resume import run_folder

        out = str(tmp_path / "run")
        make_run_dir("vae", out)
        (tmp_path / "run" / "metrics.json").write_text('{"task": "vae"}')
        with pytest.raises(UserError, match="holds a finished vae run .* --overwrite"):
            run_folder("vae", out, resume=True, overwrite=False)
        with pytest.raises(UserError, match="--out .* holds an earlier vae run"):
            run_folder("vae", out, resume=False, overwrite=False)

    @pytest.mark.parametrize("task", ["cae", "vae", "gan", "denoise", "classify", "latent",
                                      "tune", "all"])
    def test_resume_needs_the_folder_of_the_run(self, tmp_path, monkeypatch, task):
        """One rule for every resumable task: --resume needs --out, an existing folder."""
        from cli.errors import UserError
        from training.phases import resume_folder as phases_folder
        from training.resume import run_folder

        monkeypatch.chdir(tmp_path)
        (tmp_path / "runs" / task / "20240102-000000").mkdir(parents=True)  # not guessed
        resume = ((lambda out: run_folder(task, out, resume=True, overwrite=False))
                  if task in ("cae", "vae", "gan") else
                  (lambda out: phases_folder(task, out, resume=True)))
        with pytest.raises(UserError, match=f"^--resume needs --out DIR, the folder of the "
                                            f"{task} run to continue$"):
            resume(None)
        with pytest.raises(UserError, match="'missing' is no folder; give the folder of the "
                                            "interrupted .* or leave out --resume"):
            resume("missing")
        assert not (tmp_path / "missing").exists()

    def test_other_settings_are_refused_naming_the_option(self, tmp_path):
        from cli.errors import UserError
        from storage.training_backup import check_same_settings

        (tmp_path / "backup").mkdir()
        (tmp_path / "backup" / "epoch-0001.json").write_text(json.dumps(
            {"settings": {"width": 4, "d_lr": None, "spectral_norm": True}}))
        backup = str(tmp_path / "backup")
        check_same_settings(backup, {"width": 4, "d_lr": None, "spectral_norm": True})
        for given, message in [
                ({"width": 8}, "was trained with --width 4, not with --width 8; resume it "
                               "with --width 4"),
                ({"d_lr": 1e-4}, "was trained without --d-lr, not with --d-lr 0.0001"),
                ({"spectral_norm": False}, "was trained with --spectral-norm, not without "
                                           "--spectral-norm")]:
            with pytest.raises(UserError, match=message):
                check_same_settings(backup, given)
