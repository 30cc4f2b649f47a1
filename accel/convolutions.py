"""Convolutions with fast gradients on the JAX backend's CPU (and, through
:mod:`accel.torch_conv`, without layout copies on torch).

Why: XLA-CPU computes the kernel gradient of a convolution as another
convolution that contracts over the batch, and it is slow at two of them.

1. A strided transposed convolution: its kernel gradient is a convolution with
   ``lhs_dilation`` (the stride), which has no fast (Eigen/oneDNN) kernel.
   Measured on 2 CPU cores for the CAE's ``deconv2`` (batch 256, 7x7x64 ->
   14x14x32): forward 13 ms, input gradient 10 ms, kernel gradient 189 ms of
   CPU time. The fix uses an identity: a transposed convolution is the adjoint
   (input gradient) of the ordinary strided convolution with the same kernel,
   stride and padding, so its kernel gradient equals the kernel gradient of
   that ordinary convolution with input and cotangent swapped.
2. A kernel gradient over a large batch of large images: its batch-sized
   contraction falls out of the CPU's caches. Summing the kernel gradients of
   batch chunks of about :data:`CHUNK_BYTES` is the same sum, and faster:
   measured for the VAE's layers at batch 128, ``deconv2`` 35 -> 10-13 ms, the
   one-filter ``image`` convolution 15 -> 6 ms, ``deconv1`` 8.3 -> 5.4 ms (wall
   time per gradient; ``benchmarks/results/whole_process.md`` has the
   whole-step figures). The forward pass and the input gradient of such a
   layer run over the same chunks, concatenated (XLA-CPU runs each large
   convolution on one thread, and the chunks fit the caches): the VAE's step
   went from 72-76 to 61-63 ms. Chunks are for the CPU only: on an
   accelerator, or with a batch sharded over devices by
   ``keras.distribution``, the whole batch is one chunk.

The layers' weights, config and outputs are exactly Keras's ``Conv2D`` and
``Conv2DTranspose``: on JAX only the way they are computed differs;
TensorFlow uses Keras's own code path.

What is saved stays Keras's own: the models hold plain Keras layers, and
:func:`fast_conv` only replaces a method of such a layer object (on JAX or
torch, in this process), never its class or config. A ``.keras`` file therefore
loads with ``keras.saving.load_model`` without this toolkit, and
:func:`accel.accelerate` gives a loaded model the fast paths again.
"""

from __future__ import annotations

import functools
import math

import keras
from keras import ops

# Batch chunks on CPU: only when the whole batch's input and output (or
# cotangent) exceed CHUNK_FROM_BYTES, and then about CHUNK_BYTES of them per
# chunk, at most MAX_CHUNKS chunks. Kernel gradients alone in chunks, steps
# at batch 128 (images/s, threshold 6 / 4 / 2 MB): CAE 4 700 / 5 100 / 4 730,
# VAE 1 560 / 1 670 / 1 690, GAN 2 400 / 2 420 / 2 290; chunking every layer
# into 8 images slowed the CAE and the GAN by 5-10%. Forward passes and input gradients in chunks too
# (ms a step): VAE 72-76 -> 61-63 at 1 MB (66 at 0.5 and 2 MB, 74 at 4 MB);
# CAE and GAN unchanged.
CHUNK_FROM_BYTES = 4 * 2**20
CHUNK_BYTES = 2**20
MAX_CHUNKS = 16  # bounds the unrolled program (compile time) for large batches


def _batch_chunks(batch: int, bytes_per_image: int) -> list:
    """``(start, stop)`` of the batch chunks a large layer's forward pass and
    gradients are computed over."""
    import jax

    if (not isinstance(batch, int)  # symbolic (jax.export, SavedModel): whole batch
            or jax.default_backend() != "cpu" or keras.distribution.distribution() is not None
            or batch * bytes_per_image <= CHUNK_FROM_BYTES):
        return [(0, batch)]
    size = max(CHUNK_BYTES // bytes_per_image, -(-batch // MAX_CHUNKS), 1)
    return [(start, min(start + size, batch)) for start in range(0, batch, size)]


def _image_bytes(*arrays) -> int:
    return sum(math.prod(a.shape[1:]) * a.dtype.itemsize for a in arrays)


def _per_chunk(fn, chunks, *arrays):
    """``fn(*arrays)`` for a per-image ``fn``, computed chunk by chunk and
    concatenated along the batch."""
    if len(chunks) == 1:
        return fn(*arrays)
    return ops.concatenate([fn(*(a[start:stop] for a in arrays)) for start, stop in chunks],
                           axis=0)


def _kernel_gradient(conv, kernel, inputs, cotangent):
    """The gradient with respect to ``kernel`` of ``<cotangent, conv(inputs, kernel)>``,
    summed over batch chunks (``conv`` is linear in ``kernel``)."""
    import jax

    chunks = _batch_chunks(inputs.shape[0], _image_bytes(inputs, cotangent))
    if len(chunks) == 1:  # no slicing: the batch may be symbolic
        return jax.vjp(lambda k: conv(inputs, k), kernel)[1](cotangent)[0]
    total = None
    for start, stop in chunks:
        _, vjp = jax.vjp(lambda k: conv(inputs[start:stop], k), kernel)
        part = vjp(cotangent[start:stop])[0]
        total = part if total is None else total + part
    return total


def _with_kernel_gradient(op, kernel_gradient, inputs, kernel):
    """``op(inputs, kernel)`` with a custom VJP: the input gradient is ``op``'s
    own, the kernel gradient ``kernel_gradient(inputs, kernel, cotangent)``.
    When differentiated, the forward pass and the input gradient run over
    batch chunks (:func:`_batch_chunks`)."""
    import jax

    @jax.custom_vjp
    def fast_op(x, k):
        return op(x, k)

    def fwd(x, k):
        out = jax.eval_shape(op, x, k)
        chunks = _batch_chunks(x.shape[0], _image_bytes(x, out))
        return _per_chunk(lambda x_: op(x_, k), chunks, x), (x, k)

    def bwd(residuals, g):
        x, k = residuals
        chunks = _batch_chunks(x.shape[0], _image_bytes(x, g))
        dx = _per_chunk(lambda x_, g_: jax.vjp(lambda y: op(y, k), x_)[1](g_)[0], chunks, x, g)
        return dx, kernel_gradient(x, k, g)

    fast_op.defvjp(fwd, bwd)
    return fast_op(ops.convert_to_tensor(inputs), ops.convert_to_tensor(kernel))


def _jax_conv(inputs, kernel, strides, padding):
    """Keras's ``ops.conv`` (channels_last, no dilation) whose kernel gradient is
    summed over batch chunks."""
    def conv(x, k):
        return ops.conv(x, k, strides=strides, padding=padding)

    return _with_kernel_gradient(conv, lambda x, k, g: _kernel_gradient(conv, k, x, g),
                                 inputs, kernel)


def _jax_conv_transpose(inputs, kernel, strides, padding):
    """Keras's ``ops.conv_transpose`` (channels_last, no dilation or output
    padding) whose kernel gradient is that of an ordinary convolution."""
    def transpose(x, k):  # its input gradient is a plain strided convolution: fast
        return ops.conv_transpose(x, k, strides=strides, padding=padding)

    def forward_conv(g, k):
        # The convolution whose input gradient ``transpose`` is: kernel
        # (h, w, filters, channels) read as (h, w, in=filters, out=channels).
        return ops.conv(g, k, strides=strides, padding=padding)

    # <g, transpose(x, k)> = <x, forward_conv(g, k)>: the kernel gradient of the
    # ordinary convolution, with input and cotangent swapped.
    return _with_kernel_gradient(
        transpose, lambda x, k, g: _kernel_gradient(forward_conv, k, g, x), inputs, kernel)


def _has_fast_path(layer) -> bool:
    return (keras.backend.backend() in ("jax", "torch")
            and layer.data_format == "channels_last"
            and tuple(layer.dilation_rate) == (1, 1)
            and getattr(layer, "output_padding", None) is None
            and getattr(layer, "groups", 1) == 1)


def _fast_call(layer, inputs):
    """``keras.layers.Conv2DTranspose.call`` with the fast kernel gradient."""
    outputs = _jax_conv_transpose(inputs, layer.kernel, list(layer.strides), layer.padding)
    if layer.use_bias:
        outputs = ops.add(outputs, ops.reshape(layer.bias, (1, 1, 1, layer.filters)))
    if layer.activation is not None:
        return layer.activation(outputs)
    return outputs


def _fast_convolution_op(layer, inputs, kernel):
    """``keras.layers.Conv2D.convolution_op`` with the fast kernel gradient."""
    return _jax_conv(inputs, kernel, list(layer.strides), layer.padding)


def fast_conv(layer):
    """``layer``, a ``keras.layers.Conv2D`` or ``Conv2DTranspose``, on its fast
    path: on JAX its kernel gradient computed the fast way, on torch its call
    without layout copies (:mod:`accel.torch_conv`); any other layer, or
    tensorflow: ``layer`` unchanged.

    Only this object's ``call`` (``Conv2DTranspose``, and ``Conv2D`` on torch)
    or ``convolution_op`` (``Conv2D`` on JAX) changes: its class and config,
    hence what ``model.save`` writes, stay Keras's own.
    """
    if not (isinstance(layer, keras.layers.Conv2D | keras.layers.Conv2DTranspose)
            and _has_fast_path(layer)) or {"call", "convolution_op"} & set(vars(layer)):
        return layer
    transpose = isinstance(layer, keras.layers.Conv2DTranspose)
    if keras.backend.backend() == "torch":
        from accel import torch_conv

        call = torch_conv.conv2d_transpose if transpose else torch_conv.conv2d
        layer.call = functools.partial(call, layer, layer.call)
    elif transpose:
        layer.call = functools.partial(_fast_call, layer)
    else:
        layer.convolution_op = functools.partial(_fast_convolution_op, layer)
    return layer
