"""One custom ``train_step`` per Keras backend, shared by the VAE and the GAN.

Keras has no ``train_step`` that runs on all three backends (keras guides
``custom_train_step_in_{tensorflow,jax,torch}``), so this module holds the three
and picks one with ``keras.backend.backend()``. A model describes its update as a
list of :class:`Phase` objects, each a loss function written once in
``keras.ops`` plus the variables it trains and the optimizer that trains them:
the VAE has one phase, the GAN two (discriminator, then generator). Each loss
function returns ``(loss, logs)``; ``logs`` maps tracker names
(``keras.metrics.Mean``) to the batch value they average.

* tensorflow: ``tf.GradientTape`` and ``optimizer.apply`` (Keras wraps the step
  in ``tf.function``). Under ``tf.distribute`` each replica runs the step on its
  share of the batch: the loss is divided by the replica count (the optimizer
  sums the replicas' gradients), batch norm uses the global batch's statistics
  and noise is this replica's rows of one draw for the global batch, so the
  step equals the one-device step on the same global batch.
* torch: ``zero_grad``, ``backward`` and ``optimizer.apply`` under ``no_grad``.
* jax: a pure function of ``state = (trainable, non_trainable, optimizer,
  metrics)`` values returning ``(logs, state)``, which Keras ``jax.jit``s.
  Each phase runs its loss function inside ``keras.StatelessScope`` (the
  mechanism behind ``Layer.stateless_call``, here spanning several sub-models
  and the model's SeedGenerator) under ``jax.value_and_grad``, then applies
  ``optimizer.stateless_apply``. With two optimizers, the model's
  ``optimizer`` is an :class:`OptimizerGroup` whose ``variables`` are both
  optimizers' variables, so the Keras JAX trainer carries both in the
  optimizer slot of the state, and syncs both back after ``fit``. Under
  ``keras.distribution.DataParallel`` the jitted step is one program over the
  sharded global batch: nothing changes.

Every phase differentiates ``optimizer.scale_loss(loss)`` in float32: under
``mixed_float16`` the optimizer is a ``keras.optimizers.LossScaleOptimizer``,
whose ``apply`` unscales the gradients and skips steps that overflowed.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable

import keras


@dataclasses.dataclass
class Phase:
    """One gradient update inside a training step.

    Attributes:
        loss_fn: ``loss_fn(data, training) -> (loss, logs)``: calls the
            sub-models as usual and computes the loss with ``keras.ops``.
        variables: the trainable variables this phase updates.
        optimizer: the ``keras.optimizers.Optimizer`` that updates them.
    """

    loss_fn: Callable
    variables: list
    optimizer: object


class OptimizerGroup:
    """Several optimizers seen by the Keras trainer as one ``model.optimizer``.

    The JAX trainer reads ``model.optimizer.variables`` to build, purge and
    sync the optimizer slot of its state; listing every optimizer's variables
    here makes that slot hold all of them. Each optimizer is built on its own
    variables before training (``build``), so the group never builds them on
    the whole model.
    """

    def __init__(self, optimizers, variable_lists):
        self.optimizers = list(optimizers)
        self._variable_lists = list(variable_lists)

    @property
    def built(self):
        return all(opt.built for opt in self.optimizers)

    def build(self, _=None):
        for opt, variables in zip(self.optimizers, self._variable_lists):
            if not opt.built:
                opt.build(variables)

    @property
    def variables(self):
        return [v for opt in self.optimizers for v in opt.variables]

    def scale_loss(self, loss):
        return loss


def optimizers_of(model) -> list:
    """The optimizers behind ``model.optimizer`` (one, or a group's members)."""
    opt = model.optimizer
    return list(opt.optimizers) if isinstance(opt, OptimizerGroup) else [opt]


def with_loss_scale(optimizer, model):
    """``optimizer`` wrapped in a ``LossScaleOptimizer`` when ``model`` computes
    in float16 (what ``compile`` does for a model's own optimizer)."""
    if (model.dtype_policy.name == "mixed_float16"
            and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer)):
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def _replicas() -> int:
    """Replicas of the current ``tf.distribute`` strategy (1 on other backends)."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf
    return tf.distribute.get_strategy().num_replicas_in_sync


def batch_normal(shape, seed):
    """``keras.random.normal(shape, seed=seed)`` for a batch (axis 0).

    Inside a ``tf.distribute`` replica, ``shape[0]`` is this replica's share:
    one draw for the whole global batch is sliced to this replica's rows, so
    the replicas get the noise one device gets (not each the same noise).
    """
    if keras.backend.backend() == "tensorflow" and _replicas() > 1:
        import tensorflow as tf
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            local = shape[0]
            draw = keras.random.normal((local * context.num_replicas_in_sync, *shape[1:]),
                                       seed=seed)
            start = context.replica_id_in_sync_group * local
            return draw[start:start + local]
    return keras.random.normal(shape, seed=seed)


def _loss_to_differentiate(loss, optimizer):
    """The float32 loss divided by the replica count, times the loss scale."""
    loss = keras.ops.cast(loss, "float32")
    replicas = _replicas()
    if replicas > 1:
        loss = loss / replicas
    return optimizer.scale_loss(loss)


def _all_layers(model):
    """Every layer of ``model`` and of the models nested in it."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


@contextlib.contextmanager
def _synchronized_batch_norm(model):
    """While a ``tf.distribute`` step is traced, batch norm layers normalise
    with the global batch's statistics (``synchronized``), as one device does.
    Restored afterwards: saved models keep ``synchronized=False``, which the
    other backends require."""
    layers = []
    if _replicas() > 1:
        layers = [layer for layer in _all_layers(model)
                  if isinstance(layer, keras.layers.BatchNormalization)
                  and not layer.synchronized]
    for layer in layers:
        layer.synchronized = True
    try:
        yield
    finally:
        for layer in layers:
            layer.synchronized = False


def _logs(model, values: dict) -> dict:
    for metric in model.metrics:
        if metric.name in values:
            metric.update_state(values[metric.name])
    return {m.name: m.result() for m in model.metrics}


# ---------------------------------------------------------------- tensorflow


def _tensorflow_train_step(model, data):
    import tensorflow as tf

    values = {}
    with _synchronized_batch_norm(model):
        for phase in model.train_phases():
            with tf.GradientTape() as tape:
                loss, logs = phase.loss_fn(data, training=True)
                loss = _loss_to_differentiate(loss, phase.optimizer)
            grads = tape.gradient(loss, phase.variables)
            phase.optimizer.apply(grads, phase.variables)
            values.update(logs)
    return _logs(model, values)


# --------------------------------------------------------------------- torch


def _torch_train_step(model, data):
    import torch

    values = {}
    for phase in model.train_phases():
        # Clears the gradients an earlier phase left on every sub-model
        # (the generator phase backpropagates through the discriminator).
        model.zero_grad()
        loss, logs = phase.loss_fn(data, training=True)
        _loss_to_differentiate(loss, phase.optimizer).backward()
        grads = [v.value.grad for v in phase.variables]
        with torch.no_grad():
            phase.optimizer.apply(grads, phase.variables)
        values.update(logs)
    return _logs(model, values)


def _eager_test_step(model, data):
    _, logs = model.test_loss(data)
    return _logs(model, logs)


# ----------------------------------------------------------------------- jax


def _index(variables, subset):
    position = {id(v): i for i, v in enumerate(variables)}
    return [position[id(v)] for v in subset]


def _stateless(bound, changing, fn):
    """Runs ``fn()`` in a ``keras.StatelessScope``.

    Args:
        bound: (variable, value) pairs the scope reads variables as.
        changing: (variable, value) pairs, a subset of ``bound``, whose values
            after ``fn`` are returned (unassigned ones keep their value).

    Returns:
        ``fn``'s result and the new values of the ``changing`` variables.
    """
    with keras.StatelessScope(state_mapping=bound) as scope:
        result = fn()
    new = []
    for ref, old in changing:
        value = scope.get_current_value(ref)
        new.append(old if value is None else value)
    return result, new


def _jax_run_in_scope(model, fn, trainable, non_trainable):
    """Runs ``fn()`` with the model's variables bound to the given values.

    Returns ``fn``'s result and the new non-trainable values (batch-norm
    statistics, the SeedGenerator state) that ``fn`` assigned.
    """
    changing = list(zip(model.non_trainable_variables, non_trainable))
    return _stateless(list(zip(model.trainable_variables, trainable)) + changing, changing, fn)


def _jax_update_metrics(model, metrics_variables, values):
    mapping = list(zip(model.metrics_variables, metrics_variables))
    return _stateless(mapping, mapping, lambda: _logs(model, values))


def _jax_train_step(model, state, data):
    import jax

    trainable, non_trainable, optimizer_vars, metrics_vars = state
    trainable, non_trainable = list(trainable), list(non_trainable)
    optimizer_vars = list(optimizer_vars)
    # Where each optimizer's variables sit in the optimizer slot of the state.
    offsets, start = {}, 0
    for opt in optimizers_of(model):
        offsets[id(opt)] = (start, start + len(opt.variables))
        start += len(opt.variables)

    values = {}
    for phase in model.train_phases():
        idx = _index(model.trainable_variables, phase.variables)
        lo, hi = offsets[id(phase.optimizer)]
        # The loss scale is an optimizer variable: read it from the state.
        scale_state = list(zip(phase.optimizer.variables, optimizer_vars[lo:hi]))

        def loss_of(phase_values, trainable, non_trainable, phase=phase, idx=idx,
                    scale_state=scale_state):
            full = list(trainable)
            for i, v in zip(idx, phase_values):
                full[i] = v
            (loss, logs), new_non_trainable = _jax_run_in_scope(
                model, lambda: phase.loss_fn(data, training=True), full, non_trainable)
            scaled, _ = _stateless(scale_state, [], lambda: _loss_to_differentiate(
                loss, phase.optimizer))
            return scaled, (logs, new_non_trainable)

        phase_values = [trainable[i] for i in idx]
        (_, (logs, non_trainable)), grads = jax.value_and_grad(loss_of, has_aux=True)(
            phase_values, trainable, non_trainable)
        phase_values, new_opt_vars = phase.optimizer.stateless_apply(
            optimizer_vars[lo:hi], grads, phase_values)
        optimizer_vars[lo:hi] = new_opt_vars
        for i, v in zip(idx, phase_values):
            trainable[i] = v
        values.update(logs)

    logs, metrics_vars = _jax_update_metrics(model, metrics_vars, values)
    return logs, (trainable, non_trainable, optimizer_vars, metrics_vars)


def _jax_test_step(model, state, data):
    trainable, non_trainable, metrics_vars = state
    (_, values), non_trainable = _jax_run_in_scope(
        model, lambda: model.test_loss(data), trainable, non_trainable)
    logs, metrics_vars = _jax_update_metrics(model, metrics_vars, values)
    return logs, (trainable, non_trainable, metrics_vars)


# ------------------------------------------------------------------ dispatch


def train_step(model, *args):
    """The backend's training step: ``(data)`` on tensorflow and torch,
    ``(state, data) -> (logs, state)`` on jax."""
    backend = keras.backend.backend()
    if backend == "jax":
        return _jax_train_step(model, *args)
    if backend == "tensorflow":
        return _tensorflow_train_step(model, *args)
    if backend == "torch":
        return _torch_train_step(model, *args)
    raise NotImplementedError(f"no train_step for backend {backend!r}; "
                              f"valid: tensorflow, jax, torch")


def test_step(model, *args):
    """The backend's evaluation step, built on ``model.test_loss(data)``."""
    if keras.backend.backend() == "jax":
        return _jax_test_step(model, *args)
    return _eager_test_step(model, *args)
