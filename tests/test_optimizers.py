"""Adam and AdamW with torch's fused kernel (accel/optimizers.py) update the
variables as Keras's own optimizers do, keep Keras's config and saved files,
and fall back to Keras where the kernel does not apply."""

import numpy as np
import pytest

import keras
from accel.optimizers import fused


def adam(*args, **kwargs):
    return fused(keras.optimizers.Adam(*args, **kwargs))

ON_TORCH = keras.backend.backend() == "torch"


def _train(make_optimizer, steps=6, dtype="float32"):
    """Variables of a small model after ``steps`` updates with gradients of
    several sizes (large early, small late: both ends of Adam's range)."""
    keras.utils.set_random_seed(0)
    shapes = [(3, 3, 1, 4), (4,), (36, 5), (5,)]
    variables = [keras.Variable(np.random.default_rng(i).normal(size=s), dtype=dtype)
                 for i, s in enumerate(shapes)]
    optimizer = make_optimizer()
    rng = np.random.default_rng(1)
    for step in range(steps):
        grads = [keras.ops.convert_to_tensor(rng.normal(size=s) * 10.0 ** (1 - step), dtype)
                 for s in shapes]
        optimizer.apply(grads, variables)
    return [keras.ops.convert_to_numpy(v.value) for v in variables], optimizer


@pytest.mark.parametrize("make", [
    lambda: keras.optimizers.Adam(1e-2, beta_1=0.5),
    lambda: keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(1e-2, 2, 0.5),
                                  epsilon=1e-3, clipnorm=1.0),
    lambda: keras.optimizers.AdamW(1e-2, weight_decay=0.1, use_ema=True),
    pytest.param(lambda: keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-2)),
                 marks=pytest.mark.skipif(keras.backend.backend() == "jax",
                                          reason="its eager apply traces on jax")),
], ids=["adam", "schedule-eps-clip", "adamw-ema", "loss-scale"])
def test_fused_updates_equal_keras_updates(make):
    stock, _ = _train(make)
    fast, optimizer = _train(lambda: fused(make()))
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    assert ("_parallel_update_step" in vars(inner)) == ON_TORCH
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 6
    for a, b in zip(stock, fast):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    moved = max(np.abs(b - s).max() for b, s in zip(fast, _train(make, steps=0)[0]))
    assert moved > 1e-3  # the updates happened


@pytest.mark.skipif(not ON_TORCH, reason="the fused kernel is torch's")
def test_fused_kernel_runs_and_amsgrad_falls_back(monkeypatch):
    import torch

    calls = []
    kernel = torch._fused_adam_
    monkeypatch.setattr(torch, "_fused_adam_",
                        lambda *a, **k: calls.append(1) or kernel(*a, **k))
    _train(lambda: adam(1e-2), steps=2)
    assert len(calls) == 2
    stock, _ = _train(lambda: keras.optimizers.Adam(1e-2, amsgrad=True))
    fast, _ = _train(lambda: fused(keras.optimizers.Adam(1e-2, amsgrad=True)))
    assert len(calls) == 2  # AMSGrad: Keras's own update
    for a, b in zip(stock, fast):
        np.testing.assert_allclose(b, a, rtol=1e-6)


def test_fused_optimizer_keeps_keras_config_and_leaves_others_alone(tmp_path):
    optimizer = adam(3e-4, beta_1=0.5, name="g_adam")
    assert type(optimizer) is type(keras.optimizers.Adam())
    assert optimizer.get_config() == keras.optimizers.Adam(3e-4, beta_1=0.5,
                                                           name="g_adam").get_config()
    sgd = keras.optimizers.SGD(0.1)
    assert fused(sgd) is sgd and "_parallel_update_step" not in vars(sgd)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(np.ones((4, 3)), np.ones((4, 1)), verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.optimizer).__name__ == "Adam"
    assert loaded.optimizer.get_config()["beta_1"] == 0.5
