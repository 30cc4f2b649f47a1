"""Every model's weights have distinct paths (``layer name/weight name``).

Two layers of one name in nested sub-models (the encoder's and the decoder's
``dense1``) give two weights one path. On torch a Keras layer registers its
weights with torch by path, so one of the two is lost: ``zero_grad`` never
clears its gradient, which then adds up over the steps of ``fit``, and a run
resumed in a new process (where it starts at zero) trains differently.
"""

from collections import Counter

import numpy as np
import pytest

import keras
from models.cae import CAEConfig, build_cae, build_encoder
from models.classifier import build_baseline
from models.gan import build_gan
from models.semi_supervised import build_semi_supervised
from models.two_stage import CodeVAE, build_code_decoder, build_code_encoder
from models.vae import build_vae

TINY = CAEConfig(conv_filters=(4, 8, 8), dense_units=16, latent_dim=3)


def repeated_paths(model):
    counts = Counter(weight.path for weight in model.weights)
    return sorted(path for path, n in counts.items() if n > 1)


MODELS = {
    "cae": lambda: build_cae(TINY),
    "vae": lambda: build_vae(latent_dim=2, width=4),
    "gan": lambda: build_gan(latent_dim=4, width=2),
    "gan_spectral_norm": lambda: build_gan(latent_dim=4, width=2, spectral_norm=True),
    "two_stage": lambda: CodeVAE(build_code_encoder(3, hidden=8),
                                 build_code_decoder(3, hidden=8)),
    "baseline": lambda: build_baseline(build_encoder(TINY), "dense1", hidden_units=8),
    "semi_supervised": lambda: build_semi_supervised(build_encoder(TINY), "conv2",
                                                     hidden_units=8),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_weight_paths_are_distinct(name):
    assert repeated_paths(MODELS[name]()) == []


def test_the_check_sees_a_repeated_name():
    """The control: two sub-models with a layer of the same name."""
    def part(name):
        inputs = keras.Input((2,))
        return keras.Model(inputs, keras.layers.Dense(2, name="dense1")(inputs), name=name)

    inputs = keras.Input((2,))
    model = keras.Model(inputs, part("b")(part("a")(inputs)))
    assert repeated_paths(model) == ["dense1/bias", "dense1/kernel"]


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="torch's parameter registry")
def test_torch_registers_every_trainable_weight_of_the_cae():
    """What the distinct paths buy on torch: one fit step clears every gradient."""
    model = build_cae(TINY)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    images = np.random.default_rng(0).uniform(size=(8, 28, 28, 1)).astype("float32")
    model.fit(images, images, batch_size=4, epochs=1, verbose=0)
    registered = {id(p) for p in model.parameters()}
    assert [w.path for w in model.trainable_weights if id(w.value) not in registered] == []
