"""The semi-supervised classifier: which term trains what, its feed, its saved
inference model, and its options."""

import os
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


@pytest.mark.slow
class TestTraining:
    def test_trains_on_digits_and_saves_a_plain_keras_classifier(self, tmp_path):
        from data.datasets import load_dataset
        from data.label_subsets import class_balanced_subset
        from models.saving import save_model

        data = load_dataset("digits", val_size=100, seed=0)
        idx = class_balanced_subset(data.y_train, 20 / len(data.y_train), seed=0)
        settings = Settings(features="conv2", hidden_units=16, patience=10, seed=0)
        semi = SemiSupervisedSettings(semi_supervised_epochs=2, labelled_batch_size=10,
                                      unlabelled_ratio=4, semi_supervised_start="scratch",
                                      consistency="none")  # the terms: TestTerms
        record = train_semi_supervised(build_encoder(TINY), data.x_train[idx],
                                       data.y_train[idx], data.x_train[:400], data.x_val,
                                       data.y_val, data.x_test, data.y_test, settings, semi)
        assert record["epochs"] == 2 and len(record["val_accuracy"]) == 2
        assert record["labelled_images"] == 20 and record["unlabelled_images"] == 400
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

    def test_keeps_the_last_epochs_weights_not_the_best_validation_epochs(self, monkeypatch):
        import training.semi_supervised as semi_module
        from data.datasets import load_dataset
        from data.label_subsets import class_balanced_subset

        heads = []

        class RecordingClock(semi_module.EpochClock):
            def on_epoch_end(self, epoch, logs=None):
                super().on_epoch_end(epoch, logs)
                heads.append([np.array(w) for w in self.model.head.weights])

        monkeypatch.setattr(semi_module, "EpochClock", RecordingClock)
        data = load_dataset("digits", val_size=100, seed=0)
        idx = class_balanced_subset(data.y_train, 20 / len(data.y_train), seed=0)
        # Ten blank validation images, one of each class: any model gives them one
        # class, so every epoch scores 0.1 and the first is the best by validation.
        x_val, y_val = np.zeros((10, 28, 28, 1), "float32"), np.arange(10)
        settings = Settings(features="conv2", hidden_units=16, patience=10, seed=0)
        semi = SemiSupervisedSettings(semi_supervised_epochs=2, labelled_batch_size=10,
                                      unlabelled_ratio=4, semi_supervised_start="scratch",
                                      consistency="none")
        record = train_semi_supervised(build_encoder(TINY), data.x_train[idx],
                                       data.y_train[idx], data.x_train[:400], x_val, y_val,
                                       data.x_test[:50], data.y_test[:50], settings, semi)
        np.testing.assert_allclose(record["val_accuracy"], [0.1, 0.1])
        final = [np.array(w) for w in record["model"].get_layer("head").weights]
        assert len(heads) == 2 and not same(heads[0], heads[1])
        assert same(final, heads[1])


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
    ])
    def test_bad_settings_are_refused(self, field, value, message):
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            SemiSupervisedSettings(**{field: value})

    def test_model_refuses_an_unknown_consistency(self):
        with pytest.raises(ValueError, match="consistency must be one of"):
            build_semi_supervised(build_encoder(TINY), "code", consistency="mixup")

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
    (["--unlabelled-ratio", "0"], "--unlabelled-ratio"),
    (["--unlabelled-ratio", "65"], "--unlabelled-ratio: 65 is more than 64"),
    (["--strong-view", "randaugment"], "--strong-view: invalid choice: 'randaugment'"),
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
