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
"""

from __future__ import annotations

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


@keras.saving.register_keras_serializable(package="unsupervised28")
class Conv2DTranspose(keras.layers.Conv2DTranspose):
    """Keras's ``Conv2DTranspose``, with a fast kernel gradient on JAX (see module doc)."""

    def _uses_fast_path(self) -> bool:
        return (keras.backend.backend() == "jax" and self.data_format == "channels_last"
                and self.output_padding is None and tuple(self.dilation_rate) == (1, 1))

    def call(self, inputs):
        if not self._uses_fast_path():
            return super().call(inputs)
        outputs = _jax_conv_transpose(inputs, self.kernel, list(self.strides), self.padding)
        if self.use_bias:
            outputs = ops.add(outputs, ops.reshape(self.bias, (1, 1, 1, self.filters)))
        if self.activation is not None:
            return self.activation(outputs)
        return outputs
