"""The classify task: frozen / unfrozen encoder, class-balanced subsets, CLI."""

import json
import os

import keras
import numpy as np
import pytest

from conftest import run_main
from test_cli import assert_one_line_error

from models.cae import CAEConfig, build_cae, build_encoder
from models.classifier import (build_augmentation, build_baseline, build_classifier,
                               build_head, compile_classifier, encoder_from_model, feature_model,
                               trainable_parameters, unfreeze_encoder)
from tasks.label_subsets import class_balanced_subset, fraction_list

TINY = CAEConfig(conv_filters=(4, 8, 8), dense_units=16, latent_dim=3)


def weights_of(model):
    return [np.array(w) for w in model.get_weights()]


def changed(before, after):
    return [not np.allclose(a, b) for a, b in zip(before, after)]


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


class TestCommandLine:
    @pytest.mark.parametrize("value", ["0", "1.5"])
    def test_label_fraction_outside_range(self, value):
        result = run_main("classify", "--label-fractions", f"0.1,{value}")
        assert_one_line_error(result, "--label-fractions", "outside (0, 1]")

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
            "--baseline-epochs", "1",
            "--label-fractions", "0.5,1", "--min-steps", "1", "--verbose", "0",
            "--out", str(out))
        assert result.returncode == 0, result.stderr[-2000:]
        for name in ("classifier_frozen.keras", "classifier_fine_tuned.keras",
                     "baseline.keras", "confusion_frozen.png", "confusion_fine_tuned.png",
                     "confusion_baseline.png", "learning_curves.png", "label_efficiency.png",
                     "label_efficiency.md", "per_class_accuracy.md"):
            assert (out / name).is_file(), name
        assert os.listdir(out / "tuner")
        metrics = json.loads((out / "metrics.json").read_text())
        models = metrics["models"]
        for key in ("frozen", "fine_tuned", "baseline"):
            for field in ("test_accuracy", "epochs", "wall_time_s", "trainable_parameters"):
                assert field in models[key]
            assert len(models[key]["per_class_accuracy"]) == 10
        assert models["frozen"]["trainable_parameters"] < models["fine_tuned"][
            "trainable_parameters"]
        assert [r["fraction"] for r in metrics["label_efficiency"]] == [0.5, 1.0]
        assert 0 < metrics["label_efficiency"][0]["labels"] < 120
        frozen = keras.saving.load_model(str(out / "classifier_frozen.keras"))
        assert not frozen.get_layer("features").trainable
