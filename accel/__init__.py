"""Backend speed paths for plain Keras models, in one switchable layer.

The models of :mod:`models` are written in Keras's public API only.
:func:`accelerate` gives a built, compiled or loaded model this package's faster
ways of computing the same thing, on the backends where Keras's own way is slow
on a CPU:

* jax: a convolution's kernel gradient the fast way, large layers over batch
  chunks (:mod:`accel.convolutions`);
* torch: convolutions on channels-last views (:mod:`accel.torch_conv`), batch
  norm in PyTorch's fused kernel (:mod:`accel.batch_norm`), functional models
  that call their layers directly (:mod:`accel.direct_calls`), Adam and AdamW
  in PyTorch's fused kernel (:mod:`accel.optimizers`).

Each replaces a method of one layer, model or optimizer *object* in this
process, never a class or a config: what ``model.save`` writes stays plain Keras
and loads with ``keras.saving.load_model`` anywhere.

The switch: ``UNSUPERVISED28_ACCEL=0`` (``main.py --no-accel`` sets it, for the
task and every process it starts) runs stock Keras everywhere. The paths use
Keras's and PyTorch's private names, so they also switch themselves off, with
one line on stderr, on any Keras or PyTorch version they were not tested with
(:data:`runtime.acceleration.TESTED`). This package and :mod:`startup` are the only places the
toolkit touches private names (``tests/test_private_names.py``).
"""

from __future__ import annotations

from runtime.acceleration import enabled, turn_off, untested_versions  # noqa: F401


def accelerate(model):
    """``model`` (a built ``keras.Model``, compiled or not) on this package's
    speed paths, with its optimizers; stock Keras where :func:`enabled` says no.

    Every layer of it and of the models nested in it gets its fast path where
    it has one; a functional model calls its layers directly on torch; Adam and
    AdamW (``model.optimizer``, or each optimizer of a group) update through
    PyTorch's fused kernel on torch. Call it after ``compile`` and before
    ``fit``, ``evaluate`` or ``predict``; calling it again changes nothing.
    Returns ``model``.
    """
    import keras

    if not enabled(keras.backend.backend()):
        return model
    from accel.batch_norm import fused_batch_norm
    from accel.convolutions import fast_conv
    from accel.direct_calls import direct_calls
    from accel.optimizers import fused

    def speed_up(m):
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                speed_up(layer)
            fused_batch_norm(fast_conv(layer))
            inner = getattr(layer, "layer", None)  # a wrapper's layer (SpectralNormalization)
            if isinstance(inner, keras.layers.Layer):
                fast_conv(inner)
        direct_calls(m)

    speed_up(model)  # a subclassed model's sub-models are among its layers
    optimizer = getattr(model, "optimizer", None)
    for opt in getattr(optimizer, "optimizers", [optimizer]):
        if opt is not None:
            fused(opt)
    return model

