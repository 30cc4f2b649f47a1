"""``BatchNormalization`` in one fused PyTorch kernel on the torch backend.

Why: Keras computes a training batch norm on torch as separate tensor ops (two
means, a square, a subtraction, a scale, an offset) over channels-last
images, each a pass over the batch forward and again backward. PyTorch's own
``native_batch_norm`` does it in one pass each way, reading the channels-last
batch in place. Measured on 2 CPU cores, forward and backward of the GAN's batch norms
at batch 128 (for example 16x16x16): 3.3-6.6 ms Keras's way, 1.5-2.7 ms fused;
the GAN's whole training step went from about 1 020 to 1 200 images/s
(``benchmarks/results/whole_process.md``).

The result is Keras's: the same normalisation with the batch's biased variance,
the same moving-average update of ``moving_mean`` and ``moving_variance``, the
same weights and config. Only training calls in float32 take the fused path;
inference, masks, renorm and mixed precision run Keras's own ``call``. As for the
convolutions of :mod:`accel.convolutions`, only the layer object's ``call`` is
replaced, so saved files hold Keras's own layer.
"""

from __future__ import annotations

import functools

import keras


def _fused_call(layer, keras_call, inputs, training=None, mask=None):
    """``BatchNormalization.call`` through ``torch.native_batch_norm`` when training."""
    import torch

    axis = layer.axis % inputs.ndim
    if (not (training and layer.trainable) or mask is not None or layer.renorm
            or inputs.dtype != torch.float32 or layer.compute_dtype != "float32"):
        return keras_call(inputs, training=training, mask=mask)
    # A channels-last view, no copy: PyTorch's CPU kernel reads it as is
    # (a contiguous copy made the GAN's bn1 6.3 ms forward and backward, 2.2 without).
    channels_first = inputs.movedim(axis, 1)
    gamma = layer.gamma.value if layer.scale else None
    beta = layer.beta.value if layer.center else None
    outputs, mean, inverse_std = torch.native_batch_norm(
        channels_first, gamma, beta, None, None, True, 0.0, layer.epsilon)
    with torch.no_grad():  # Keras's moving averages, of the biased variance
        variance = inverse_std.pow(-2) - layer.epsilon
        momentum = layer.momentum
        layer.moving_mean.assign(layer.moving_mean.value * momentum
                                 + mean * (1.0 - momentum))
        layer.moving_variance.assign(layer.moving_variance.value * momentum
                                     + variance * (1.0 - momentum))
    return outputs.movedim(1, axis)


def fused_batch_norm(layer):
    """``layer``, a ``keras.layers.BatchNormalization``, training through PyTorch's
    fused kernel on the torch backend; any other layer, or another backend:
    ``layer`` unchanged."""
    if (isinstance(layer, keras.layers.BatchNormalization)
            and keras.backend.backend() == "torch" and "call" not in vars(layer)):
        layer.call = functools.partial(_fused_call, layer, layer.call)
    return layer
