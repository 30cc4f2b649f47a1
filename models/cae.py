"""The convolutional autoencoder (CAE) for 28x28x1 images.

Encoder: three stride-2 convolutions (28 -> 14 -> 7 -> 3), then two dense layers
to the latent code. Decoder: the mirror, two dense layers, a reshape and three
transposed convolutions to a sigmoid image. Encoder and decoder are named
functional models so each can be saved, loaded and reused alone; the CAE is the
functional composition ``decoder(encoder(x))``.
"""

from __future__ import annotations

import dataclasses
import json

import keras

from models.layers import conv2d_transpose

IMAGE_SHAPE = (28, 28, 1)


@dataclasses.dataclass
class CAEConfig:
    """Hyperparameters of the CAE.

    Attributes:
        conv_filters: widths of the three encoder convolutions (the decoder
            mirrors them). Default (32, 64, 128).
        dense_units: width of the hidden dense layer on each side. Default 256.
        latent_dim: size of the code. Default 10.
        dropout: dropout rate after the hidden dense layers, in [0, 1). Default 0.
        l2: L2 weight penalty on every kernel, >= 0. Default 0.
        kernel_size: convolution kernel size. Default 3.
    """

    conv_filters: tuple = (32, 64, 128)
    dense_units: int = 256
    latent_dim: int = 10
    dropout: float = 0.0
    l2: float = 0.0
    kernel_size: int = 3

    def __post_init__(self):
        self.conv_filters = tuple(int(f) for f in self.conv_filters)
        if len(self.conv_filters) != 3 or min(self.conv_filters) < 1:
            raise ValueError("conv_filters must be three positive integers. "
                             f"Received: conv_filters={self.conv_filters}")
        for name in ("dense_units", "latent_dim", "kernel_size"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1). Received: dropout={self.dropout}")
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0. Received: l2={self.l2}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["conv_filters"] = list(self.conv_filters)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "CAEConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _regularizer(config: CAEConfig):
    return keras.regularizers.L2(config.l2) if config.l2 > 0 else None


def build_encoder(config: CAEConfig) -> keras.Model:
    """28x28x1 image -> latent code of size ``config.latent_dim``."""
    reg = _regularizer(config)
    f1, f2, f3 = config.conv_filters
    k = config.kernel_size
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    x = keras.layers.Conv2D(f1, k, strides=2, padding="same", activation="relu",
                            kernel_regularizer=reg, name="conv1")(inputs)  # 14x14
    x = keras.layers.Conv2D(f2, k, strides=2, padding="same", activation="relu",
                            kernel_regularizer=reg, name="conv2")(x)  # 7x7
    x = keras.layers.Conv2D(f3, 3, strides=2, padding="valid", activation="relu",
                            kernel_regularizer=reg, name="conv3")(x)  # 3x3
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(config.dense_units, activation="relu",
                           kernel_regularizer=reg, name="dense1")(x)
    if config.dropout > 0:
        x = keras.layers.Dropout(config.dropout, name="dropout")(x)
    code = keras.layers.Dense(config.latent_dim, kernel_regularizer=reg, name="code")(x)
    return keras.Model(inputs, code, name="encoder")


def build_decoder(config: CAEConfig) -> keras.Model:
    """Latent code -> 28x28x1 image in [0, 1]."""
    reg = _regularizer(config)
    f1, f2, f3 = config.conv_filters
    k = config.kernel_size
    inputs = keras.Input((config.latent_dim,), name="code")
    x = keras.layers.Dense(config.dense_units, activation="relu",
                           kernel_regularizer=reg, name="dense1")(inputs)
    if config.dropout > 0:
        x = keras.layers.Dropout(config.dropout, name="dropout")(x)
    x = keras.layers.Dense(3 * 3 * f3, activation="relu", kernel_regularizer=reg,
                           name="dense2")(x)
    x = keras.layers.Reshape((3, 3, f3), name="reshape")(x)
    x = conv2d_transpose(f2, 3, strides=2, padding="valid", activation="relu",
                         kernel_regularizer=reg, name="deconv1")(x)  # 7x7
    x = conv2d_transpose(f1, k, strides=2, padding="same", activation="relu",
                         kernel_regularizer=reg, name="deconv2")(x)  # 14x14
    image = conv2d_transpose(1, k, strides=2, padding="same", activation="sigmoid",
                             kernel_regularizer=reg, name="deconv3")(x)  # 28x28
    return keras.Model(inputs, image, name="decoder")


def build_cae(config: CAEConfig | None = None) -> keras.Model:
    """The CAE as ``decoder(encoder(x))``; its layers ``encoder`` and ``decoder``
    are the two sub-models (``cae.get_layer("encoder")``)."""
    config = config or CAEConfig()
    encoder, decoder = build_encoder(config), build_decoder(config)
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    outputs = decoder(encoder(inputs))
    return keras.Model(inputs, outputs, name="cae")


def split_cae(model: keras.Model) -> tuple:
    """The (encoder, decoder) sub-models of a CAE built by :func:`build_cae`.

    Raises:
        ValueError: the model is not such a CAE.
    """
    names = [layer.name for layer in model.layers]
    if "encoder" not in names or "decoder" not in names:
        raise ValueError(f"model {model.name!r} is not a CAE: it has no 'encoder' and "
                         f"'decoder' sub-models (layers: {', '.join(names)})")
    return model.get_layer("encoder"), model.get_layer("decoder")
