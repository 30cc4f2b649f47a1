"""Functional models calling their layers directly on torch (accel/direct_calls.py)
give Keras's own results: outputs, gradients, batch-norm statistics, the
training flag; and Keras's own call runs where the direct one would differ."""

import numpy as np
import pytest

import keras
import accel.direct_calls as direct

ON_TORCH = keras.backend.backend() == "torch"


def _twins(build, monkeypatch):
    """``build()`` twice with the same weights: with direct calls on the model
    and its nested models, and with Keras's own ``Functional.call`` everywhere."""
    def with_direct_calls(model):
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                with_direct_calls(layer)
        return direct.direct_calls(model)

    fast = with_direct_calls(build())
    stock = build()
    stock.set_weights(fast.get_weights())
    return fast, stock


def _torch_results(model, x, training):
    """Outputs, then gradients of a weighted sum of them for every trainable
    variable and the input, then every non-trainable variable after the call."""
    import torch

    inputs = torch.tensor(x, requires_grad=True)
    model.zero_grad()
    outputs = model(inputs, training=training)
    flat = outputs if isinstance(outputs, list | tuple) else [outputs]
    sum(torch.sin(y * (i + 1)).sum() for i, y in enumerate(flat)).backward()
    grads = [v.value.grad for v in model.trainable_variables]
    return ([y.detach() for y in flat] + grads + [inputs.grad]
            + [v.value.clone() for v in model.non_trainable_variables])


def _generator():
    from models.gan import build_generator
    return build_generator(latent_dim=3, width=2)


def _discriminator(spectral_norm):
    from models.gan import build_discriminator
    return lambda: build_discriminator(width=2, spectral_norm=spectral_norm)


def _cae():
    from models.cae import CAEConfig, build_cae
    return build_cae(CAEConfig(conv_filters=(3, 4, 5), dense_units=8, latent_dim=2))


def _vae_encoder():
    from models.vae import build_vae_encoder
    return build_vae_encoder(latent_dim=2, width=4)


@pytest.mark.skipif(not ON_TORCH, reason="direct calls are the torch path")
@pytest.mark.parametrize("build,shape", [
    (_cae, (3, 28, 28, 1)),  # nested functional models
    (_vae_encoder, (3, 28, 28, 1)),  # two outputs
    (_generator, (4, 3)),  # batch norm: training statistics and moving averages
    (_discriminator(False), (4, 32, 32, 1)),
    (_discriminator(True), (4, 32, 32, 1)),  # SpectralNormalization reads training
])
@pytest.mark.parametrize("training", [True, False])
def test_direct_calls_give_keras_results(build, shape, training, monkeypatch):
    fast, stock = _twins(build, monkeypatch)
    assert "call" in vars(fast) and "call" not in vars(stock)
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    got, want = _torch_results(fast, x, training), _torch_results(stock, x, training)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert direct._PLANS[fast][1]  # it did run directly


@pytest.mark.skipif(not ON_TORCH, reason="direct calls are the torch path")
def test_keras_call_runs_for_masks_mixed_precision_and_symbolic_inputs():
    import torch

    inputs = keras.Input((4,))
    masking = direct.direct_calls(keras.Model(inputs, keras.layers.Dense(2)(
        keras.layers.Masking()(inputs))))
    assert not direct._direct_allowed(masking)
    keras.config.set_dtype_policy("mixed_float16")
    try:
        inputs = keras.Input((4,))
        half = direct.direct_calls(keras.Model(inputs, keras.layers.Dense(2)(inputs)))
    finally:
        keras.config.set_dtype_policy("float32")
    assert not direct._direct_allowed(half)
    assert half(torch.ones(1, 4)).dtype == torch.float16  # Keras's call: autocast
    inputs = keras.Input((4,))
    plain = direct.direct_calls(keras.Model(inputs, keras.layers.Dense(2)(inputs)))
    assert direct._direct_allowed(plain)
    assert direct._inputs_fit(plain, torch.ones(1, 4)) is not None
    for not_fit in (torch.ones(1, 4, dtype=torch.float64), torch.ones(4),
                    torch.ones(1, 4, device="meta"), [torch.ones(1, 4)] * 2):
        assert direct._inputs_fit(plain, not_fit) is None
    symbolic = plain(keras.Input((4,)))  # a model built on it: Keras's own call
    assert tuple(symbolic.shape) == (None, 2)


def test_direct_calls_leave_other_backends_and_subclassed_models_alone():
    from models.vae import build_vae

    inputs = keras.Input((4,))
    model = direct.direct_calls(keras.Model(inputs, keras.layers.Dense(2)(inputs)))
    assert ("call" in vars(model)) == ON_TORCH
    vae = build_vae(latent_dim=2, width=4)
    assert "call" not in vars(direct.direct_calls(vae))
