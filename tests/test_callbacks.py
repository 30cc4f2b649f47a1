"""The Keras callbacks of training/callbacks.py, each on its own."""

import keras
import numpy as np
import pytest

from training.callbacks import GANMonitor, StartFrom


class _GANStub:
    """What GANMonitor reads of a GAN: its generator."""

    def __init__(self, latent_dim):
        self.generator = keras.Sequential([keras.Input((latent_dim,)),
                                           keras.layers.Dense(28 * 28, activation="tanh"),
                                           keras.layers.Reshape((28, 28, 1))])


def test_gan_monitor_recovers_each_batch_from_the_running_means(tmp_path):
    monitor = GANMonitor(str(tmp_path), latent_dim=4, seed=0, n=8)
    per_batch = {"d_loss": [1.0, 3.0, 2.0], "g_loss": [0.5, 0.7, 0.3],
                 "d_real": [0.9, 0.8, 0.6], "d_fake": [0.1, 0.2, 0.4]}
    for epoch in range(2):  # the running mean restarts every epoch
        monitor.on_epoch_begin(epoch)
        for batch in range(3):
            logs = {key: float(np.mean(values[:batch + 1])) for key, values in per_batch.items()}
            monitor.on_train_batch_end(batch, logs)
    for key, values in per_batch.items():
        np.testing.assert_allclose(monitor.iterations[key], values * 2, rtol=1e-9)


def test_gan_monitor_draws_one_seeded_grid_per_epoch(tmp_path):
    monitor = GANMonitor(str(tmp_path), latent_dim=4, seed=3, n=8)
    assert monitor.noise.shape == (8, 4) and monitor.noise.dtype == np.float32
    np.testing.assert_array_equal(monitor.noise, GANMonitor(str(tmp_path), 4, seed=3, n=8).noise)
    assert not np.array_equal(monitor.noise, GANMonitor(str(tmp_path), 4, seed=4, n=8).noise)
    monitor.set_model(_GANStub(4))
    monitor.on_epoch_end(0)
    monitor.on_epoch_end(1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples_epoch_001.png",
                                                         "samples_epoch_002.png"]
    assert (tmp_path / "samples_epoch_001.png").stat().st_size > 1_000


@pytest.mark.parametrize("wrapped", [False, True])
def test_start_from_copies_the_plain_cae_when_training_begins(wrapped):
    from models.cae import CAEConfig, build_cae

    config = CAEConfig(conv_filters=(4, 8, 8), dense_units=16, latent_dim=3)
    plain = build_cae(config)
    keras.utils.set_random_seed(1)
    cae = build_cae(config)
    model = cae
    if wrapped:  # the denoising trainer: noise layer, then the CAE as its layer "cae"
        inputs = keras.Input((28, 28, 1))
        model = keras.Model(inputs, cae(keras.layers.GaussianNoise(0.1)(inputs)),
                            name="denoising_trainer")
    assert not all(np.array_equal(a, b) for a, b in zip(cae.get_weights(), plain.get_weights()))
    callback = StartFrom(plain)
    callback.set_model(model)
    callback.on_train_begin()
    for a, b in zip(cae.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)
