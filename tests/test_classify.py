"""The classify task: frozen / unfrozen encoder, class-balanced subsets, CLI."""

import json
import os

import keras
import numpy as np
import pytest

from conftest import run_main
from test_cli import assert_one_line_error

from models.cae import CAEConfig, build_cae, build_encoder
from models.classifier import (SmoothedSparseCrossentropy, build_augmentation, build_baseline,
                               build_classifier, build_head, compile_classifier,
                               encoder_from_model, feature_model, trainable_parameters,
                               unfreeze_encoder)
from data.label_subsets import class_balanced_subset, fraction_list
from training.classifier import scaled_epochs, train_baseline, train_pretrained
from training.classifier_config import Settings

TINY = CAEConfig(conv_filters=(4, 8, 8), dense_units=16, latent_dim=3)


def weights_of(model):
    return [np.array(w) for w in model.get_weights()]


def changed(before, after):
    return [not np.allclose(a, b) for a, b in zip(before, after)]


def head_inputs(images):
    """Images as 16 numbers each: inputs for a bare head, to test training plumbing."""
    return images.reshape(len(images), -1)[:, :16]


def tiny_classifier(features="dense1"):
    encoder = build_encoder(TINY)
    extractor = feature_model(encoder, features)
    head = build_head(extractor.output.shape[1:], hidden_units=8, dropout=0.2)
    return encoder, build_classifier(extractor, head, frozen=True)


class TestFreezing:
    def test_frozen_encoder_keeps_weights_and_unfrozen_changes(self, tiny_dataset):
        x, y = tiny_dataset.x_train, tiny_dataset.y_train
        encoder, model = tiny_classifier()
        head = model.get_layer("head")
        enc0, head0 = weights_of(encoder), weights_of(head)
        compile_classifier(model, learning_rate=1e-2, weight_decay=1e-2)
        model.fit(x, y, epochs=2, batch_size=8, verbose=0)
        # Frozen: even AdamW's weight decay must leave the encoder alone.
        assert not any(changed(enc0, weights_of(encoder)))
        assert all(changed(head0, weights_of(head)))
        assert trainable_parameters(model) == trainable_parameters(head)

        unfreeze_encoder(model)
        compile_classifier(model, learning_rate=1e-2)
        before = {l.name: weights_of(l) for l in encoder.layers if l.weights}
        model.fit(x, y, epochs=2, batch_size=8, verbose=0)
        # Every layer up to dense1 (the layer the head reads) moves; the code
        # layer lies beyond the features and stays.
        for name, weights in before.items():
            moved = any(changed(weights, weights_of(encoder.get_layer(name))))
            assert moved == (name != "code"), name

    def test_unfreeze_last_k_layers_only(self, tiny_dataset):
        encoder, model = tiny_classifier(features="conv3")
        names = unfreeze_encoder(model, last_k=1)
        assert names == ["conv3"]
        compile_classifier(model, learning_rate=1e-2)
        conv1 = np.array(encoder.get_layer("conv1").kernel)
        conv3 = np.array(encoder.get_layer("conv3").kernel)
        model.fit(tiny_dataset.x_train, tiny_dataset.y_train, epochs=1, batch_size=8,
                  verbose=0)
        np.testing.assert_array_equal(conv1, np.array(encoder.get_layer("conv1").kernel))
        assert not np.allclose(conv3, np.array(encoder.get_layer("conv3").kernel))

    def test_baseline_has_encoder_architecture_with_fresh_weights(self):
        encoder = build_encoder(TINY)
        baseline = build_baseline(encoder, "conv3", hidden_units=8, dropout=0.2)
        fresh = baseline.get_layer("features").get_layer("conv1").kernel
        assert tuple(fresh.shape) == tuple(encoder.get_layer("conv1").kernel.shape)
        assert not np.allclose(np.array(fresh), np.array(encoder.get_layer("conv1").kernel))
        assert trainable_parameters(baseline) == baseline.count_params()


class TestAugmentation:
    def test_active_in_training_only(self, tiny_dataset):
        x = tiny_dataset.x_train[:16]
        encoder = build_encoder(TINY)
        extractor = feature_model(encoder, "conv2")
        head = build_head(extractor.output.shape[1:], hidden_units=8, dropout=0.2)
        plain = build_classifier(extractor, head, frozen=False)
        augmented = build_classifier(extractor, head, frozen=False,
                                     augmentation=build_augmentation(seed=1))
        # Inference (what predict and evaluate do; called eagerly, no compiling):
        # the augmentation passes images through, so predictions are repeatable
        # and equal to those of the same layers without it.
        first = keras.ops.convert_to_numpy(augmented(x, training=False))
        np.testing.assert_array_equal(
            first, keras.ops.convert_to_numpy(augmented(x, training=False)))
        np.testing.assert_allclose(
            first, keras.ops.convert_to_numpy(plain(x, training=False)), atol=1e-6)
        # Training: each call flips / shifts differently.
        aug = augmented.get_layer("augmentation")
        a, b = np.array(aug(x, training=True)), np.array(aug(x, training=True))
        assert not np.allclose(a, x) and not np.allclose(a, b)
        np.testing.assert_array_equal(np.array(aug(x, training=False)), x)

    def test_baseline_carries_it(self):
        baseline = build_baseline(build_encoder(TINY), "conv2", hidden_units=8,
                                  augmentation=build_augmentation(seed=0))
        assert [l.name for l in baseline.get_layer("augmentation").layers] == ["flip", "shift"]
        assert "augmentation" not in [l.name for l in build_baseline(build_encoder(TINY)).layers]


    def test_erasing_zeroes_a_rectangle_in_training_only(self):
        x = np.full((32, 28, 28, 1), 0.5, "float32")
        aug = build_augmentation(flip=False, shift=0.0, erasing=1.0, seed=3)
        assert [l.name for l in aug.layers] == ["erasing"]
        erased = np.array(aug(x, training=True))
        zeroed = (erased == 0.0).reshape(32, -1).sum(axis=1)
        # every image loses a rectangle of 2-33% of its pixels, the rest untouched
        assert np.all(zeroed >= 1) and np.all(zeroed <= 0.34 * 784)
        np.testing.assert_array_equal(erased[erased != 0.0], 0.5)
        np.testing.assert_array_equal(np.array(aug(x, training=False)), x)

    @pytest.mark.parametrize("kwargs, message", [({"erasing": 1.5}, "erasing=1.5"),
                                                 ({"shift": 1.0}, "shift=1.0")])
    def test_bad_arguments(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            build_augmentation(**kwargs)


class TestRegularisation:
    def test_feature_dropout_drops_channels_of_maps_and_units_of_vectors(self):
        maps = build_head((7, 7, 4), hidden_units=8, feature_dropout=0.5)
        vectors = build_head((16,), hidden_units=8, feature_dropout=0.5)
        assert isinstance(maps.get_layer("feature_dropout"), keras.layers.SpatialDropout2D)
        assert type(vectors.get_layer("feature_dropout")) is keras.layers.Dropout
        assert "feature_dropout" not in [l.name for l in build_head((16,)).layers]
        x = np.ones((64, 7, 7, 4), "float32")
        dropped = np.array(maps.get_layer("feature_dropout")(x, training=True))
        # whole channels: each (image, channel) map is all zero or all kept
        per_channel = dropped.reshape(64, 49, 4)
        assert np.all((per_channel == 0).all(axis=1) | (per_channel != 0).all(axis=1))
        assert 0 < (per_channel == 0).all(axis=1).mean() < 1
        with pytest.raises(ValueError, match="feature_dropout=1.0"):
            build_head((16,), feature_dropout=1.0)

    def test_smoothed_crossentropy(self):
        y = np.array([0, 2, 1])
        p = keras.ops.convert_to_tensor(
            np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.25, 0.5, 0.25]], "float32"))
        plain = keras.losses.SparseCategoricalCrossentropy()(y, p)
        none = SmoothedSparseCrossentropy(0.0, num_classes=3)(y, p)
        smooth = SmoothedSparseCrossentropy(0.2, num_classes=3)(y, p)
        # smoothing 0.2 over 3 classes: target 1 - 0.2 + 0.2/3 on the label, 0.2/3 elsewhere
        targets = np.full((3, 3), 0.2 / 3)
        targets[np.arange(3), y] += 0.8
        expected = -np.mean(np.sum(targets * np.log(np.array(p)), axis=1))
        np.testing.assert_allclose(float(none), float(plain), rtol=1e-5)
        np.testing.assert_allclose(float(smooth), expected, rtol=1e-5)
        with pytest.raises(ValueError, match="label_smoothing=1.0"):
            SmoothedSparseCrossentropy(1.0)

    def test_compiled_model_with_smoothing_saves_and_loads(self, tmp_path, tiny_dataset):
        _, model = tiny_classifier()
        compile_classifier(model, label_smoothing=0.1, ema_momentum=0.99)
        model.fit(tiny_dataset.x_train, tiny_dataset.y_train, epochs=1, batch_size=16,
                  verbose=0)
        path = str(tmp_path / "m.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        assert loaded.loss.label_smoothing == pytest.approx(0.1)
        assert loaded.optimizer.use_ema and loaded.optimizer.ema_momentum == pytest.approx(0.99)
        x = tiny_dataset.x_train[:8]
        np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                                   atol=1e-6)

    def test_end_to_end_models_get_their_own_head_dropout(self, tiny_dataset):
        d = tiny_dataset
        settings = Settings(features="dense1", hidden_units=8, dropout=0.1,
                            end_to_end_dropout=0.4, epochs=1, fine_tune_epochs=1,
                            baseline_epochs=1, batch_size=16, augment=False)
        frozen_heads = []
        res = train_pretrained(build_encoder(TINY), d.x_train, d.y_train, d.x_val, d.y_val,
                               d.x_test, d.y_test, settings,
                               on_frozen=lambda m: frozen_heads.append(
                                   (m.get_layer("head").get_layer("dropout").rate,
                                    weights_of(m.get_layer("head")))))
        tuned_head = res["fine_tuned"]["model"].get_layer("head")
        assert frozen_heads[0][0] == pytest.approx(0.1)
        assert tuned_head.get_layer("dropout").rate == pytest.approx(0.4)
        # fine-tuning started from the frozen head's weights and moved them
        assert len(frozen_heads[0][1]) == len(tuned_head.get_weights())
        assert all(changed(frozen_heads[0][1], weights_of(tuned_head)))
        baseline = train_baseline(build_encoder(TINY), d.x_train, d.y_train, d.x_val,
                                  d.y_val, d.x_test, d.y_test, settings)["model"]
        assert baseline.get_layer("head").get_layer("dropout").rate == pytest.approx(0.4)


class TestWeightAveraging:
    class RawWeights(keras.callbacks.Callback):
        """The weights after every training step, before any swap."""

        def __init__(self):
            super().__init__()
            self.steps = []

        def on_train_batch_end(self, batch, logs=None):
            self.steps.append(weights_of(self.model))

    def test_fit_keeps_the_average_not_the_last_weights(self, tiny_dataset):
        from training.classifier import _fit

        d = tiny_dataset
        x = head_inputs(d.x_train[:32])
        head = build_head((16,), hidden_units=8, dropout=0.0)
        compile_classifier(head, learning_rate=0.05, ema_momentum=0.5)
        raw = self.RawWeights()
        _fit(head, x, d.y_train[:32], x, d.y_train[:32], 1,
             Settings(batch_size=16, patience=5), extra_callbacks=[raw])
        # One epoch of two steps: Keras's average starts at the first step's
        # weights, then 0.5 * w1 + 0.5 * w2; the last weights are w2.
        assert len(raw.steps) == 2
        w1, w2 = raw.steps
        kept = weights_of(head)
        for a, b, k in zip(w1, w2, kept):
            np.testing.assert_allclose(k, 0.5 * a + 0.5 * b, rtol=1e-5, atol=1e-6)
        assert any(changed(w2, kept))

    def test_restored_weights_are_the_validated_ones(self, tiny_dataset):
        from training.classifier import _fit

        d = tiny_dataset
        head = build_head((16,), hidden_units=8, dropout=0.0)
        compile_classifier(head, learning_rate=0.05, ema_momentum=0.9)
        x, x_val = head_inputs(d.x_train), head_inputs(d.x_val)
        record = _fit(head, x, d.y_train, x_val, d.y_val, 4, Settings(batch_size=16,
                                                                      patience=10))
        best = int(np.argmax(record["val_accuracy"]))  # EarlyStopping keeps the first best
        loss = head.evaluate(x_val, d.y_val, batch_size=16, verbose=0, return_dict=True)["loss"]
        assert loss == pytest.approx(record["val_loss"][best], rel=1e-4)

    def test_momentum_spans_the_same_epochs_on_any_subset(self):
        settings = Settings(batch_size=128, ema_epochs=2.5)
        assert settings.ema_momentum(48000) == pytest.approx(1 - 1 / (2.5 * 375))
        assert settings.ema_momentum(480) == pytest.approx(0.9)  # 4 steps an epoch
        assert Settings(ema_epochs=0).ema_momentum(48000) == 0.0
        assert Settings(ema_epochs=0.1, batch_size=128).ema_momentum(128) == 0.0

    def test_no_average_at_zero_and_bad_momentum(self):
        model = build_head((16,), hidden_units=8)
        assert not compile_classifier(model, ema_momentum=0.0).optimizer.use_ema
        assert compile_classifier(model, ema_momentum=0.99).optimizer.ema_momentum == 0.99
        with pytest.raises(ValueError, match="ema_momentum=1.0"):
            compile_classifier(model, ema_momentum=1.0)


class TestSchedule:
    def test_cosine_decays_to_zero_over_the_phase(self, tiny_dataset):
        from training.classifier import _compile, _fit

        d = tiny_dataset
        x, x_val = head_inputs(d.x_train), head_inputs(d.x_val)
        settings = Settings(batch_size=16, lr_schedule="cosine", patience=10)
        head = _compile(build_head((16,), hidden_units=8), 0.01, settings, len(x), 2)
        assert float(head.optimizer.learning_rate) == pytest.approx(0.01)
        _fit(head, x, d.y_train, x_val, d.y_val, 1, settings)
        assert 0 < float(head.optimizer.learning_rate) < 0.01  # halfway down
        _fit(head, x, d.y_train, x_val, d.y_val, 1, settings)
        assert float(head.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)

    def test_plateau_keeps_a_constant_rate_and_unknown_schedules_fail(self):
        from training.classifier import _compile

        settings = Settings(batch_size=16, lr_schedule="plateau")
        head = _compile(build_head((16,), hidden_units=8), 0.01, settings, 64, 2)
        assert not isinstance(head.optimizer._learning_rate,
                              keras.optimizers.schedules.LearningRateSchedule)
        with pytest.raises(ValueError, match="lr_schedule='step'"):
            Settings(lr_schedule="step")


class TestEvaluation:
    def test_flip_averaged_accuracy_uses_the_mirror_images(self):
        from training.classifier import evaluate

        # A "model" that sees only the left half: class 1 if it is bright.
        inputs = keras.Input((28, 28, 1))
        left = keras.layers.Cropping2D(((0, 0), (0, 14)))(inputs)
        bright = keras.layers.GlobalAveragePooling2D()(left)
        probs = keras.layers.Concatenate()([1.0 - bright, bright])
        model = keras.Model(inputs, probs)
        x = np.zeros((4, 28, 28, 1), "float32")
        x[:2, :, :14], x[:2, :, 14:] = 1.0, 0.4  # brighter on the left: class 1
        x[2:, :, :14], x[2:, :, 14:] = 0.4, 1.0  # brighter on the right: class 1 too
        y = np.array([1, 1, 1, 1])
        assert "test_accuracy_flip_averaged" not in evaluate(model, x, y, num_classes=2)
        result = evaluate(model, x, y, num_classes=2, flip_average=True)
        assert result["test_accuracy"] == 0.5  # the right-bright pair is missed
        # averaged, every image votes (0, 1) + (0.6, 0.4) in one order or the other
        assert result["test_accuracy_flip_averaged"] == 1.0
        np.testing.assert_array_equal(result["predictions"], [1, 1, 0, 0])


class TestEncoderFiles:
    def test_cae_gives_its_encoder_and_encoder_itself(self):
        cae = build_cae(TINY)
        assert encoder_from_model(cae) is cae.get_layer("encoder")
        encoder = build_encoder(TINY)
        assert encoder_from_model(encoder) is encoder

    def test_decoder_is_rejected(self):
        with pytest.raises(ValueError, match="not a CAE or an encoder"):
            encoder_from_model(build_cae(TINY).get_layer("decoder"))

    def test_missing_feature_layer_is_rejected(self):
        inputs = keras.Input((28, 28, 1))
        bare = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))
        with pytest.raises(ValueError, match="no layer 'dense1'"):
            feature_model(encoder_from_model(bare), "dense1")


class TestLabelSubsets:
    def test_each_class_holds_the_fraction(self):
        labels = np.repeat(np.arange(10), [100 + 10 * c for c in range(10)])
        np.random.default_rng(1).shuffle(labels)
        for frac in (0.01, 0.1, 0.5, 1.0):
            idx = class_balanced_subset(labels, frac, seed=3)
            assert len(set(idx.tolist())) == len(idx)  # no repeats
            for c in range(10):
                total = int(np.sum(labels == c))
                assert np.sum(labels[idx] == c) == max(1, round(frac * total))

    def test_seeded(self):
        labels = np.arange(1000) % 10
        a, b = class_balanced_subset(labels, 0.1, 0), class_balanced_subset(labels, 0.1, 0)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, class_balanced_subset(labels, 0.1, 1))

    @pytest.mark.parametrize("text", ["0", "1.5", "-0.1", "nan", "abc", ","])
    def test_bad_fractions(self, text):
        import argparse
        with pytest.raises(argparse.ArgumentTypeError):
            fraction_list(text)

    def test_good_fractions(self):
        assert fraction_list("1,0.01,0.1") == [0.01, 0.1, 1.0]

    @pytest.mark.backend_independent
    def test_small_subsets_get_more_epochs_up_to_the_cap_and_never_fewer(self):
        # 480 images of batch 128: 4 steps an epoch, so 300 steps need 75 epochs.
        assert scaled_epochs(60, 20, 480, 128, min_steps=300, cap=100) == (75, 25)
        assert scaled_epochs(60, 20, 120, 128, min_steps=300, cap=100) == (100, 33)
        # A phase set beyond the cap keeps its own budget on a subset.
        assert scaled_epochs(120, 20, 4800, 128, min_steps=300, cap=100) == (120, 20)
        assert scaled_epochs(60, 20, 48000, 128, min_steps=300, cap=100) == (60, 20)


class TestCommandLine:
    @pytest.mark.parametrize("value", ["0", "1.5"])
    def test_label_fraction_outside_range(self, value):
        result = run_main("classify", "--label-fractions", f"0.1,{value}")
        assert_one_line_error(result, "--label-fractions", "outside (0, 1]")

    @pytest.mark.parametrize("option, value, message", [
        ("--erasing", "1.5", "outside [0, 1]"), ("--label-smoothing", "1", "outside [0, 1)"),
        ("--feature-dropout", "-0.1", "outside [0, 1)"), ("--shift", "x", "not a number"),
        ("--ema-epochs", "-1", "is negative"), ("--ema-epochs", "inf", "finite"),
        ("--lr-schedule", "step", "invalid choice")])
    def test_bad_regularisation(self, option, value, message):
        result = run_main("classify", option, value)
        assert_one_line_error(result, option, value, message)

    @pytest.mark.parametrize("option, value, message", [
        ("--label-counts", "100,x", "not a whole number"), ("--label-counts", "0", "outside [1,"),
        ("--label-seeds", "11", "give 1 to 10"), ("--unlabelled-ratio", "65", "at most 64"),
        ("--consistency", "mixup", "invalid choice"),
        ("--pseudo-label-threshold", "1.5", "outside [0, 1]"),
        ("--weak-shift", "1", "outside [0, 1)")])
    def test_bad_study_and_semi_supervised_options(self, option, value, message):
        result = run_main("classify", option, value)
        assert_one_line_error(result, message)

    def test_fewer_labels_than_classes(self, tmp_path):
        result = run_main("classify", "--dataset", "digits", "--label-counts", "100,5",
                          "--out", str(tmp_path / "run"))
        assert_one_line_error(result, "--label-counts 5", "fewer labels than the 10 classes")

    @pytest.mark.slow
    def test_wrong_encoder_file(self, tmp_path):
        path = str(tmp_path / "decoder.keras")
        build_cae(TINY).get_layer("decoder").save(path)
        result = run_main("classify", "--dataset", "digits", "--encoder", path,
                          "--out", str(tmp_path / "run"))
        assert_one_line_error(result, "--encoder", "not a CAE or an encoder", "(28, 28, 1)")

    @pytest.mark.slow
    def test_end_to_end_tiny(self, tmp_path):
        cae_path = str(tmp_path / "cae.keras")
        build_cae(TINY).save(cae_path)
        out = tmp_path / "run"
        result = run_main(
            "classify", "--dataset", "digits", "--train-size", "120", "--test-size", "60",
            "--encoder", cae_path, "--features", "dense1", "--max-trials", "1",
            "--tuning-epochs", "1", "--epochs", "1", "--fine-tune-epochs", "1",
            "--baseline-epochs", "1", "--semi-supervised-epochs", "1",
            "--label-fractions", "1", "--label-counts", "10", "--label-seeds", "2",
            "--min-steps", "1", "--verbose", "0", "--out", str(out))
        assert result.returncode == 0, result.stderr[-2000:]
        for name in ("classifier_frozen.keras", "classifier_fine_tuned.keras",
                     "baseline.keras", "classifier_semi_supervised.keras",
                     "confusion_frozen.png", "confusion_fine_tuned.png",
                     "confusion_baseline.png", "confusion_semi_supervised.png",
                     "learning_curves.png", "label_efficiency.png",
                     "label_efficiency.md", "per_class_accuracy.md"):
            assert (out / name).is_file(), name
        assert os.listdir(out / "tuner")
        metrics = json.loads((out / "metrics.json").read_text())
        models = metrics["models"]
        for key in ("frozen", "fine_tuned", "baseline", "semi_supervised"):
            for field in ("test_accuracy", "epochs", "wall_time_s", "trainable_parameters"):
                assert field in models[key]
            assert len(models[key]["per_class_accuracy"]) == 10
        assert models["frozen"]["trainable_parameters"] < models["fine_tuned"][
            "trainable_parameters"]
        rows = metrics["label_efficiency"]
        assert [(r["labels"], r["seeds"]) for r in rows] == [(10, 2), (120, 1)]
        assert rows[0]["fraction"] == pytest.approx(10 / 120)
        # Two subsets: the mean and deviation of their accuracies; all labels: one run.
        runs = rows[0]["semi_supervised_runs"]
        assert len(runs) == 2 and rows[0]["semi_supervised"] == pytest.approx(np.mean(runs))
        assert rows[0]["baseline_std"] == pytest.approx(np.std(rows[0]["baseline_runs"], ddof=1))
        assert rows[1]["semi_supervised"] == models["semi_supervised"]["test_accuracy"]
        assert rows[1]["semi_supervised_std"] is None
        assert "± " in (out / "label_efficiency.md").read_text()
        semi = keras.saving.load_model(str(out / "classifier_semi_supervised.keras"))
        probs = semi.predict(np.zeros((2, 28, 28, 1), "float32"), verbose=0)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        frozen = keras.saving.load_model(str(out / "classifier_frozen.keras"))
        assert not frozen.get_layer("features").trainable
        tuned = keras.saving.load_model(str(out / "classifier_fine_tuned.keras"))
        assert tuned.get_layer("features").trainable
        assert tuned.get_layer("head").get_layer("dropout").rate == pytest.approx(0.5)
        assert [l.name for l in tuned.get_layer("augmentation").layers] == ["flip", "erasing"]


@pytest.mark.backend_independent
def test_label_counts_of_all_labels_or_more_are_left_out_with_a_note(capsys):
    from tasks.classify.study import check_label_counts

    labels = np.arange(50) % 10
    assert check_label_counts([10, 49, 50, 80], labels) == [10, 49]
    printed = capsys.readouterr().out
    assert "--label-counts 50" in printed and "--label-counts 80" in printed
    assert "--label-counts 10:" not in printed
