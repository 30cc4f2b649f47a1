"""Image-quality numbers (evaluation/metrics.py): NumPy, float64, chunked."""

import numpy as np

from evaluation.metrics import mse, per_image_mse, psnr


def test_per_image_mse_in_chunks_equals_the_whole_array_formula():
    rng = np.random.default_rng(0)
    x = rng.random((2500, 28, 28, 1), dtype=np.float32)
    y = rng.random((2500, 28, 28, 1), dtype=np.float32)
    whole = ((x.astype(np.float64) - y.astype(np.float64)) ** 2).reshape(2500, -1).mean(axis=1)
    np.testing.assert_array_equal(per_image_mse(x, y), whole)  # 1024, 1024, 452
    np.testing.assert_array_equal(per_image_mse(x, y, chunk=7), whole)
    assert mse(x, y) == float(whole.mean())


def test_known_values_and_a_perfect_image():
    x = np.zeros((3, 28, 28, 1), np.float32)
    y = np.full_like(x, 0.5)
    y[2] = 0.0  # the third image is perfect
    np.testing.assert_allclose(per_image_mse(x, y), [0.25, 0.25, 0.0])
    expected = (2 * 10 * np.log10(1 / 0.25) + 100.0) / 3
    assert abs(psnr(x, y) - expected) < 1e-9
