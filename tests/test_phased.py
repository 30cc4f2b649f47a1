"""models.phased.PhasedModel: the base of the VAE and the GAN, tried on a toy model."""

import keras
import numpy as np
import pytest
from keras import ops

from models import train_steps
from models.phased import PhasedModel


@keras.saving.register_keras_serializable(package="unsupervised28_tests")
class Shift(PhasedModel):
    """Learns the mean of its data (plus noise from its seed generator) in one phase."""

    SUBMODELS = ("net",)
    TRACKERS = {"loss_tracker": "loss", "noise_tracker": "noise"}

    def __init__(self, net, scale: float = 1.0, seed=None, **kwargs):
        super().__init__({"net": net}, seed=seed, **kwargs)
        self.scale = float(scale)

    def call(self, x, training=False):
        return self.net(x, training=training)

    def _loss(self, data, training=True):
        x = keras.utils.unpack_x_y_sample_weight(data)[0]
        noise = train_steps.batch_normal(ops.shape(x), self.seed_generator)
        loss = ops.mean(ops.square(self.net(x, training=training) - self.scale * 3.0))
        return loss, {"loss": loss, "noise": ops.mean(noise)}

    def train_phases(self):
        return [train_steps.Phase(self._loss, self.trainable_variables, self.optimizer)]

    def test_loss(self, data):
        return self._loss(data, training=False)

    def extra_config(self):
        return {"scale": self.scale}


def _net():
    inputs = keras.Input((2,))
    return keras.Model(inputs, keras.layers.Dense(1, name="dense")(inputs), name="net")


def test_phased_model_trains_tracks_and_round_trips(tmp_path):
    model = Shift(_net(), scale=2.0, seed=4, name="shift")
    assert [m.name for m in model.metrics] == ["loss", "noise"]
    model.compile(optimizer=keras.optimizers.Adam(0.1))
    x = np.ones((64, 2), "float32")
    history = model.fit(x, epochs=20, batch_size=16, verbose=0).history
    assert set(history) == {"loss", "noise"}
    assert history["loss"][-1] < 0.1 * history["loss"][0]
    assert abs(float(np.mean(history["noise"]))) < 0.5  # a standard normal's mean
    evaluated = model.evaluate(x, verbose=0, return_dict=True)
    assert set(evaluated) == {"loss", "noise"}

    config = model.get_config()
    assert config["scale"] == 2.0 and config["seed"] == 4 and "net" in config
    model.save(tmp_path / "shift.keras")
    loaded = keras.saving.load_model(tmp_path / "shift.keras")
    assert isinstance(loaded, Shift) and loaded.scale == 2.0 and loaded.seed == 4
    np.testing.assert_allclose(loaded.predict(x[:3], verbose=0), model.predict(x[:3], verbose=0),
                               rtol=1e-6)


def test_phased_model_names_the_sub_models_it_takes():
    class OneNet(PhasedModel):
        SUBMODELS = ("net",)

    with pytest.raises(ValueError, match="OneNet takes the sub-models net; received: other"):
        OneNet({"other": _net()})


def test_vae_and_gan_are_phased_models():
    from models.gan import GAN, build_gan
    from models.vae import VAE, build_vae

    assert issubclass(VAE, PhasedModel) and issubclass(GAN, PhasedModel)
    vae, gan = build_vae(2, 8, beta=0.5, seed=1), build_gan(4, 4, seed=2)
    assert {"encoder", "decoder", "beta", "seed"} <= set(vae.get_config())
    assert {"discriminator", "generator", "seed"} <= set(gan.get_config())
    assert [m.name for m in vae.metrics] == ["loss", "reconstruction_loss", "kl_loss"]
    assert [m.name for m in gan.metrics] == ["d_loss", "g_loss", "d_real", "d_fake"]
    assert VAE.from_config(vae.get_config()).beta == 0.5
