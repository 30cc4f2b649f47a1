"""tune --model vae|gan|classifier: objectives, resume after a killed trial, one
search end to end per model, and the bad inputs."""

import json
import os

import numpy as np
import pytest

from conftest import run_main
from test_cli import assert_one_line_error
from test_tune import Killed
from test_tune_cli import TINY, hparams_sessions, read_trials
from tuning.kfold import KFoldTrialMixin
from tuning.results import best_row
from tuning.tuners import make_tuner


def mean_pixel_distance(calls):
    """A stand-in for FID in plumbing tests: records what it is given."""
    def distance(images, split, metric):
        calls.append((np.array(images), split, metric))
        return float(np.mean(images))
    return distance


def killed_on_fit(cls, fit_number, log):
    """``cls`` whose ``fit`` records each call and is killed on call ``fit_number``."""
    class Recording(cls):
        def fit(self, hp, model, *args, **kwargs):
            if len(log) + 1 == fit_number:
                raise Killed()
            log.append(dict(hp.values))
            return super().fit(hp, model, *args, **kwargs)
    return Recording


def search(hypermodel, data, directory, max_trials):
    tuner = make_tuner("random", hypermodel,
                       objective=_objective(hypermodel), max_trials=max_trials,
                       directory=str(directory), project_name="p", seed=0,
                       tuner_class=KFoldTrialMixin, folds=1)
    x, y, val = hypermodel.search_data(data)
    tuner.search(x, y, validation_data=val, epochs=1, verbose=0)
    return tuner


def _objective(hypermodel):
    import keras_tuner as kt
    return kt.Objective(hypermodel.objective, hypermodel.direction)


# ----------------------------------------------------------------- objectives


@pytest.mark.backend_independent
def test_objective_directions_and_best_row():
    from tuning.hypermodels import HYPERMODELS

    assert HYPERMODELS["vae"].OBJECTIVES["val_neg_elbo"] == "min"
    assert HYPERMODELS["gan"].OBJECTIVES == {"fid": "min", "kid": "min"}
    assert HYPERMODELS["classifier"].OBJECTIVES["val_accuracy"] == "max"
    assert HYPERMODELS["cae"].OBJECTIVES["val_mse"] == "min"
    rows = [{"status": "COMPLETED", "objective": v, "trial_id": str(i)}
            for i, v in enumerate([0.3, 0.9, 0.1])]
    assert best_row(rows, "min")["trial_id"] == "2"
    assert best_row(rows, "max")["trial_id"] == "1"


def test_vae_objective_is_the_negative_elbo_whatever_beta(tmp_path, tiny_dataset):
    from tuning.vae_hypermodel import VAEHyperModel

    tuner = search(VAEHyperModel("small"), tiny_dataset, tmp_path, max_trials=1)
    (trial,) = tuner.oracle.trials.values()
    assert trial.hyperparameters.get("beta") != 1.0
    # Retrain the trial's configuration by hand: the score is BCE + KL, not val_loss.
    import keras
    hm = VAEHyperModel("small")
    keras.utils.set_random_seed(0)
    model = hm.build(trial.hyperparameters)
    history = hm.fit(trial.hyperparameters, model, tiny_dataset.x_train,
                     validation_data=(tiny_dataset.x_val,), epochs=1, verbose=0)
    h = history.history
    assert h["val_neg_elbo"][0] == pytest.approx(h["val_reconstruction_loss"][0]
                                                 + h["val_kl_loss"][0], rel=1e-6)
    beta = trial.hyperparameters.get("beta")
    assert h["val_loss"][0] == pytest.approx(h["val_reconstruction_loss"][0]
                                             + beta * h["val_kl_loss"][0], rel=1e-4)
    assert np.isfinite(trial.score) and trial.score > 0


def test_gan_trial_scores_fixed_noise_samples_against_validation(tmp_path, tiny_dataset):
    from tuning.gan_hypermodel import GANHyperModel

    calls = []
    hm = GANHyperModel(mean_pixel_distance(calls), "small", n_samples=20, objective="kid")
    tuner = search(hm, tiny_dataset, tmp_path, max_trials=1)
    (trial,) = tuner.oracle.trials.values()
    ((images, split, metric),) = calls
    assert images.shape == (20, 28, 28, 1) and 0 <= images.min() and images.max() <= 1
    assert (split, metric) == ("val", "kid")
    assert trial.score == pytest.approx(float(np.mean(images)))
    assert trial.metrics.get_last_value("epochs") == 1
    # The same generator gives the same samples: the noise is fixed.
    import keras
    keras.utils.set_random_seed(0)
    gan = hm.build(trial.hyperparameters)
    np.testing.assert_array_equal(hm.samples(gan), hm.samples(gan))


# ------------------------------------------------------- resume after a kill


@pytest.mark.parametrize("model", ["vae", "gan"])
def test_killed_trial_resumes_without_losing_finished_trials(tmp_path, tiny_dataset, model):
    from tuning.gan_hypermodel import GANHyperModel
    from tuning.vae_hypermodel import VAEHyperModel

    def hypermodel(log, fit_number=None):
        if model == "vae":
            return killed_on_fit(VAEHyperModel, fit_number, log)("small")
        return killed_on_fit(GANHyperModel, fit_number, log)(
            mean_pixel_distance([]), "small", n_samples=8)

    log = []
    with pytest.raises(Killed):
        search(hypermodel(log, fit_number=2), tiny_dataset, tmp_path, max_trials=2)
    assert len(log) == 1
    log2 = []
    resumed = search(hypermodel(log2), tiny_dataset, tmp_path, max_trials=2)
    assert len(log2) == 1  # only the killed trial runs again; the finished one is kept
    trials = resumed.oracle.trials
    assert sorted(trials) == ["0", "1"]
    assert all(t.status == "COMPLETED" for t in trials.values())
    assert log2[0] == dict(trials["1"].hyperparameters.values) != log[0]


# ------------------------------------------------------------- end to end


def _check_search_outputs(out, objective, test_key):
    (row,) = read_trials(out)
    assert row["status"] == "COMPLETED" and float(row["seconds"]) > 0
    best = json.loads((out / "best_hyperparameters.json").read_text())
    assert best[objective] == pytest.approx(float(row["objective"]))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["objective"] == objective and metrics["best_hyperparameters"] == \
        best["hyperparameters"]
    assert np.isfinite(metrics[test_key])
    assert hparams_sessions(out / "tensorboard") == {"0"}
    for name in ("trials.png", "hyperparameters.png", "best_training.png"):
        assert (out / name).is_file(), name
    return metrics


@pytest.mark.slow
def test_vae_search_end_to_end(tmp_path):
    import keras

    out = tmp_path / "run"
    result = run_main("tune", "--model", "vae", *TINY, "--max-trials", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    metrics = _check_search_outputs(out, "val_neg_elbo", "test_neg_elbo_nats")
    assert metrics["direction"] == "min" and metrics["test_neg_elbo_nats"] > 0
    import models  # noqa: F401  registers the VAE class
    vae = keras.saving.load_model(out / "best.keras")
    assert vae.latent_dim == metrics["best_hyperparameters"]["latent_dim"]
    assert (vae.encoder.get_layer("dense").units == vae.decoder.get_layer("decoder_hidden").units
            == metrics["best_hyperparameters"]["dense_units"])


@pytest.mark.slow
def test_gan_search_end_to_end(tmp_path):
    import keras

    out = tmp_path / "run"
    result = run_main("tune", "--model", "gan", *TINY, "--max-trials", "1",
                      "--fid-samples", "64", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "trial 0: fid " in result.stdout
    metrics = _check_search_outputs(out, "fid", "test_fid")
    assert metrics["fid_samples"] == 64 and metrics["best_fid"] > 0
    assert (out / "domain_classifier.keras").is_file()  # a subset's stays in the run
    generator = keras.saving.load_model(out / "best.keras")
    assert generator.input_shape[-1] == metrics["best_hyperparameters"]["latent_dim"]


@pytest.mark.slow
def test_classifier_search_end_to_end_with_folds(tmp_path):
    import keras

    out = tmp_path / "run"
    result = run_main("tune", "--model", "classifier", *TINY, "--max-trials", "1",
                      "--folds", "2", "--cae-epochs", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    metrics = _check_search_outputs(out, "val_accuracy", "test_accuracy")
    assert metrics["direction"] == "max" and metrics["folds"] == 2
    assert 0 <= metrics["test_accuracy"] <= 1
    (row,) = read_trials(out)
    assert row["folds"] == "2" and row["features"] in ("code", "dense1")
    classifier = keras.saving.load_model(out / "best.keras")
    assert classifier.output_shape == (None, 10)


# --------------------------------------------------------------- bad input


@pytest.mark.backend_independent
class TestBadModelInput:
    @pytest.mark.parametrize("args, fragments", [
        (["--model", "gan", "--objective", "val_mse"],
         ["--objective 'val_mse'", "--model gan", "fid, kid"]),
        (["--model", "vae", "--objective", "fid"], ["--objective 'fid'", "val_neg_elbo"]),
        (["--model", "vae", "--folds", "3"], ["--folds 3", "--model vae", "cae and classifier"]),
        (["--model", "gan", "--folds", "2"], ["--folds 2", "--model gan"]),
        (["--model", "cae", "--encoder", "x.keras"], ["--encoder", "--model classifier"]),
        (["--model", "classifier", "--encoder", "missing.keras"],
         ["--encoder", "missing.keras", "does not exist"]),
    ])
    def test_argument_errors(self, tmp_path, args, fragments):
        result = run_main("tune", *args, *TINY, "--out", str(tmp_path / "run"))
        assert_one_line_error(result, *fragments)
        assert not (tmp_path / "run").exists()  # refused before any work

    def test_a_file_that_is_no_encoder(self, tmp_path):
        import keras

        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)], name="not_enc")
        path = str(tmp_path / "not_encoder.keras")
        model.save(path)
        result = run_main("tune", "--model", "classifier", "--encoder", path, *TINY,
                          "--out", str(tmp_path / "run"))
        assert_one_line_error(result, "--encoder", "not_encoder.keras", "not a CAE or an encoder")
