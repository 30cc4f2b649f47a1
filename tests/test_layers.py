"""The fast convolutions (accel/convolutions.py, accel/torch_conv.py) are Keras's own
layers with Keras's outputs and gradients, and their batch chunks sum to the
whole batch; the fused batch norm (accel/batch_norm.py) is Keras's too."""

import numpy as np
import pytest

import keras
import accel.convolutions as fast_layers
from accel.convolutions import fast_conv
from models.legacy_layers import Conv2DTranspose


def conv2d(*args, **kwargs):
    return fast_conv(keras.layers.Conv2D(*args, **kwargs))


def conv2d_transpose(*args, **kwargs):
    return fast_conv(keras.layers.Conv2DTranspose(*args, **kwargs))

ON_JAX = keras.backend.backend() == "jax"
ON_TORCH = keras.backend.backend() == "torch"
FAST = ON_JAX or ON_TORCH  # the backends with a fast path


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


def _torch_outputs_and_grads(layer, x):
    """Outputs, then the gradients of sum(sin(y)) for the weights and the input."""
    import torch

    inputs = torch.tensor(x, requires_grad=True)
    y = layer(inputs)
    torch.sin(y).sum().backward()
    grads = [v.value.grad for v in layer.trainable_variables]
    for v in layer.trainable_variables:
        v.value.grad = None
    return [y.detach(), *grads, inputs.grad]


def _assert_same_as_keras(fast, stock, x):
    """Same outputs; on JAX and torch (the fast paths) the same gradients."""
    if ON_JAX:
        pairs = zip(_outputs_and_grads(fast, x), _outputs_and_grads(stock, x))
    elif ON_TORCH:
        pairs = zip(_torch_outputs_and_grads(fast, x), _torch_outputs_and_grads(stock, x))
    else:
        pairs = [(fast(x), stock(x))]
    for got, want in pairs:
        assert got.shape == want.shape
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got),
                                   keras.ops.convert_to_numpy(want), rtol=1e-4, atol=1e-4)


# Transposed: torch's padding + output_padding ("valid", stride 2; "same", kernel
# 4), a slice ("same", kernel 3, odd and even sizes), stride 1 and 3.
@pytest.mark.parametrize("kernel_size,strides,padding,size", [
    (3, 2, "valid", 3), (4, 2, "same", 7), (3, 2, "same", 7), (3, 2, "same", 6),
    (3, 1, "same", 5), (2, 3, "same", 4), (5, 3, "valid", 4)])
def test_fast_conv_transpose_matches_keras(kernel_size, strides, padding, size):
    x = np.random.default_rng(1).random((2, size, size, 6)).astype("float32")
    fast, stock = _layer_pair(conv2d_transpose, keras.layers.Conv2DTranspose, x,
                              (4, kernel_size), dict(strides=strides, padding=padding,
                                                     activation="relu"))
    assert ("call" in vars(fast)) == FAST and "call" not in vars(stock)
    _assert_same_as_keras(fast, stock, x)


# Symmetric "same" padding (stride 1), asymmetric (stride 2, kernels 3 and 4 on
# odd and even sizes), "valid".
@pytest.mark.parametrize("kernel_size,strides,padding,size", [
    (3, 2, "same", 9), (3, 2, "same", 8), (4, 2, "same", 8), (3, 1, "same", 9),
    (4, 2, "valid", 9), (5, 3, "same", 9)])
def test_fast_conv_matches_keras(kernel_size, strides, padding, size):
    x = np.random.default_rng(2).random((3, size, size, 5)).astype("float32")
    fast, stock = _layer_pair(conv2d, keras.layers.Conv2D, x, (4, kernel_size),
                              dict(strides=strides, padding=padding, activation="sigmoid"))
    method = "convolution_op" if ON_JAX else "call"
    assert (method in vars(fast)) == FAST and method not in vars(stock)
    _assert_same_as_keras(fast, stock, x)


@pytest.mark.skipif(not ON_TORCH, reason="the torch path's")
def test_torch_conv_pads_through_keras_and_backpropagates_in_float16():
    """A transposed output larger than the full one (kernel 2, stride 3,
    "same": Keras pads it) runs the Keras ``call`` it was given; a float16
    call backpropagates (on a CPU without oneDNN float16 Keras's own does not)."""
    import torch
    from accel import torch_conv

    calls = []
    def keras_call(inputs):
        calls.append(tuple(inputs.shape))
        return inputs
    padded = keras.layers.Conv2DTranspose(2, 2, strides=3, padding="same")
    padded.build((None, 4, 4, 1))
    torch_conv.conv2d_transpose(padded, keras_call, torch.zeros(1, 4, 4, 1))
    assert calls == [(1, 4, 4, 1)]
    for make in (conv2d, conv2d_transpose):
        layer = make(2, 3, strides=2, padding="same", dtype="mixed_float16")
        x = torch.rand(2, 6, 6, 3, requires_grad=True)
        y = layer(x)
        assert y.dtype == torch.float16 and calls == [(1, 4, 4, 1)]
        y.float().sum().backward()
        assert layer.kernel.value.grad is not None and x.grad is not None


@pytest.mark.skipif(not ON_JAX, reason="batch chunks are the JAX path's")
@pytest.mark.parametrize("make,stock_class", [(conv2d, keras.layers.Conv2D),
                                              (conv2d_transpose, keras.layers.Conv2DTranspose)])
def test_kernel_gradient_in_batch_chunks_sums_to_the_whole_batch(monkeypatch, make,
                                                                  stock_class):
    """Every layer chunked (threshold 0) into chunks of 2 images, the last one
    short: the outputs and the kernel and input gradients are still Keras's
    over the whole batch of 5."""
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


def _replaced(model, method):
    """Whether each convolution of ``model`` has its fast path (a replaced method)."""
    kind = keras.layers.Conv2DTranspose if method == "call" else keras.layers.Conv2D
    convolutions = [layer for layer in model.layers if type(layer) is kind]
    assert convolutions, model.name
    replaced = "call" if ON_TORCH else method
    return {replaced in vars(layer) for layer in convolutions}


def test_builders_are_plain_keras_and_accelerate_and_the_loader_give_the_fast_path(
        tmp_path, monkeypatch):
    from accel import accelerate
    from models.cae import CAEConfig, build_cae
    from models.gan import build_discriminator, build_generator
    from models.saving import load_keras_model, save_model
    from models.vae import build_vae_decoder, build_vae_encoder

    cae = build_cae(CAEConfig(conv_filters=(4, 8, 8), dense_units=16, latent_dim=3))
    built = ((cae.get_layer("decoder"), "call"), (build_generator(4, 2), "call"),
             (build_vae_decoder(2, 4), "call"), (cae.get_layer("encoder"), "convolution_op"),
             (build_vae_encoder(2, 4), "convolution_op"),
             (build_discriminator(4), "convolution_op"))
    for model, method in built:
        assert _replaced(model, method) == {False}, model.name  # the builders: plain Keras
    monkeypatch.setenv("UNSUPERVISED28_ACCEL", "0")
    accelerate(cae)
    assert _replaced(cae.get_layer("decoder"), "call") == {False}  # switched off
    monkeypatch.delenv("UNSUPERVISED28_ACCEL")
    loaded = load_keras_model(save_model(cae, str(tmp_path / "cae.keras")))
    accelerate(cae)
    for model, method in (*built[:1], *built[3:4], (loaded.get_layer("decoder"), "call"),
                          (loaded.get_layer("encoder"), "convolution_op")):
        assert _replaced(model, method) == {FAST}, model.name
    for model, method in built[1:3] + built[4:]:
        assert _replaced(accelerate(model), method) == {FAST}, model.name


def test_old_fast_conv_transpose_config_loads_as_keras_own_layer():
    """Files of earlier versions name ``unsupervised28>Conv2DTranspose``."""
    old = Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu", name="deconv")
    serialised = keras.saving.serialize_keras_object(old)
    assert serialised["registered_name"] == "unsupervised28>Conv2DTranspose"
    restored = keras.saving.deserialize_keras_object(serialised)
    assert type(restored) is keras.layers.Conv2DTranspose
    assert restored.get_config() == old.get_config()


# ------------------------------------------------------------- batch norm


def _batch_norm_pair(x):
    from accel.batch_norm import fused_batch_norm

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


def test_accelerated_and_loaded_models_get_the_fused_batch_norm_on_torch(tmp_path):
    from accel import accelerate
    from models.gan import build_discriminator, build_generator
    from models.saving import load_keras_model, save_model

    generator = build_generator(4, 2)
    loaded = load_keras_model(save_model(generator, str(tmp_path / "generator.keras")))
    for model in (accelerate(generator), accelerate(build_discriminator(4)), loaded):
        norms = [layer for layer in model.layers
                 if type(layer) is keras.layers.BatchNormalization]
        assert norms, model.name
        for layer in norms:
            assert ("call" in vars(layer)) == (keras.backend.backend() == "torch"), layer.name
