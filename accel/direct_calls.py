"""Functional models that call their layers' ``call`` directly on the torch backend.

Why: on torch, Keras runs every layer of a functional model through
``Layer.__call__`` (argument binding, input specs, dtype conversion, call
contexts, ``torch.nn.Module`` dispatch) and walks the model's graph anew on every
call. Measured on 2 CPU cores for the CAE at batch 128: its forward pass took
20.8 ms that way and 15.7 ms calling each layer's ``call`` in a prepared order;
plain PyTorch took 16.1 ms (``benchmarks/results/whole_process.md``). Keras's
other backends trace the step once (``tf.function``, ``jax.jit``), so this cost
is torch's alone.

:func:`direct_calls` gives one functional model object a ``call`` that runs its
graph's operations in the order Keras's own ``Functional.call`` runs them,
passing ``training`` where a layer takes it, with the same results. Nested
functional models with direct calls run theirs. The model's own
``Model.__call__`` still runs Keras's, so its call context (the training flag
seen by layers that call other layers, such as ``SpectralNormalization``) is
Keras's. Keras's own ``Functional.call`` runs instead whenever something
``Layer.__call__`` would do matters: masks or extra arguments, inputs that are
not float32 torch tensors of the right ranks (symbolic ones, during building
or export), a dtype policy other than float32, a layer that makes masks
(``Masking``, ``Embedding(mask_zero=True)``), or an activity regularizer.

As for :mod:`accel.convolutions`, only the model object's ``call`` is replaced: its
class and config, hence the saved file, are Keras's own.
"""

from __future__ import annotations

import functools
import weakref

import keras

# model -> (plan, allowed), made on its first direct call; a dictionary beside
# the model because Keras tracks what is set on a model (a list of its layers
# would become sub-layers).
_PLANS = weakref.WeakKeyDictionary()


def _plan(model) -> list:
    """``(operation, node)`` pairs in the order ``Functional.call`` runs them."""
    steps = []
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.operation and not node.is_input:
                steps.append((model._get_operation_for_node(node), node))
    return steps


def _direct_allowed(model) -> bool:
    """No layer of ``model`` needs what only ``Layer.__call__`` does."""
    for layer in model._flatten_layers(include_self=False):
        makes_masks = (not isinstance(layer, keras.Model)  # (Masking, Embedding, ...)
                       and not getattr(type(layer).compute_mask, "_is_default", False))
        if (layer.dtype_policy.name != "float32" or makes_masks or not layer.built
                or getattr(layer, "activity_regularizer", None) is not None):
            return False
    return model.dtype_policy.name == "float32"


def _inputs_fit(model, inputs) -> list | None:
    """``inputs`` as the flat list ``model.inputs`` expects, or None when
    they are not float32 torch tensors of the right count and ranks."""
    import torch

    flat = [inputs] if isinstance(inputs, torch.Tensor) else inputs
    if not isinstance(flat, list | tuple) or len(flat) != len(model.inputs):
        return None
    for x, spec in zip(flat, model.inputs):
        if (not isinstance(x, torch.Tensor) or x.dtype != torch.float32
                or x.device.type == "meta" or x.ndim != len(spec.shape)):
            return None
    return list(flat)


def _direct_call(model, keras_call, inputs, training=None, mask=None, **kwargs):
    """``Functional.call`` with each operation's ``call`` run directly."""
    from keras.src import tree

    flat = _inputs_fit(model, inputs)
    if model not in _PLANS:
        _PLANS[model] = (_plan(model), _direct_allowed(model))
    plan, allowed = _PLANS[model]
    if mask is not None or kwargs or flat is None or not allowed:
        return keras_call(inputs, training=training, mask=mask, **kwargs)
    values = {id(ref): x for ref, x in zip(model.inputs, flat)}
    for operation, node in plan:
        args, call_kwargs = node.arguments.fill_in(values)
        if training is not None and getattr(operation, "_call_has_training_arg", False):
            call_kwargs["training"] = training
        outputs = operation.call(*args, **call_kwargs)
        for ref, x in zip(node.outputs, tree.flatten(outputs)):
            values[id(ref)] = x
    outputs = tree.pack_sequence_as(model._outputs_struct,
                                    [values[id(ref)] for ref in model.outputs])
    return outputs[0] if isinstance(outputs, list | tuple) and len(outputs) == 1 else outputs


def direct_calls(model):
    """``model``, a functional ``keras.Model``, calling its layers directly on the
    torch backend; any other model, or another backend: ``model`` unchanged."""
    if (keras.backend.backend() == "torch" and isinstance(model, keras.Model)
            and hasattr(model, "_nodes_by_depth") and "call" not in vars(model)):
        model.call = functools.partial(_direct_call, model, model.call)
    return model
