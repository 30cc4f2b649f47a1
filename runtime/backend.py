"""The Keras backend's name and seeding."""

from __future__ import annotations


def backend_name() -> str:
    import keras
    return keras.backend.backend()


def seed_everything(seed: int) -> None:
    """Seeds Python, NumPy and the backend; makes TensorFlow ops deterministic."""
    import keras

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()


def layer_seed(seed: int, offset: int = 0) -> int:
    """``seed + offset`` for a Keras layer's SeedGenerator: torch keeps its state in
    int32, so a --seed near 2**32 wraps; a seed below 2**31 - 2**10 is kept as it is
    (the margin leaves room for the small offsets models add)."""
    return (seed + offset) % (2**31 - 2**10)
