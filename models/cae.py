"""The convolutional autoencoder (CAE) for 28x28x1 images.

Encoder: three stride-2 convolutions (28 -> 14 -> 7 -> 3), then two dense layers
to the latent code. Decoder: the mirror, two dense layers, a reshape and three
transposed convolutions to a sigmoid image. Encoder and decoder are named
functional models so each can be saved, loaded and reused alone; the CAE is the
functional composition ``decoder(encoder(x))``.
"""

from __future__ import annotations

import keras

from configs.cae import IMAGE_SHAPE, CAEConfig  # noqa: F401 (re-exported)


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
                           kernel_regularizer=reg, name="decoder_dense1")(inputs)
    if config.dropout > 0:
        x = keras.layers.Dropout(config.dropout, name="dropout")(x)
    x = keras.layers.Dense(3 * 3 * f3, activation="relu", kernel_regularizer=reg,
                           name="decoder_dense2")(x)
    x = keras.layers.Reshape((3, 3, f3), name="reshape")(x)
    x = keras.layers.Conv2DTranspose(f2, 3, strides=2, padding="valid", activation="relu",
                                     kernel_regularizer=reg, name="deconv1")(x)  # 7x7
    x = keras.layers.Conv2DTranspose(f1, k, strides=2, padding="same", activation="relu",
                                     kernel_regularizer=reg, name="deconv2")(x)  # 14x14
    image = keras.layers.Conv2DTranspose(1, k, strides=2, padding="same", activation="sigmoid",
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
