"""The CAE: building, forward shapes, training, saving."""

import numpy as np
import pytest

import keras
from models.cae import CAEConfig, build_cae, build_decoder, build_encoder, split_cae

TINY = CAEConfig(conv_filters=(4, 8, 8), dense_units=16, latent_dim=3)


class TestBuilding:
    def test_shapes(self, tiny_images):
        cae = build_cae(TINY)
        encoder, decoder = split_cae(cae)
        codes = encoder.predict(tiny_images[:5], verbose=0)
        assert codes.shape == (5, 3)
        images = decoder.predict(codes, verbose=0)
        assert images.shape == (5, 28, 28, 1)
        assert images.min() >= 0 and images.max() <= 1  # sigmoid output

    def test_encoder_downsamples_28_14_7_3(self):
        encoder = build_encoder(TINY)
        shapes = [encoder.get_layer(n).output.shape[1:3] for n in ("conv1", "conv2", "conv3")]
        assert [tuple(s) for s in shapes] == [(14, 14), (7, 7), (3, 3)]

    def test_decoder_mirrors(self):
        decoder = build_decoder(TINY)
        shapes = [decoder.get_layer(n).output.shape[1:3] for n in ("deconv1", "deconv2", "deconv3")]
        assert [tuple(s) for s in shapes] == [(7, 7), (14, 14), (28, 28)]

    @pytest.mark.parametrize("kwargs, message", [
        ({"latent_dim": 0}, "latent_dim=0"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"l2": -1}, "l2=-1"),
        ({"conv_filters": (4, 8)}, "conv_filters"),
    ])
    def test_config_validation(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            CAEConfig(**kwargs)

    def test_dropout_and_l2_are_built(self):
        cae = build_cae(CAEConfig(conv_filters=(4, 8, 8), dense_units=16, latent_dim=3,
                                  dropout=0.2, l2=1e-3))
        encoder, _ = split_cae(cae)
        assert any(isinstance(l, keras.layers.Dropout) for l in encoder.layers)
        assert len(cae.losses) > 0  # L2 penalties

    def test_split_rejects_other_models(self):
        other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        with pytest.raises(ValueError, match="not a CAE"):
            split_cae(other)


class TestTraining:
    def test_loss_falls(self, tiny_images):
        cae = build_cae(TINY)
        cae.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
        before = cae.evaluate(tiny_images, tiny_images, verbose=0)
        cae.fit(tiny_images, tiny_images, epochs=25, batch_size=16, verbose=0)
        after = cae.evaluate(tiny_images, tiny_images, verbose=0)
        assert after < 0.7 * before

    def test_train_step_changes_weights_eval_does_not(self, tiny_images):
        cae = build_cae(TINY)
        cae.compile(optimizer="adam", loss="mse")
        w0 = [w.copy() for w in cae.get_weights()]
        cae.evaluate(tiny_images, tiny_images, verbose=0)
        assert all(np.array_equal(a, b) for a, b in zip(w0, cae.get_weights()))
        cae.train_on_batch(tiny_images[:16], tiny_images[:16])
        assert any(not np.array_equal(a, b) for a, b in zip(w0, cae.get_weights()))


class TestSaving:
    def test_reload_predicts_the_same(self, tmp_path, tiny_images):
        from models.saving import load_keras_model, save_model

        cae = build_cae(TINY)
        path = save_model(cae, str(tmp_path / "cae.keras"))
        again = load_keras_model(path)
        np.testing.assert_allclose(cae.predict(tiny_images, verbose=0),
                                   again.predict(tiny_images, verbose=0), atol=1e-6)
        encoder, _ = split_cae(again)  # sub-models survive the round trip
        assert encoder.output.shape[-1] == 3
        assert not list(tmp_path.glob(".*tmp*"))  # the temporary file is gone
