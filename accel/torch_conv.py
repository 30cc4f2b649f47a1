"""``Conv2D`` and ``Conv2DTranspose`` calls on the torch backend without layout copies.

Why: Keras's torch convolution turns a channels-last batch into a contiguous
channels-first copy, then (``Conv2D``) back into a channels-last copy for
oneDNN, and adds the bias as a separate op; its backward pass copies the
gradients back the same way. PyTorch reads a channels-last batch directly:
``x.permute(0, 3, 1, 2)`` of an NHWC tensor *is* a channels-last NCHW tensor, no
copy. The calls here pass that view (and the transposed kernel) straight to
``torch.nn.functional.conv2d`` / ``conv_transpose2d`` and permute the result
back, also a view. Measured at batch 128 on 2 CPU cores (forward and backward,
``benchmarks/results/whole_process.md``): the VAE's one-filter ``image``
convolution 22 -> 8 ms, the CAE's ``deconv2`` 8.8 -> 5.8 ms.

The result is Keras's: the same "same" padding (asymmetric padding is applied
to the NHWC batch, as Keras pads it), the same crop of a transposed
convolution's full output (through torch's ``padding`` and ``output_padding``
where they express it, a slice otherwise). Only channels-last, undilated,
ungrouped layers take this path; other layers, and a transposed output larger
than the full one (which Keras pads), run Keras's own ``call``.
"""

from __future__ import annotations


def _same_padding(size: int, kernel: int, stride: int) -> tuple:
    """(before, after) padding of one spatial axis for Keras's "same" (TensorFlow's rule)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _torch_kernel(kernel):
    """A Keras kernel (h, w, a, b) as PyTorch's (b, a, h, w): a view in float32
    (oneDNN reads it as is); a copy in other dtypes, whose CPU kernel
    (``slow_conv2d``) needs a contiguous weight to backpropagate."""
    import torch

    kernel = kernel.permute(3, 2, 0, 1)
    return kernel if kernel.dtype == torch.float32 else kernel.contiguous()


def conv2d(layer, keras_call, inputs):
    """``keras.layers.Conv2D.call(inputs)`` through PyTorch on a channels-last view
    (every case is expressible: ``keras_call``, taken for symmetry with
    :func:`conv2d_transpose`, is not needed)."""
    import torch.nn.functional as F

    kernel = layer.kernel.value  # (h, w, in, out)
    strides = tuple(layer.strides)
    padding = 0
    if layer.padding == "same":
        (top, bottom), (left, right) = (
            _same_padding(inputs.shape[1 + i], kernel.shape[i], strides[i]) for i in range(2))
        if top == bottom and left == right:
            padding = (top, left)
        else:  # torch pads symmetrically only: pad the NHWC batch as Keras does
            inputs = F.pad(inputs, (0, 0, left, right, top, bottom))
    bias = layer.bias.value if layer.use_bias else None
    outputs = F.conv2d(inputs.permute(0, 3, 1, 2), _torch_kernel(kernel), bias,
                       strides, padding).permute(0, 2, 3, 1)
    return outputs if layer.activation is None else layer.activation(outputs)


def conv2d_transpose(layer, keras_call, inputs):
    """``keras.layers.Conv2DTranspose.call(inputs)`` through PyTorch on a
    channels-last view (``keras_call`` for an output Keras pads)."""
    import torch.nn.functional as F
    from keras.src.backend.common.backend_utils import (
        compute_conv_transpose_output_crops_for_torch)

    kernel = layer.kernel.value  # (h, w, out, in)
    strides = tuple(layer.strides)
    # Keras's crop (before, after) of the full output on each axis: torch's
    # ``padding`` crops both sides, ``output_padding`` gives back some of the after side.
    crops = compute_conv_transpose_output_crops_for_torch(
        (inputs.shape[0], inputs.shape[3], inputs.shape[1], inputs.shape[2]), kernel.shape,
        strides, layer.padding, None, 1)
    if any(before < 0 or after < 0 for before, after in crops):
        return keras_call(inputs)  # an output larger than the full one: Keras pads it
    padding, output_padding, window = [], [], [slice(None)]
    for (before, after), stride in zip(crops, strides):
        if 0 <= after <= before < after + stride:
            padding.append(before)
            output_padding.append(before - after)
            window.append(slice(None))
        else:  # not expressible (e.g. "same" with an odd kernel): crop by a slice
            both = min(before, after)
            padding.append(both)
            output_padding.append(0)
            window.append(slice(before - both, -(after - both) or None))
    outputs = F.conv_transpose2d(inputs.permute(0, 3, 1, 2), _torch_kernel(kernel), None,
                                 strides, padding, output_padding).permute(0, 2, 3, 1)
    # The slice on the channels-last view: its gradient is then one dense
    # copy; sliced channels-first it cost two zero-filled copies (7.2 -> 4.9 ms
    # forward and backward for the CAE's deconv2 at batch 128).
    outputs = outputs[tuple(window)]
    # The bias as its own add: measured faster than conv_transpose2d's bias.
    if layer.use_bias:
        outputs = outputs + layer.bias.value
    return outputs if layer.activation is None else layer.activation(outputs)
