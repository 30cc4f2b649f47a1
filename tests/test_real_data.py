"""Slow tests on real Fashion-MNIST (Debian's dataset-fashion-mnist; CI installs it)."""

import numpy as np
import pytest

from conftest import real_data_or_skip


@pytest.mark.slow
def test_real_fashion_mnist_loads_whole():
    data = real_data_or_skip("fashion_mnist")
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (48_000, 12_000, 10_000)
    assert data.class_names[9] == "Ankle boot"
    counts = np.bincount(data.y_test, minlength=10)
    assert (counts == 1000).all()  # the official test split, untouched


@pytest.mark.slow
def test_cae_one_epoch_on_fashion_mnist_subset(tmp_path):
    """The default CAE, 1 epoch on 4 000 real images, reconstructs with test MSE < 0.04."""
    from models.cae import CAEConfig
    from training.cae import CAETraining, train_cae

    data = real_data_or_skip("fashion_mnist", train_limit=4000, test_limit=1000)
    _, metrics = train_cae(data, CAEConfig(), str(tmp_path), CAETraining(epochs=1, batch_size=32),
                           verbose=0)
    assert metrics["test_mse"] < 0.04
    assert (tmp_path / "cae.keras").is_file()
