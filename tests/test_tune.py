"""Hyperparameter search: folds, the CAE hypermodel, k-fold trials, resume, Hyperband."""

import os

import numpy as np
import pytest

from tuning.kfold import KFoldTrialMixin, fold_indices
from tuning.tuners import make_tuner


class TestFolds:
    def test_partition_is_disjoint_complete_and_seeded(self):
        folds = fold_indices(10, 3, seed=1)
        assert len(folds) == 3
        vals = np.concatenate([va for _, va in folds])
        assert sorted(vals.tolist()) == list(range(10))  # every sample validated once
        for tr, va in folds:
            assert not set(tr) & set(va) and len(tr) + len(va) == 10
        again = fold_indices(10, 3, seed=1)
        assert all((a[1] == b[1]).all() for a, b in zip(folds, again))
        other = fold_indices(10, 3, seed=2)
        assert any(not np.array_equal(a[1], b[1]) for a, b in zip(folds, other))

    def test_too_few_samples(self):
        with pytest.raises(ValueError, match="cannot split 2 samples into 3 folds"):
            fold_indices(2, 3, seed=0)


class TestCAEHyperModel:
    def test_values_reach_the_model_and_optimizer(self):
        import keras
        import keras_tuner as kt

        from tuning.cae_hypermodel import CAEHyperModel

        hypermodel = CAEHyperModel("small")
        hp = kt.HyperParameters()
        hypermodel.build(hp)
        names = {p.name for p in hp.space}
        assert names == {"conv1", "conv2", "conv3", "dense_units", "latent_dim", "dropout",
                         "l2", "optimizer", "learning_rate", "batch_size"}
        hp.values.update(latent_dim=4, conv3=16, optimizer="sgd", learning_rate=0.005)
        model = hypermodel.build(hp)
        assert model.get_layer("encoder").output.shape[-1] == 4
        assert model.get_layer("encoder").get_layer("conv3").filters == 16
        assert isinstance(model.optimizer, keras.optimizers.SGD)
        assert model.optimizer.momentum == pytest.approx(0.9)
        assert float(model.optimizer.learning_rate) == pytest.approx(0.005)
        hp.values["optimizer"] = "adam"
        assert isinstance(hypermodel.build(hp).optimizer, keras.optimizers.Adam)


def recording_hypermodel(log, crash_on_fit=None):
    """The small CAE hypermodel, recording every fit (and optionally crashing)."""
    from tuning.cae_hypermodel import CAEHyperModel

    class Recording(CAEHyperModel):
        def fit(self, hp, model, x, y, validation_data=None, **kwargs):
            if crash_on_fit is not None and len(log) + 1 == crash_on_fit:
                raise Killed()
            history = super().fit(hp, model, x, y, validation_data=validation_data, **kwargs)
            log.append({"train": len(x), "val": len(validation_data[0]),
                        "val_mse": min(history.history["val_mse"]),
                        "initial_epoch": kwargs.get("initial_epoch", 0),
                        "epochs": kwargs["epochs"], "hp": dict(hp.values)})
            return history
    return Recording("small")


class Killed(BaseException):
    """Stands in for a kill: not an Exception, so KerasTuner does not catch it."""


def tiny_tuner(name, hypermodel, directory, **kwargs):
    return make_tuner(name, hypermodel, objective="val_mse", directory=str(directory),
                      project_name="p", seed=0, tuner_class=KFoldTrialMixin, **kwargs)


def test_kfold_trial_reports_mean_and_spread_of_folds(tmp_path, tiny_dataset):
    log = []
    tuner = tiny_tuner("random", recording_hypermodel(log), tmp_path, max_trials=1, folds=3,
                       tensorboard_dir=str(tmp_path / "tb"))
    x = tiny_dataset.x_train  # 40 images
    tuner.search(x, x, validation_data=(tiny_dataset.x_val, tiny_dataset.x_val), epochs=1,
                 verbose=0)
    assert len(log) == 3  # three models in one trial
    assert sorted(f["val"] for f in log) == [13, 13, 14]  # the folds of 40, not x_val (12)
    assert all(f["train"] + f["val"] == 40 for f in log)
    (trial,) = tuner.oracle.trials.values()
    scores = [f["val_mse"] for f in log]
    assert trial.score == pytest.approx(np.mean(scores), rel=1e-6)
    assert trial.metrics.get_last_value("val_mse_std") == pytest.approx(np.std(scores), rel=1e-5)
    assert trial.metrics.get_last_value("folds") == 3
    # The trial's own TensorBoard folder: one per fold plus the HParams session.
    trial_tb = tmp_path / "tb" / trial.trial_id
    assert sorted(os.listdir(trial_tb / "fold1")) == ["train", "validation"]
    assert (trial_tb / "fold3").is_dir() and list(trial_tb.glob("events.out.tfevents.*"))


def test_killed_search_resumes_without_losing_finished_trials(tmp_path, tiny_dataset):
    x, val = tiny_dataset.x_train, (tiny_dataset.x_val, tiny_dataset.x_val)
    log = []
    tuner = tiny_tuner("random", recording_hypermodel(log, crash_on_fit=2), tmp_path,
                       max_trials=3, folds=1)
    with pytest.raises(Killed):
        tuner.search(x, x, validation_data=val, epochs=1, verbose=0)
    assert len(log) == 1
    first = tuner.oracle.trials["0"].score

    log2 = []
    resumed = tiny_tuner("random", recording_hypermodel(log2), tmp_path, max_trials=3, folds=1)
    resumed.search(x, x, validation_data=val, epochs=1, verbose=0)
    assert len(log2) == 2  # trial 1 (killed) again and trial 2; trial 0 not rerun
    trials = resumed.oracle.trials
    assert sorted(trials) == ["0", "1", "2"]
    assert all(t.status == "COMPLETED" for t in trials.values())
    assert trials["0"].score == first


def test_hyperband_caps_trials_and_continues_parent_weights(tmp_path, tiny_dataset):
    x, val = tiny_dataset.x_train, (tiny_dataset.x_val, tiny_dataset.x_val)
    log = []
    tuner = tiny_tuner("hyperband", recording_hypermodel(log), tmp_path, max_trials=4,
                       max_epochs=3, folds=1)
    tuner.search(x, x, validation_data=val, epochs=3, verbose=0)
    trials = tuner.oracle.trials
    assert len(trials) == 4  # Hyperband honours the same trial budget as the others
    continued = [f for f in log if "tuner/trial_id" in f["hp"]]
    assert continued, "a second Hyperband round should continue a first-round trial"
    for f in continued:
        parent = f["hp"]["tuner/trial_id"]
        assert os.path.isfile(tuner.get_trial_dir(parent) + "/fold1.weights.h5")
        assert f["initial_epoch"] == f["hp"]["tuner/initial_epoch"] > 0
        assert f["epochs"] == f["hp"]["tuner/epochs"]


def test_unknown_tuner_and_bad_trials():
    from cli.errors import UserError

    with pytest.raises(UserError, match="unknown tuner 'grid'"):
        make_tuner("grid", None, "val_mse", 1, "d", "p")
    with pytest.raises(UserError, match="max trials must be >= 1"):
        make_tuner("random", None, "val_mse", 0, "d", "p")
