"""The fast-gradient convolutions (models/layers.py) are Keras's own layers with
Keras's outputs and gradients, and their batch chunks sum to the whole batch."""

import numpy as np
import pytest

import keras
import models.layers as fast_layers
from models.layers import Conv2DTranspose, conv2d, conv2d_transpose

ON_JAX = keras.backend.backend() == "jax"


def _layer_pair(make, stock_class, x, args, kwargs):
    """The fast layer and Keras's own, built on ``x`` with the same weights."""
    rng = np.random.default_rng(0)
    fast, stock = make(*args, **kwargs), stock_class(*args, **kwargs)
    assert type(fast) is stock_class  # what is saved is Keras's own
    fast.build(x.shape)
    stock.build(x.shape)
    weights = [rng.normal(size=w.shape).astype("float32") for w in stock.get_weights()]
    fast.set_weights(weights)
    stock.set_weights(weights)
    return fast, stock


def _outputs_and_grads(layer, x):
    """Outputs, then the gradients of sum(sin(y)) for the weights and the input
    (jitted: one compilation instead of one per op)."""
    import jax
    import jax.numpy as jnp

    def loss(params, inputs):
        y = layer.stateless_call(params, [], inputs)[0]
        return jnp.sum(jnp.sin(y)), y

    params = [v.value for v in layer.trainable_variables]
    (_, y), g = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(
        params, jnp.asarray(x))
    return [y, *jax.tree.leaves(g)]


def _assert_same_as_keras(fast, stock, x):
    if not ON_JAX:
        np.testing.assert_allclose(keras.ops.convert_to_numpy(fast(x)),
                                   keras.ops.convert_to_numpy(stock(x)), atol=1e-5)
        return
    for got, want in zip(_outputs_and_grads(fast, x), _outputs_and_grads(stock, x)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kernel_size,padding,size", [(3, "valid", 3), (4, "same", 7)])
def test_fast_conv_transpose_matches_keras(kernel_size, padding, size):
    """Same outputs everywhere; on JAX (the custom gradient) the same gradients."""
    x = np.random.default_rng(1).random((2, size, size, 6)).astype("float32")
    fast, stock = _layer_pair(conv2d_transpose, keras.layers.Conv2DTranspose, x,
                              (4, kernel_size), dict(strides=2, padding=padding,
                                                     activation="relu"))
    if ON_JAX:
        assert "call" in vars(fast) and "call" not in vars(stock)  # the fast gradient is on
    _assert_same_as_keras(fast, stock, x)


@pytest.mark.parametrize("kernel_size,strides,padding", [(3, 2, "same"), (3, 1, "same"),
                                                         (4, 2, "valid")])
def test_fast_conv_matches_keras(kernel_size, strides, padding):
    x = np.random.default_rng(2).random((3, 9, 9, 5)).astype("float32")
    fast, stock = _layer_pair(conv2d, keras.layers.Conv2D, x, (4, kernel_size),
                              dict(strides=strides, padding=padding, activation="sigmoid"))
    if ON_JAX:
        assert "convolution_op" in vars(fast) and "convolution_op" not in vars(stock)
    _assert_same_as_keras(fast, stock, x)


@pytest.mark.skipif(not ON_JAX, reason="batch chunks are the JAX path's")
@pytest.mark.parametrize("make,stock_class", [(conv2d, keras.layers.Conv2D),
                                              (conv2d_transpose, keras.layers.Conv2DTranspose)])
def test_kernel_gradient_in_batch_chunks_sums_to_the_whole_batch(monkeypatch, make,
                                                                  stock_class):
    """Every layer chunked (threshold 0) into chunks of 2 images, the last one
    short: the gradients are still Keras's over the whole batch of 5."""
    x = np.random.default_rng(3).random((5, 8, 8, 3)).astype("float32")
    monkeypatch.setattr(fast_layers, "CHUNK_FROM_BYTES", 0)
    # Input and cotangent of one image: 8x8x3 + 4x4x4 or 4x4x3 floats, 1 KB or
    # a little less; chunks of 2 KB hold two images.
    monkeypatch.setattr(fast_layers, "CHUNK_BYTES", 2048)
    monkeypatch.setattr(fast_layers, "MAX_CHUNKS", 16)
    args = (4, 3) if stock_class is keras.layers.Conv2D else (3, 3)
    inputs = x if stock_class is keras.layers.Conv2D else x[:, :4, :4, :]
    kwargs = dict(strides=2, padding="same", activation="relu")
    fast, stock = _layer_pair(make, stock_class, inputs, args, kwargs)
    chunks = []
    real = fast_layers._batch_chunks
    monkeypatch.setattr(fast_layers, "_batch_chunks",
                        lambda batch, size: chunks.append(real(batch, size)) or chunks[-1])
    _assert_same_as_keras(fast, stock, inputs)
    assert [(0, 2), (2, 4), (4, 5)] in chunks


@pytest.mark.skipif(not ON_JAX, reason="batch chunks are the JAX path's")
def test_batch_chunks_only_for_large_batches_and_at_most_max_chunks():
    big = fast_layers.CHUNK_FROM_BYTES
    assert fast_layers._batch_chunks(128, 1000) == [(0, 128)]  # small: one chunk
    chunks = fast_layers._batch_chunks(128, big // 16)  # ~1 MB chunks of 8 images
    assert chunks[0] == (0, 8) and chunks[-1] == (120, 128) and len(chunks) == 16
    many = fast_layers._batch_chunks(1000, big)  # capped at MAX_CHUNKS
    assert len(many) <= fast_layers.MAX_CHUNKS and many[-1][1] == 1000
    assert all(a[1] == b[0] for a, b in zip(many, many[1:]))


def test_fast_conv_transpose_serialises_as_keras_own_layer():
    layer = conv2d_transpose(8, 3, strides=2, padding="same", activation="relu", name="deconv")
    serialised = keras.saving.serialize_keras_object(layer)
    assert serialised["module"] == "keras.layers" and serialised["registered_name"] is None
    restored = keras.saving.deserialize_keras_object(serialised)
    assert type(restored) is keras.layers.Conv2DTranspose
    assert restored.get_config() == layer.get_config()


def test_builders_and_loader_give_keras_layers_with_the_fast_gradient_on_jax(tmp_path):
    from models.cae import CAEConfig, build_cae
    from models.gan import build_discriminator, build_generator
    from models.saving import load_keras_model, save_model
    from models.vae import build_vae_decoder, build_vae_encoder

    cae = build_cae(CAEConfig(conv_filters=(4, 8, 8), dense_units=16, latent_dim=3))
    loaded = load_keras_model(save_model(cae, str(tmp_path / "cae.keras")))
    for model, method in ((cae.get_layer("decoder"), "call"), (build_generator(4, 2), "call"),
                          (build_vae_decoder(2, 4), "call"),
                          (loaded.get_layer("decoder"), "call"),
                          (cae.get_layer("encoder"), "convolution_op"),
                          (loaded.get_layer("encoder"), "convolution_op"),
                          (build_vae_encoder(2, 4), "convolution_op"),
                          (build_discriminator(4), "convolution_op")):
        kind = keras.layers.Conv2DTranspose if method == "call" else keras.layers.Conv2D
        convolutions = [layer for layer in model.layers if type(layer) is kind]
        assert convolutions, model.name
        for layer in convolutions:
            assert (method in vars(layer)) == ON_JAX, (model.name, layer.name)


def test_old_fast_conv_transpose_config_loads_as_keras_own_layer():
    """Files written before issue 16 name ``unsupervised28>Conv2DTranspose``."""
    old = Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu", name="deconv")
    serialised = keras.saving.serialize_keras_object(old)
    assert serialised["registered_name"] == "unsupervised28>Conv2DTranspose"
    restored = keras.saving.deserialize_keras_object(serialised)
    assert type(restored) is keras.layers.Conv2DTranspose
    assert restored.get_config() == old.get_config()


# ------------------------------------------------------------- batch norm


def _batch_norm_pair(x):
    from models.batch_norm import fused_batch_norm

    def make():
        return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    fused, stock = fused_batch_norm(make()), make()
    assert type(fused) is keras.layers.BatchNormalization
    for layer in (fused, stock):
        layer.build(x.shape)
    rng = np.random.default_rng(4)
    weights = [rng.normal(size=w.shape).astype("float32") for w in stock.get_weights()]
    weights[3] = np.abs(weights[3]) + 0.5  # a moving variance is positive
    fused.set_weights(weights)
    stock.set_weights(weights)
    return fused, stock


@pytest.mark.parametrize("shape", [(6, 5, 5, 4), (7, 3)])
def test_fused_batch_norm_matches_keras(shape):
    """Training calls: same outputs, gradients and moving statistics as Keras's
    own layer (on torch through the fused kernel); inference calls too."""
    x = np.random.default_rng(5).normal(2.0, 3.0, size=shape).astype("float32")
    fused, stock = _batch_norm_pair(x)
    assert ("call" in vars(fused)) == (keras.backend.backend() == "torch")
    if keras.backend.backend() == "torch":
        import torch

        results = []
        for layer in (fused, stock):
            inputs = torch.tensor(x, requires_grad=True)
            y = layer(inputs, training=True)
            (y * torch.arange(y.numel()).reshape(y.shape).sin()).sum().backward()
            results.append([y.detach(), inputs.grad, layer.gamma.value.grad,
                            layer.beta.value.grad])
        for got, want in zip(*results):
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-4)
    else:
        for layer in (fused, stock):
            layer(x, training=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fused.moving_mean),
                               keras.ops.convert_to_numpy(stock.moving_mean), rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fused.moving_variance),
                               keras.ops.convert_to_numpy(stock.moving_variance), rtol=1e-5)
    initial_mean = _batch_norm_pair(x)[1].get_weights()[2]
    assert not np.allclose(fused.get_weights()[2], initial_mean)  # the training call moved it
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fused(x, training=False)),
                               keras.ops.convert_to_numpy(stock(x, training=False)),
                               rtol=1e-5, atol=1e-5)


def test_gan_and_loaded_models_get_the_fused_batch_norm_on_torch(tmp_path):
    from models.gan import build_discriminator, build_generator
    from models.saving import load_keras_model, save_model

    generator = build_generator(4, 2)
    loaded = load_keras_model(save_model(generator, str(tmp_path / "generator.keras")))
    for model in (generator, build_discriminator(4), loaded):
        norms = [layer for layer in model.layers
                 if type(layer) is keras.layers.BatchNormalization]
        assert norms, model.name
        for layer in norms:
            assert ("call" in vars(layer)) == (keras.backend.backend() == "torch"), layer.name
