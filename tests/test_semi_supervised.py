"""The semi-supervised classifier: which term trains what, its feed, its saved
inference model, and its options."""

import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from models.cae import CAEConfig, build_encoder
from models.semi_supervised import build_semi_supervised
from training.classifier_config import Settings
from training.semi_supervised import LabelledUnlabelledFeed, check_labels, train_semi_supervised
from training.semi_supervised_config import SemiSupervisedSettings

TINY = CAEConfig(conv_filters=(4, 8, 8), dense_units=16, latent_dim=3)


def tiny_model(strong_view="shift", **loss_options):
    keras.utils.set_random_seed(0)
    model = build_semi_supervised(build_encoder(TINY), "conv2", hidden_units=8, dropout=0.0,
                                  feature_dropout=0.0, strong_view=strong_view, seed=0,
                                  **loss_options)
    # No weight decay: a variable no term reaches then keeps its value exactly.
    model.compile(optimizer=keras.optimizers.AdamW(1e-2, weight_decay=0.0))
    model.optimizer.build(model.trainable_variables)  # its variables join the snapshot
    return model


def snapshot(model):
    """Every model and optimizer variable (weights, augmentation and dropout
    random states, Adam's moments and step count)."""
    return [np.array(v) for v in [*model.variables, *model.optimizer.variables]]


def restore(model, values):
    for variable, value in zip([*model.variables, *model.optimizer.variables], values):
        variable.assign(value)
    keras.utils.set_random_seed(1)  # torch's own generator, where Keras draws from it


def step_from(model, start, batch):
    """The sub-models' weights after one training step on ``batch`` from ``start``."""
    restore(model, start)
    (labelled, unlabelled), labels = batch
    model.train_on_batch((labelled, unlabelled), labels)
    return {name: [np.array(w) for w in getattr(model, name).weights]
            for name in ("encoder", "decoder", "head")}


def same(a, b):
    return all(np.allclose(x, y, rtol=0, atol=1e-7) for x, y in zip(a, b))


@pytest.fixture
def batches(tiny_images):
    """One labelled batch and two unlabelled ones of the same size."""
    labels = np.arange(8) % 4
    return tiny_images[:8], labels, tiny_images[8:24], tiny_images[24:40]


class TestTerms:
    def test_unlabelled_images_train_encoder_decoder_and_head_through_their_terms(self, batches):
        labelled, labels, unlabelled, other = batches
        model = tiny_model(reconstruction_weight=1.0, consistency="pseudo_label",
                           threshold=0.0)  # every prediction a pseudo-label
        start = snapshot(model)
        a = step_from(model, start, ((labelled, unlabelled), labels))
        b = step_from(model, start, ((labelled, other), labels))
        for name in ("encoder", "decoder", "head"):
            assert not same(a[name], b[name]), name

    def test_without_them_only_the_labelled_term_trains(self, batches):
        labelled, labels, unlabelled, other = batches
        model = tiny_model(reconstruction_weight=0.0, consistency="none")
        start = snapshot(model)
        initial = {name: [np.array(w) for w in getattr(model, name).weights]
                   for name in ("encoder", "decoder", "head")}
        a = step_from(model, start, ((labelled, unlabelled), labels))
        b = step_from(model, start, ((labelled, other), labels))
        c = step_from(model, start, ((labelled, unlabelled), (labels + 1) % 4))
        for name in ("encoder", "decoder", "head"):
            assert same(a[name], b[name]), f"{name}: unlabelled images reached it"
        assert same(a["decoder"], initial["decoder"])  # no reconstruction, no gradient
        for name in ("encoder", "head"):
            assert not same(a[name], initial[name]), f"{name}: not trained"
            assert not same(a[name], c[name]), f"{name}: the labels do not matter"

    def test_distribution_alignment_divides_out_the_batchs_favourite_class(self):
        """Both weak predictions lean to class 0: aligned, the confident one falls
        below the threshold and the undecided one becomes class 1."""
        weak = keras.ops.convert_to_tensor(np.array([[0.96, 0.04], [0.5, 0.5]], "float32"))
        strong = keras.ops.convert_to_tensor(np.array([[0.1, 0.9], [0.9, 0.1]], "float32"))
        plain = tiny_model(threshold=0.95)
        aligned = tiny_model(threshold=0.95, distribution_alignment=True)
        _, mask = plain._consistency(weak, strong)
        assert np.asarray(mask).tolist() == [1.0, 0.0]
        _, mask = aligned._consistency(weak, strong)
        assert np.asarray(mask).tolist() == [0.0, 0.0]  # 0.96 -> 0.90, 0.5 -> 0.27
        loose = tiny_model(threshold=0.7, distribution_alignment=True)
        loss, mask = loose._consistency(weak, strong)
        # Image 0 keeps class 0 (0.90), image 1 turns to class 1 (0.73): the strong
        # views' probabilities of those classes are 0.1 each.
        assert np.asarray(mask).tolist() == [1.0, 1.0]
        assert np.isclose(float(loss), -np.log(0.1), rtol=1e-5)
        assert aligned.get_config()["distribution_alignment"] is True

    def test_the_affine_strong_view_trains_every_sub_model(self, batches):
        """Rotations and shears inside the compiled training step of this backend."""
        labelled, labels, unlabelled, other = batches
        model = tiny_model(threshold=0.0, strong_view="affine")
        assert [layer.name for layer in model.strong.layers] == [
            "flip", "rotation", "shear", "shift", "contrast", "brightness", "sharpness",
            "erasing"]
        start = snapshot(model)
        a = step_from(model, start, ((labelled, unlabelled), labels))
        b = step_from(model, start, ((labelled, other), labels))
        for name in ("encoder", "decoder", "head"):
            assert not same(a[name], b[name]), name
            assert all(np.isfinite(w).all() for w in a[name]), name

    def test_mean_squared_consistency_reaches_the_encoder(self, batches):
        labelled, labels, unlabelled, other = batches
        model = tiny_model(reconstruction_weight=0.0, consistency="mean_squared",
                           consistency_weight=10.0)
        start = snapshot(model)
        a = step_from(model, start, ((labelled, unlabelled), labels))
        b = step_from(model, start, ((labelled, other), labels))
        assert not same(a["encoder"], b["encoder"])
        assert same(a["decoder"], b["decoder"])


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's digits with 20 labelled training images, 2 of a class."""
    from data.datasets import load_dataset
    from data.label_subsets import class_balanced_subset

    data = load_dataset("digits", val_size=100, seed=0)
    return data, class_balanced_subset(data.y_train, 20 / len(data.y_train), seed=0)


def train_on_digits(digits, x_val=None, y_val=None, test_images=None, **semi_options):
    """Two epochs of the tiny model on ``digits``'s 20 labels and 400 unlabelled
    images, without the consistency term (the terms: TestTerms)."""
    data, idx = digits
    settings = Settings(features="conv2", hidden_units=16, patience=10, seed=0)
    semi = SemiSupervisedSettings(**{
        "semi_supervised_epochs": 2, "labelled_batch_size": 10, "unlabelled_ratio": 4,
        "semi_supervised_start": "scratch", "consistency": "none", **semi_options})
    x_val = data.x_val if x_val is None else x_val
    y_val = data.y_val if y_val is None else y_val
    test = slice(test_images)
    return train_semi_supervised(build_encoder(TINY), data.x_train[idx], data.y_train[idx],
                                 data.x_train[:400], x_val, y_val, data.x_test[test],
                                 data.y_test[test], settings, semi)


@pytest.fixture
def epoch_ends(monkeypatch):
    """The training model's trainable weights (by variable path) at each epoch's end."""
    import training.semi_supervised as semi_module

    recorded = []

    class RecordingClock(semi_module.EpochClock):
        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            recorded.append({v.path: np.array(v) for v in self.model.trainable_variables})

    monkeypatch.setattr(semi_module, "EpochClock", RecordingClock)
    return recorded


def weights_of(model, values_by_path):
    return [values_by_path[w.path] for w in model.trainable_weights]


@pytest.mark.slow
class TestTraining:
    def test_trains_on_digits_and_saves_a_plain_keras_classifier(self, digits, tmp_path):
        from models.saving import save_model

        data, _ = digits
        record = train_on_digits(digits)
        assert record["epochs"] == 2 and len(record["val_accuracy"]) == 2
        assert record["labelled_images"] == 20 and record["unlabelled_images"] == 400
        assert record["last_step_test_accuracy"] is None  # no moving average
        # The record's test figures are those of the model it returns.
        predicted = record["model"].predict(data.x_test, verbose=0).argmax(axis=1)
        np.testing.assert_array_equal(record["predictions"], predicted)
        assert record["test_accuracy"] == pytest.approx(np.mean(predicted == data.y_test))
        save_model(record["model"], str(tmp_path / "semi_supervised.keras"))
        images = data.x_test[:5]
        expected = record["model"].predict(images, verbose=0)
        np.save(tmp_path / "images.npy", images)
        # Plain Keras in a fresh process, outside the repository: nothing of ours imported.
        code = ("import keras, numpy as np; m = keras.saving.load_model('semi_supervised.keras'); "
                "np.save('probs.npy', m.predict(np.load('images.npy'), verbose=0))")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True,
                       capture_output=True, timeout=300)
        probs = np.load(tmp_path / "probs.npy")
        assert probs.shape == (5, 10)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(probs, expected, atol=1e-5)

    def test_keeps_the_last_epochs_weights_not_the_best_validation_epochs(self, digits,
                                                                         epoch_ends):
        # Ten blank validation images, one of each class: any model gives them one
        # class, so every epoch scores 0.1 and the first is the best by validation.
        x_val, y_val = np.zeros((10, 28, 28, 1), "float32"), np.arange(10)
        record = train_on_digits(digits, x_val, y_val, test_images=50)
        np.testing.assert_allclose(record["val_accuracy"], [0.1, 0.1])
        final = record["model"].trainable_weights
        assert len(epoch_ends) == 2
        assert not same(weights_of(record["model"], epoch_ends[0]),
                        weights_of(record["model"], epoch_ends[1]))
        assert same([np.array(w) for w in final], weights_of(record["model"], epoch_ends[1]))

    def test_a_moving_average_is_validated_returned_and_scored_beside_the_last_step(
            self, digits, epoch_ends):
        data, _ = digits
        record = train_on_digits(digits, semi_supervised_ema_epochs=1.0)
        model = record["model"]
        last_step = weights_of(model, epoch_ends[-1])
        average = [np.array(w) for w in model.trainable_weights]
        assert not same(average, last_step)  # the average is returned, not the last step
        # Validation saw the average: the last epoch's figure is the returned model's.
        predicted = model.predict(data.x_val, verbose=0).argmax(axis=1)
        assert record["val_accuracy"][-1] == pytest.approx(np.mean(predicted == data.y_val))
        # The last step's weights are scored too.
        for weight, value in zip(model.trainable_weights, last_step):
            weight.assign(value)
        predicted = model.predict(data.x_test, verbose=0).argmax(axis=1)
        assert record["last_step_test_accuracy"] == pytest.approx(
            np.mean(predicted == data.y_test))


@pytest.mark.backend_independent
class TestFeedAndOptions:
    def test_each_step_has_labelled_and_unlabelled_batches_of_fixed_size(self):
        x = np.arange(7, dtype=np.float32)[:, None]
        unlabelled = np.arange(100, 150, dtype=np.float32)[:, None]
        feed = LabelledUnlabelledFeed(x, np.arange(7), unlabelled, 4, 16, seed=0)
        assert len(feed) == 3  # whole batches of 16 out of 50
        seen = []
        for i in range(len(feed)):
            (lab, unl), y = feed[i]
            assert lab.shape == (4, 1) and unl.shape == (16, 1)
            np.testing.assert_array_equal(lab[:, 0], y)  # labels travel with their images
            seen.extend(lab[:, 0])
        assert set(seen) == set(range(7))  # 12 draws from 7: every labelled image
        first = [feed[i][0][1] for i in range(3)]
        feed.set_epoch(1)
        assert not np.array_equal(first[0], feed[0][0][1])
        feed.set_epoch(0)
        assert np.array_equal(first[0], feed[0][0][1])  # an epoch's order is its own

    def test_fewer_labels_than_classes_is_refused(self):
        from cli.errors import UserError

        with pytest.raises(UserError, match="9 labelled images of 9 classes"):
            check_labels(np.arange(9))
        with pytest.raises(UserError, match="of 5 classes"):
            check_labels(np.arange(20) % 5)
        check_labels(np.arange(10))

    @pytest.mark.parametrize("field, value, message", [
        ("consistency", "mixup", "consistency must be one of"),
        ("unlabelled_ratio", 65, "at most 64"),
        ("pseudo_label_threshold", 1.5, "in [0, 1]"),
        ("reconstruction_weight", -1.0, ">= 0"),
        ("semi_supervised_start", "cae", "must be one of encoder, scratch"),
        ("strong_view", "randaugment", "strong_view must be one of shift, affine"),
        ("semi_supervised_ema_epochs", -1.0, "semi_supervised_ema_epochs must be >= 0"),
        ("weak_shift", 1.0, "weak_shift must be in [0, 1)"),
    ])
    def test_bad_settings_are_refused(self, field, value, message):
        with pytest.raises(ValueError, match=re.escape(message)):
            SemiSupervisedSettings(**{field: value})

    def test_model_refuses_an_unknown_consistency(self):
        with pytest.raises(ValueError, match="consistency must be one of"):
            build_semi_supervised(build_encoder(TINY), "code", consistency="mixup")

    def test_weak_view_shifts_only_with_a_shift(self, tiny_images):
        from models.semi_supervised import build_weak_augmentation

        same_image = np.repeat(tiny_images[:1], 8, axis=0)
        mirrored = same_image[:, :, ::-1]
        flips = build_weak_augmentation(shift=0.0, seed=3)
        assert [layer.name for layer in flips.layers] == ["flip"]
        out = keras.ops.convert_to_numpy(flips(same_image, training=True))
        assert all(np.array_equal(o, same_image[0]) or np.array_equal(o, mirrored[0])
                   for o in out)
        shifts = build_weak_augmentation(shift=0.0625, seed=3)
        out = keras.ops.convert_to_numpy(shifts(same_image, training=True))
        assert not all(np.array_equal(o, same_image[0]) or np.array_equal(o, mirrored[0])
                       for o in out)

    def test_strong_views_change_each_image_its_own_way_within_its_range(self, tiny_images):
        from models.semi_supervised import build_strong_augmentation

        same_image = np.repeat(tiny_images[:1], 8, axis=0)
        for view in ("shift", "affine"):
            strong = build_strong_augmentation(seed=3, view=view)
            out = np.asarray(keras.ops.convert_to_numpy(strong(same_image, training=True)))
            assert out.shape == same_image.shape and 0.0 <= out.min() and out.max() <= 1.0
            assert len({o.tobytes() for o in out}) == 8, view  # eight different copies
            np.testing.assert_array_equal(
                keras.ops.convert_to_numpy(strong(same_image, training=False)), same_image)
        with pytest.raises(ValueError, match="view must be one of shift, affine"):
            build_strong_augmentation(view="randaugment")


@pytest.mark.backend_independent
@pytest.mark.parametrize("argv, message", [
    (["--labels", "100,x"], "'x' is not a whole number"),
    (["--lr", "0"], "--lr"),
    (["--reconstruction-weight", "-1"], "--reconstruction-weight"),
    (["--labelled-batch-size", "0"], "--labelled-batch-size: 0 is not positive"),
    (["--unlabelled-ratio", "0"], "--unlabelled-ratio"),
    (["--unlabelled-ratio", "65"], "--unlabelled-ratio: 65 is more than 64"),
    (["--strong-view", "randaugment"], "--strong-view: invalid choice: 'randaugment'"),
    (["--ema-epochs", "-1"], "--ema-epochs"),
    (["--supervised-epochs", "0"], "--supervised-epochs: 0 is not positive"),
    (["--weak-shift", "1"], "--weak-shift: 1.0 is outside [0, 1)"),
])
def test_benchmark_refuses_bad_options_in_one_line(argv, message):
    from conftest import ROOT

    script = os.path.join(ROOT, "benchmarks", "semi_supervised_labels.py")
    result = subprocess.run([sys.executable, script, *argv], capture_output=True,
                            text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_tune_searches_the_weights_of_its_terms(tmp_path):
    import json

    from conftest import run_main

    out = tmp_path / "search"
    result = run_main("tune", "--model", "classifier", "--space", "semi_supervised",
                      "--dataset", "digits", "--train-size", "200", "--test-size", "60",
                      "--max-trials", "1", "--epochs", "1", "--final-epochs", "1",
                      "--cae-epochs", "1", "--verbose", "0", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    best = json.loads((out / "best_hyperparameters.json").read_text())["hyperparameters"]
    assert {"reconstruction_weight", "consistency", "consistency_weight",
            "pseudo_label_threshold", "distribution_alignment", "strong_view"} <= set(best)
    classifier = keras.saving.load_model(str(out / "best.keras"))
    probs = classifier.predict(np.zeros((2, 28, 28, 1), "float32"), verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.backend_independent
def test_the_semi_supervised_space_is_the_classifiers_only():
    from conftest import run_main
    from test_cli import assert_one_line_error

    assert_one_line_error(run_main("tune", "--model", "cae", "--space", "semi_supervised"),
                          "--space semi_supervised is only for --model classifier, not cae")
