"""``Conv2DTranspose`` with a fast kernel gradient on the JAX backend.

Why: on CPU, XLA computes the kernel gradient of a strided transposed
convolution as a convolution with ``lhs_dilation`` (the stride), which it has no
fast (Eigen/oneDNN) kernel for. Measured on 2 CPU cores for the CAE's
``deconv2`` (batch 256, 7x7x64 -> 14x14x32): forward 13 ms, input gradient
10 ms, kernel gradient 189 ms of CPU time; the two strided transposed
convolutions took ~300 of the ~390 ms of a whole training step, which made
Keras-on-JAX the slowest backend by far.

The fix uses an identity: a transposed convolution is the adjoint (input
gradient) of the ordinary strided convolution with the same kernel, stride and
padding, so its kernel gradient equals the kernel gradient of that ordinary
convolution with input and cotangent swapped. XLA computes that one with a fast
kernel. The layer's weights, config and outputs are exactly Keras's
``Conv2DTranspose``: only the gradient is computed another way, on JAX only;
TensorFlow and PyTorch use Keras's own code path.

What is saved stays Keras's own: the models hold plain ``keras.layers.Conv2DTranspose``
layers, and :func:`fast_gradient` only replaces the ``call`` of such a layer object
(on JAX, in this process), never its class or config. A ``.keras`` file therefore
loads with ``keras.saving.load_model`` without this toolkit, and
:func:`speed_up` gives a loaded model the fast gradient again.
"""

from __future__ import annotations

import functools

import keras
from keras import ops


def _jax_conv_transpose(inputs, kernel, strides, padding):
    """Keras's ``ops.conv_transpose`` (channels_last, no dilation or output
    padding) with a custom VJP whose kernel gradient is an ordinary convolution."""
    import jax

    def transpose(x, k):
        return ops.conv_transpose(x, k, strides=strides, padding=padding)

    def forward_conv(g, k):
        # The convolution whose input gradient ``transpose`` is: kernel
        # (h, w, filters, channels) read as (h, w, in=filters, out=channels).
        return ops.conv(g, k, strides=strides, padding=padding)

    @jax.custom_vjp
    def conv_transpose(x, k):
        return transpose(x, k)

    def fwd(x, k):
        return transpose(x, k), (x, k)

    def bwd(residuals, g):
        x, k = residuals
        _, vjp_x = jax.vjp(lambda x_: transpose(x_, k), x)  # a plain strided conv: fast
        _, vjp_k = jax.vjp(lambda k_: forward_conv(g, k_), k)  # <x, conv(g, k)>
        return vjp_x(g)[0], vjp_k(x)[0]

    conv_transpose.defvjp(fwd, bwd)
    return conv_transpose(ops.convert_to_tensor(inputs), ops.convert_to_tensor(kernel))


def _has_fast_path(layer) -> bool:
    return (keras.backend.backend() == "jax" and layer.data_format == "channels_last"
            and layer.output_padding is None and tuple(layer.dilation_rate) == (1, 1))


def _fast_call(layer, inputs):
    """``keras.layers.Conv2DTranspose.call`` with the fast kernel gradient."""
    outputs = _jax_conv_transpose(inputs, layer.kernel, list(layer.strides), layer.padding)
    if layer.use_bias:
        outputs = ops.add(outputs, ops.reshape(layer.bias, (1, 1, 1, layer.filters)))
    if layer.activation is not None:
        return layer.activation(outputs)
    return outputs


def fast_gradient(layer):
    """``layer``, a ``keras.layers.Conv2DTranspose``, computing its kernel gradient
    the fast way on JAX; any other layer, or another backend: ``layer`` unchanged.

    Only this object's ``call`` changes: its class and config, hence what
    ``model.save`` writes, stay Keras's own.
    """
    if isinstance(layer, keras.layers.Conv2DTranspose) and _has_fast_path(layer):
        layer.call = functools.partial(_fast_call, layer)
    return layer


def conv2d_transpose(*args, **kwargs):
    """``keras.layers.Conv2DTranspose(*args, **kwargs)`` with :func:`fast_gradient`."""
    return fast_gradient(keras.layers.Conv2DTranspose(*args, **kwargs))


def speed_up(model):
    """Applies :func:`fast_gradient` to every layer of ``model``, nested models
    included (for a model loaded from a file); returns ``model``."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            speed_up(layer)
        fast_gradient(layer)
    return model


@keras.saving.register_keras_serializable(package="unsupervised28")
class Conv2DTranspose(keras.layers.Conv2DTranspose):
    """The layer that ``.keras`` files written before issue 16 name
    (``unsupervised28>Conv2DTranspose``): registered so those files still load
    inside the toolkit. Loading one gives Keras's own layer (with
    :func:`fast_gradient`), so a model re-saved from it is plain Keras again.
    New models use :func:`conv2d_transpose`."""

    def call(self, inputs):
        if not _has_fast_path(self):
            return super().call(inputs)
        return _fast_call(self, inputs)

    @classmethod
    def from_config(cls, config):
        return fast_gradient(keras.layers.Conv2DTranspose.from_config(config))
