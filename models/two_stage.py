"""The second stage of a two-stage VAE (Dai & Wipf 2019, "Diagnosing and
enhancing VAE models"): a small VAE of dense layers trained on the codes of a
first VAE, so that sampling its N(0, I) prior and decoding twice draws codes
from where the first VAE's posterior actually put the data, not from the
first VAE's prior, which the aggregate posterior never fills.

The decoder of codes is Gaussian with one learned variance ``gamma`` (the
paper's key ingredient: gamma shrinks as the fit tightens, so the KL term
cannot swamp the reconstruction). gamma lives only in the training model;
the decoder saved for sampling is a plain functional Keras model of Dense
layers (its output is the mean, as in the paper's sampling).
"""

from __future__ import annotations

import math

import keras
from keras import ops

from models.vae import VAE


def build_code_encoder(code_dim: int, hidden: int = 256) -> keras.Model:
    inputs = keras.Input((code_dim,), name="code")
    x = keras.layers.Dense(hidden, activation="relu", name="dense1")(inputs)
    x = keras.layers.Dense(hidden, activation="relu", name="dense2")(x)
    u_mean = keras.layers.Dense(code_dim, name="u_mean")(x)
    u_log_var = keras.layers.Dense(code_dim, name="u_log_var")(x)
    return keras.Model(inputs, [u_mean, u_log_var], name="code_encoder")


def build_code_decoder(code_dim: int, hidden: int = 256) -> keras.Model:
    inputs = keras.Input((code_dim,), name="u")
    x = keras.layers.Dense(hidden, activation="relu", name="decoder_dense1")(inputs)
    x = keras.layers.Dense(hidden, activation="relu", name="decoder_dense2")(x)
    code = keras.layers.Dense(code_dim, name="code")(x)
    return keras.Model(inputs, code, name="code_decoder")


class CodeVAE(VAE):
    """A VAE on vectors with a Gaussian decoder of learned variance gamma.

    Reuses :class:`models.vae.VAE` (its reparameterisation and per-backend
    train step); only the reconstruction term differs. Not saved: only
    ``decoder`` is (see the module docstring).
    """

    def __init__(self, encoder, decoder, seed=None, **kwargs):
        super().__init__(encoder, decoder, beta=1.0, seed=seed, **kwargs)
        self.log_gamma = self.add_weight(shape=(), initializer="zeros", name="log_gamma")

    def _loss(self, data, training):
        codes = keras.utils.unpack_x_y_sample_weight(data)[0]
        u_mean, u_log_var = self.encoder(codes, training=training)
        decoded = self.decoder(self.sample_z(u_mean, u_log_var), training=training)
        dim = ops.cast(ops.shape(codes)[-1], "float32")
        # -log N(code | decoded, gamma I), summed over the code's dimensions.
        nll = ops.mean(ops.sum(ops.square(codes - decoded), axis=-1)) / (
            2.0 * ops.exp(self.log_gamma)) + 0.5 * dim * (self.log_gamma + math.log(2 * math.pi))
        kl = ops.mean(ops.sum(-0.5 * (1 + u_log_var - ops.square(u_mean) - ops.exp(u_log_var)),
                              axis=-1))
        total = nll + kl
        return total, {"loss": total, "reconstruction_loss": nll, "kl_loss": kl}


def train_code_vae(codes, epochs: int = 40, batch_size: int = 256, lr: float = 1e-3,
                   hidden: int = 256, seed: int = 0, verbose: int = 0):
    """Trains a :class:`CodeVAE` on ``codes`` (n, d); returns (decoder, history)."""
    dim = int(codes.shape[1])
    keras.utils.set_random_seed(seed)
    model = CodeVAE(build_code_encoder(dim, hidden), build_code_decoder(dim, hidden),
                    seed=seed, name="code_vae")
    model.compile(optimizer=keras.optimizers.Adam(lr))
    # A halving learning rate as the loss stalls, as the paper's schedule.
    history = model.fit(codes, epochs=epochs, batch_size=batch_size, verbose=verbose,
                        callbacks=[keras.callbacks.ReduceLROnPlateau("loss", factor=0.5,
                                                                     patience=3),
                                   keras.callbacks.TerminateOnNaN()])
    return model.decoder, {k: [float(v) for v in vals] for k, vals in history.history.items()}
