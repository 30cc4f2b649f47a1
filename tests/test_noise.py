"""The noise module: statistics of every corruption, NumPy against keras.ops, the layers."""

import numpy as np
import pytest
import keras

from models.noise import (EVAL_NOISES, ImageNoise, NoiseMix, apply_noise, make_noise_layer,
                          noise_ops, parse_noise, parse_noise_list)

GREY = np.full((256, 28, 28, 1), 0.5, np.float32)
ONES = np.ones((32, 28, 28, 1), np.float32)


def layer_noise(x, name, seed=1):
    return keras.ops.convert_to_numpy(make_noise_layer([parse_noise(name)], seed=seed)(
        x, training=True))


def test_gaussian_has_the_asked_sigma_before_clipping():
    x = np.full((16, 28, 28, 1), 0.5, np.float32)
    for sigma in (0.1, 0.3, 0.5, 1.0, 2.0):
        spec = parse_noise(f"gaussian:{sigma}")
        # Unclipped: the same draw as noise_ops, before its final clip.
        raw = keras.ops.convert_to_numpy(
            spec.sigma * keras.random.normal((64, 28, 28, 1), seed=keras.random.SeedGenerator(0)))
        assert raw.std() == pytest.approx(sigma, rel=0.03)
        clipped = keras.ops.convert_to_numpy(noise_ops(x, spec, keras.random.SeedGenerator(0)))
        assert clipped.min() >= 0 and clipped.max() <= 1
    # Around 0.5, sigma 0.1 is (almost) never clipped: the output keeps sigma.
    assert (layer_noise(GREY, "gaussian:0.1") - GREY).std() == pytest.approx(0.1, rel=0.03)
    assert (apply_noise(GREY, "gaussian:0.1", seed=1) - GREY).std() == pytest.approx(0.1,
                                                                                    rel=0.03)


@pytest.mark.parametrize("source", ["numpy", "layer"])
def test_occlusion_zeroes_exactly_one_14x14_square(source):
    y = apply_noise(ONES, "occlusion", seed=3) if source == "numpy" else layer_noise(ONES,
                                                                                   "occlusion")
    for img in y[..., 0]:
        rows, cols = np.nonzero(img == 0)
        assert len(rows) == 196
        assert rows.max() - rows.min() == 13 and cols.max() - cols.min() == 13
    tops = {int(np.nonzero(img == 0)[0].min()) for img in y[..., 0]}
    assert len(tops) > 3  # the position varies


@pytest.mark.parametrize("source", ["numpy", "layer"])
def test_salt_pepper_sets_the_asked_fraction(source):
    y = apply_noise(GREY, "salt_pepper:0.2", seed=2) if source == "numpy" else layer_noise(
        GREY, "salt_pepper:0.2")
    assert (y == 1).mean() == pytest.approx(0.1, abs=0.005)
    assert (y == 0).mean() == pytest.approx(0.1, abs=0.005)
    assert (y == 0.5).mean() == pytest.approx(0.8, abs=0.01)


@pytest.mark.parametrize("source", ["numpy", "layer"])
def test_uniform_adds_u01_and_clips(source):
    zeros = np.zeros_like(GREY)
    y = apply_noise(zeros, "uniform", seed=2) if source == "numpy" else layer_noise(zeros,
                                                                                   "uniform")
    assert y.mean() == pytest.approx(0.5, abs=0.01)
    assert y.std() == pytest.approx(np.sqrt(1 / 12), rel=0.03)
    y = apply_noise(GREY, "uniform", seed=2) if source == "numpy" else layer_noise(GREY,
                                                                                  "uniform")
    assert y.max() <= 1.0 and (y == 1.0).mean() == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("name", EVAL_NOISES)
def test_numpy_and_layer_agree_statistically(name):
    a, b = apply_noise(GREY, name, seed=4), layer_noise(GREY, name, seed=4)
    assert a.shape == b.shape == GREY.shape
    assert 0 <= b.min() and b.max() <= 1 and 0 <= a.min() and a.max() <= 1
    assert a.mean() == pytest.approx(b.mean(), abs=0.01)
    assert a.std() == pytest.approx(b.std(), abs=0.01)


def test_numpy_noise_is_seeded():
    a, b = apply_noise(GREY[:4], "mixed", seed=7), apply_noise(GREY[:4], "mixed", seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, apply_noise(GREY[:4], "mixed", seed=8))


def test_layer_is_identity_unless_training_and_seeded():
    layer = ImageNoise("gaussian", sigma=0.5, seed=3)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(GREY[:2])), GREY[:2])
    a = keras.ops.convert_to_numpy(ImageNoise("gaussian", sigma=0.5, seed=3)(GREY[:2],
                                                                             training=True))
    b = keras.ops.convert_to_numpy(ImageNoise("gaussian", sigma=0.5, seed=3)(GREY[:2],
                                                                             training=True))
    np.testing.assert_allclose(a, b)
    c = keras.ops.convert_to_numpy(layer(GREY[:2], training=True))
    d = keras.ops.convert_to_numpy(layer(GREY[:2], training=True))
    assert not np.allclose(c, d)  # fresh noise every call


def test_mix_picks_one_noise_per_image():
    y = keras.ops.convert_to_numpy(NoiseMix(["none", "occlusion"], seed=0)(ONES, training=True))
    zeros = (y == 0).reshape(len(y), -1).sum(axis=1)
    assert set(zeros.tolist()) == {0, 196}


def test_layers_save_and_load(tmp_path):
    inputs = keras.Input((28, 28, 1))
    x = NoiseMix(["gaussian:0.5", "salt_pepper:0.2"], seed=5)(inputs)
    x = ImageNoise("occlusion", seed=6)(x)
    model = keras.Model(inputs, x)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.layers[1].get_config()["noises"] == ["gaussian:0.5", "salt_pepper:0.2"]
    assert loaded.layers[2].get_config()["kind"] == "occlusion"
    np.testing.assert_array_equal(loaded.predict(GREY[:2], verbose=0), GREY[:2])


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="pink"), "`kind`. Expected one of none, gaussian, salt_pepper, uniform, "
                        "occlusion, mixed. Received: kind='pink'"),
    (dict(sigma=0.0), "`sigma`. Expected a finite number > 0. Received: sigma=0.0"),
    (dict(sigma=-1), "Received: sigma=-1"),
    (dict(sigma=float("nan")), "Received: sigma=nan"),
    (dict(sigma="0.3"), "Received: sigma='0.3'"),
    (dict(amount=1.5), "`amount`. Expected a number between 0 and 1. Received: amount=1.5"),
    (dict(amount=-0.1), "Received: amount=-0.1"),
    (dict(patch=0), "`patch`. Expected an integer >= 1. Received: patch=0"),
    (dict(patch=2.5), "Received: patch=2.5"),
    (dict(seed="one"), "`seed`. Expected None or an integer. Received: seed='one'"),
    (dict(seed=1.5), "Received: seed=1.5"),
])
def test_image_noise_refuses_bad_arguments_when_made(kwargs, message):
    """Like keras.layers.GaussianNoise: a bad argument fails in __init__, not at call."""
    with pytest.raises(ValueError, match="^Invalid value received for argument") as caught:
        ImageNoise(**kwargs)
    assert message in str(caught.value)


def test_image_noise_accepts_its_edge_values():
    for kwargs in (dict(amount=0), dict(amount=1), dict(patch=1), dict(sigma=1e-6),
                   dict(kind="mixed", sigma=2, amount=0.5, patch=28, seed=3),
                   dict(patch=np.int64(4))):
        layer = ImageNoise(**kwargs)
        assert ImageNoise.from_config(layer.get_config()).get_config() == layer.get_config()


def test_bad_noise_names():
    for bad in ("pink", "gaussian:x", "gaussian:0.1:2", "gaussian:-1", "salt_pepper:2"):
        with pytest.raises(ValueError, match="valid|must be"):
            parse_noise(bad)


def test_all_is_every_eval_noise():
    assert [s.name for s in parse_noise_list("all")] == list(EVAL_NOISES)


def test_denoising_step_lowers_loss_on_noisy_input(tiny_images):
    from models.cae import CAEConfig, build_cae

    model = build_cae(CAEConfig(conv_filters=(4, 8, 8), dense_units=16, latent_dim=4))
    inputs = keras.Input((28, 28, 1))
    trainer = keras.Model(inputs, model(ImageNoise("gaussian", sigma=0.3, seed=0)(inputs)))
    trainer.compile(keras.optimizers.Adam(5e-3), "mse")
    noisy = apply_noise(tiny_images, "gaussian:0.3", seed=0)
    model.compile(loss="mse")
    before = model.evaluate(noisy, tiny_images, verbose=0)
    trainer.fit(tiny_images, tiny_images, epochs=4, batch_size=16, verbose=0)
    after = model.evaluate(noisy, tiny_images, verbose=0)
    assert after < 0.95 * before
