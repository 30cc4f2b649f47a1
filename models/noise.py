"""Image corruptions for the denoising study, in NumPy and as Keras layers.

Every noise is defined once in words and implemented twice with the same
definition: in NumPy (:func:`apply_noise`, seeded with ``np.random.default_rng``,
so a fixed evaluation set is identical on every backend) and in ``keras.ops``
(:func:`noise_ops` and the layers :class:`ImageNoise` / :class:`NoiseMix`, which
draw fresh noise every batch from a ``keras.random.SeedGenerator``).

Kinds (images in [0, 1]; the result is clipped to [0, 1]):

* ``none``: the clean image.
* ``gaussian:S``: add N(0, S^2) to every pixel.
* ``salt_pepper:A``: a fraction A of the pixels, half set to 1 (salt), half to 0.
* ``uniform``: add U[0, 1) to every pixel.
* ``occlusion``: a 14x14 patch at a uniformly random position set to 0.
* ``mixed:A:S``: salt-and-pepper with amount A, then Gaussian with sigma S.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from data.noise_spec import (DEFAULT_AMOUNT, DEFAULT_SIGMA, EVAL_NOISES, KINDS, NoiseSpec,
                             parse_noise, parse_noise_list, PATCH)


# ------------------------------------------------------------------- NumPy


def apply_noise(x: np.ndarray, spec, seed: int = 0) -> np.ndarray:
    """Corrupts a batch of images (N, H, W[, C]) with NumPy; same seed, same result.

    Args:
        x: images in [0, 1].
        spec: a NoiseSpec or its name.
        seed: seeds ``np.random.default_rng``.

    Returns:
        float32 array like ``x``, clipped to [0, 1].
    """
    spec = parse_noise(spec) if isinstance(spec, str) else spec
    rng = np.random.default_rng(seed)
    x = np.asarray(x, np.float32)
    if spec.kind == "none":
        return x.copy()
    if spec.kind == "gaussian":
        y = x + spec.sigma * rng.standard_normal(x.shape)
    elif spec.kind == "salt_pepper":
        y = _salt_pepper_np(x, spec.amount, rng)
    elif spec.kind == "uniform":
        y = x + rng.random(x.shape)
    elif spec.kind == "occlusion":
        y = x * (1.0 - _occlusion_mask_np(x.shape, spec.patch, rng))
    else:  # mixed
        y = _salt_pepper_np(x, spec.amount, rng)
        y = y + spec.sigma * rng.standard_normal(x.shape)
    return np.clip(y, 0.0, 1.0).astype(np.float32)


def _salt_pepper_np(x, amount, rng):
    u = rng.random(x.shape)
    y = np.where(u < amount / 2, 1.0, x)
    return np.where((u >= amount / 2) & (u < amount), 0.0, y)


def _occlusion_mask_np(shape, patch, rng):
    n, h, w = shape[0], shape[1], shape[2]
    top = rng.integers(0, h - patch + 1, size=n)
    left = rng.integers(0, w - patch + 1, size=n)
    rows = (np.arange(h)[None] >= top[:, None]) & (np.arange(h)[None] < top[:, None] + patch)
    cols = (np.arange(w)[None] >= left[:, None]) & (np.arange(w)[None] < left[:, None] + patch)
    mask = rows[:, :, None] & cols[:, None, :]
    return mask.reshape(mask.shape + (1,) * (len(shape) - 3)).astype(np.float32)


# -------------------------------------------------------------- keras.ops


def noise_ops(x, spec: NoiseSpec, seed_generator):
    """The same corruptions as :func:`apply_noise`, in ``keras.ops`` (any backend).

    Args:
        x: a float tensor (N, H, W, C) in [0, 1].
        spec: a NoiseSpec.
        seed_generator: a ``keras.random.SeedGenerator``.
    """
    x = ops.convert_to_tensor(x)  # NumPy input works too (torch needs a tensor)
    shape = ops.shape(x)
    if spec.kind == "none":
        return x
    if spec.kind == "gaussian":
        y = x + spec.sigma * keras.random.normal(shape, dtype=x.dtype, seed=seed_generator)
    elif spec.kind == "salt_pepper":
        y = _salt_pepper_ops(x, spec.amount, seed_generator)
    elif spec.kind == "uniform":
        y = x + keras.random.uniform(shape, dtype=x.dtype, seed=seed_generator)
    elif spec.kind == "occlusion":
        y = x * (1.0 - _occlusion_mask_ops(x, spec.patch, seed_generator))
    else:  # mixed
        y = _salt_pepper_ops(x, spec.amount, seed_generator)
        y = y + spec.sigma * keras.random.normal(shape, dtype=x.dtype, seed=seed_generator)
    return ops.clip(y, 0.0, 1.0)


def _salt_pepper_ops(x, amount, seed_generator):
    u = keras.random.uniform(ops.shape(x), dtype=x.dtype, seed=seed_generator)
    y = ops.where(u < amount / 2, ops.ones_like(x), x)
    return ops.where(ops.logical_and(u >= amount / 2, u < amount), ops.zeros_like(x), y)


def _occlusion_mask_ops(x, patch, seed_generator):
    shape = ops.shape(x)
    h, w = x.shape[1], x.shape[2]  # static: images are 28x28
    n = shape[0]
    # Uniform integer corner in [0, h - patch]: floor of a uniform in [0, h - patch + 1).
    top = ops.floor(keras.random.uniform((n,), 0.0, h - patch + 1.0, seed=seed_generator))
    left = ops.floor(keras.random.uniform((n,), 0.0, w - patch + 1.0, seed=seed_generator))
    r = ops.cast(ops.arange(h), "float32")[None, :]
    c = ops.cast(ops.arange(w), "float32")[None, :]
    rows = ops.logical_and(r >= top[:, None], r < top[:, None] + patch)
    cols = ops.logical_and(c >= left[:, None], c < left[:, None] + patch)
    mask = ops.logical_and(rows[:, :, None], cols[:, None, :])
    return ops.cast(mask[..., None], x.dtype)


def _number(value) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, bool) and math.isfinite(value))


def _integer(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check(name: str, value, ok: bool, expected: str) -> None:
    """ValueError in the words of Keras's own layers (e.g. ``GaussianNoise``)."""
    if not ok:
        raise ValueError(f"Invalid value received for argument `{name}`. Expected "
                         f"{expected}. Received: {name}={value!r}")


@keras.saving.register_keras_serializable(package="unsupervised28")
class ImageNoise(keras.layers.Layer):
    """Corrupts its input with one noise while training; identity otherwise.

    Args:
        kind: one of ``KINDS``.
        sigma: Gaussian standard deviation (``gaussian``, ``mixed``), > 0.
        amount: fraction of salt-and-pepper pixels (``salt_pepper``, ``mixed``), in [0, 1].
        patch: side of the occlusion square, >= 1.
        seed: seeds the layer's ``SeedGenerator``; None or an integer.

    Raises:
        ValueError: an argument outside these ranges, named with the value received.
    """

    def __init__(self, kind="gaussian", sigma=DEFAULT_SIGMA, amount=DEFAULT_AMOUNT,
                 patch=PATCH, seed=None, **kwargs):
        super().__init__(**kwargs)
        _check("kind", kind, kind in KINDS, f"one of {', '.join(KINDS)}")
        _check("sigma", sigma, _number(sigma) and sigma > 0, "a finite number > 0")
        _check("amount", amount, _number(amount) and 0 <= amount <= 1,
               "a number between 0 and 1")
        _check("patch", patch, _integer(patch) and patch >= 1, "an integer >= 1")
        # Keras's SeedGenerator takes a Python int only.
        _check("seed", seed, seed is None or _integer(seed) and isinstance(seed, int),
               "None or an integer")
        self.spec = NoiseSpec(kind, float(sigma), float(amount), int(patch))
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, inputs, training=None):
        if not training:
            return inputs
        return noise_ops(inputs, self.spec, self.seed_generator)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "kind": self.spec.kind, "sigma": self.spec.sigma,
                "amount": self.spec.amount, "patch": self.spec.patch, "seed": self.seed}


@keras.saving.register_keras_serializable(package="unsupervised28")
class NoiseMix(keras.layers.Layer):
    """While training, corrupts each image with one noise drawn uniformly from ``noises``.

    Args:
        noises: noise names (see :func:`parse_noise`), e.g. ``["gaussian:0.5", "occlusion"]``.
        seed: seeds the layer's ``SeedGenerator``.
    """

    def __init__(self, noises=("gaussian:0.3",), seed=None, **kwargs):
        super().__init__(**kwargs)
        self.specs = [parse_noise(n) if isinstance(n, str) else n for n in noises]
        if not self.specs:
            raise ValueError("NoiseMix needs at least one noise")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        if len(self.specs) == 1:
            return noise_ops(inputs, self.specs[0], self.seed_generator)
        k = len(self.specs)
        n = ops.shape(inputs)[0]
        # Every candidate for every image, then a one-hot pick per image: no
        # data-dependent control flow, so it traces on every backend.
        choice = ops.floor(keras.random.uniform((n,), 0.0, float(k), seed=self.seed_generator))
        onehot = ops.one_hot(ops.cast(ops.minimum(choice, k - 1), "int32"), k,
                             dtype=inputs.dtype)
        out = ops.zeros_like(inputs)
        for i, spec in enumerate(self.specs):
            out = out + onehot[:, i, None, None, None] * noise_ops(inputs, spec,
                                                                   self.seed_generator)
        return out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "noises": [s.name for s in self.specs],
                "seed": self.seed}


def make_noise_layer(specs: list, seed=None) -> keras.layers.Layer:
    """An ImageNoise for one spec, a NoiseMix for several."""
    if len(specs) == 1:
        s = specs[0]
        return ImageNoise(s.kind, s.sigma, s.amount, s.patch, seed=seed, name="noise")
    return NoiseMix([s.name for s in specs], seed=seed, name="noise")
