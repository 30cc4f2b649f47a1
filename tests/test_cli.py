"""main.py: help, the cae task end to end on small data, bad input, resume."""

import json
import os

import numpy as np
import pytest

from conftest import ROOT, run_main

TINY_CAE = ["--conv-filters", "4", "8", "8", "--dense-units", "16", "--latent-dim", "3",
            "--verbose", "0"]


@pytest.mark.backend_independent
class TestHelp:
    def test_lists_every_task(self):
        from tasks.registry import TASKS

        result = run_main("--help")
        assert result.returncode == 0
        for name in TASKS:
            assert f"\n    {name} " in result.stdout

    def test_task_help_explains_options(self):
        result = run_main("cae", "--help")
        assert result.returncode == 0
        for option in ("--dataset", "--data-dir", "--latent-dim", "--epochs", "--batch-size",
                       "--lr", "--seed", "--out", "--resume"):
            assert option in result.stdout


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.backend_independent
class TestBadInput:
    @pytest.mark.parametrize("args, fragments", [
        (["nosuchtask"], ["invalid choice: 'nosuchtask'", "cae"]),
        (["cae", "--dataset", "cifar"], ["'cifar'", "fashion_mnist"]),
        (["cae", "--epochs", "0"], ["--epochs", "0 is not positive"]),
        (["cae", "--epochs", "-3"], ["--epochs", "-3"]),
        (["cae", "--latent-dim", "-1"], ["--latent-dim", "-1"]),
        (["cae", "--batch-size", "0"], ["--batch-size", "0"]),
        (["cae", "--batch-size", "lots"], ["--batch-size", "'lots'"]),
        (["classify", "--val-size", "0"], ["--val-size", "0 is not positive"]),
    ])
    def test_argument_errors(self, args, fragments):
        assert_one_line_error(run_main(*args), *fragments)

    def test_missing_data_dir(self, tmp_path):
        result = run_main("cae", "--data-dir", str(tmp_path / "absent"), "--out",
                          str(tmp_path / "run"))
        assert_one_line_error(result, "absent", "not a directory")

    def test_validation_split_leaving_no_training_images(self, tmp_path):
        from test_data import make_idx_dir
        make_idx_dir(tmp_path, n_train=50)
        result = run_main("cae", "--dataset", "mnist", "--data-dir", str(tmp_path),
                          "--val-size", "50", "--out", str(tmp_path / "run"))
        assert_one_line_error(result, "validation size 50", "has 50")

    def test_corrupt_idx(self, tmp_path):
        from test_data import make_idx_dir
        make_idx_dir(tmp_path)
        (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"garbage")
        result = run_main("cae", "--dataset", "mnist", "--data-dir", str(tmp_path),
                          "--out", str(tmp_path / "run"))
        assert_one_line_error(result, "train-images-idx3-ubyte.gz", "corrupt")

    def test_unwritable_out(self, tmp_path):
        blocker = tmp_path / "file"
        blocker.write_text("x")
        result = run_main("cae", "--dataset", "digits", "--out", str(blocker / "run"))
        assert_one_line_error(result, "--out", "not writable")

    def test_bad_dropout(self, tmp_path):
        result = run_main("cae", "--dataset", "digits", "--dropout", "1.5",
                          "--out", str(tmp_path))
        assert_one_line_error(result, "--dropout", "1.5 is outside [0, 1)")

    def test_resume_of_a_finished_run(self, tmp_path):
        (tmp_path / ".run.json").write_text('{"task": "cae"}')
        (tmp_path / "metrics.json").write_text('{"task": "cae"}')
        result = run_main("cae", "--dataset", "digits", "--resume", "--out", str(tmp_path))
        assert_one_line_error(result, "--resume", "holds a finished cae run")


class TestCaeTask:
    def test_end_to_end_writes_every_output(self, tmp_path):
        out = tmp_path / "run"
        result = run_main("cae", "--dataset", "digits", "--epochs", "2", *TINY_CAE,
                          "--out", str(out))
        assert result.returncode == 0, result.stderr
        assert f"outputs written to {out}" in result.stdout
        for name in ("cae.keras", "encoder.keras", "decoder.keras", "config.json",
                     "history.json", "metrics.json", "loss.png", "reconstructions.png"):
            assert (out / name).is_file(), name
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["epochs"] == 2 and metrics["latent_dim"] == 3
        # The whole run's config, as parsed: what a later reader needs to repeat it.
        assert metrics["config"]["training"]["epochs"] == 2
        assert metrics["config"]["data"]["dataset"] == "digits"
        assert metrics["config"]["output"]["out"] == str(out)
        assert 0 < metrics["test_mse"] < 0.2
        assert metrics["backend"] == os.environ.get("KERAS_BACKEND", "tensorflow")
        assert not (out / "backup").exists()  # removed after a finished fit

    def test_same_seed_same_metrics(self, tmp_path):
        runs = []
        for name in ("a", "b"):
            result = run_main("cae", "--dataset", "digits", "--epochs", "1", "--seed", "5",
                              *TINY_CAE, "--out", str(tmp_path / name))
            assert result.returncode == 0, result.stderr
            runs.append(json.loads((tmp_path / name / "metrics.json").read_text()))
        assert runs[0]["test_mse"] == pytest.approx(runs[1]["test_mse"], rel=1e-6, abs=1e-9)


class Interrupt(Exception):
    pass


def test_crash_leaves_no_model_and_resume_continues(tmp_path, tiny_dataset):
    """An interrupted fit writes no .keras; --resume continues from the last epoch."""
    import keras

    from models.cae import CAEConfig
    from training.cae import CAETraining, train_cae

    config = CAEConfig(conv_filters=(4, 8, 8), dense_units=16, latent_dim=3)

    class CrashAfterSecondEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise Interrupt()

    with pytest.raises(Interrupt):
        train_cae(tiny_dataset, config, str(tmp_path), CAETraining(epochs=4, batch_size=16),
                  verbose=0, extra_callbacks=[CrashAfterSecondEpoch()])
    assert not list(tmp_path.glob("*.keras"))
    assert (tmp_path / "backup").is_dir()

    _, metrics = train_cae(tiny_dataset, config, str(tmp_path),
                           CAETraining(epochs=4, batch_size=16), verbose=0, resume=True)
    assert metrics["epochs"] == 4  # the restored two and the two trained now
    assert (tmp_path / "cae.keras").is_file()
    assert not (tmp_path / "backup").exists()
