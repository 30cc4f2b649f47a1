"""New images from latent codes: a PCA-plane grid, Gaussian samples, interpolations."""

from __future__ import annotations

import numpy as np

from plots.figures import image_grid, image_rows, plt
from storage.files import save_figure


def decode(decoder, codes: np.ndarray) -> np.ndarray:
    """Decoded images; a direct call, since ``predict`` retraces for every small batch."""
    import keras

    return keras.ops.convert_to_numpy(decoder(np.asarray(codes, np.float32), training=False))


def pca_grid(decoder, codes: np.ndarray, path: str, seed: int, n: int = 10,
             spread: float = 2.0) -> dict:
    """Decodes an n x n grid over the 2-D PCA plane of ``codes`` (±spread std per axis).

    Each grid point is mapped back to a full code with the inverse PCA (so the
    other components sit at the mean) and decoded.
    """
    from sklearn.decomposition import PCA

    pca = PCA(2, random_state=seed).fit(codes)
    std = np.sqrt(pca.explained_variance_)
    xs = np.linspace(-spread, spread, n) * std[0]
    ys = np.linspace(spread, -spread, n) * std[1]  # top row = high PC 2
    plane = np.array([[x, y] for y in ys for x in xs])
    images = decode(decoder, pca.inverse_transform(plane)).reshape(n, n, 28, 28)
    mosaic = images.transpose(0, 2, 1, 3).reshape(n * 28, n * 28)

    fig, ax = plt.subplots(figsize=(8, 8))
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1)
    ticks = np.arange(n) * 28 + 13.5
    ax.set_xticks(ticks, [f"{v:.1f}" for v in xs], fontsize=8)
    ax.set_yticks(ticks, [f"{v:.1f}" for v in ys], fontsize=8)
    ax.set_xlabel(f"PC 1 of the codes ({pca.explained_variance_ratio_[0]:.0%} of variance)")
    ax.set_ylabel(f"PC 2 of the codes ({pca.explained_variance_ratio_[1]:.0%} of variance)")
    ax.set_title(f"Decoded grid over the PCA plane of the latent codes (±{spread:g} std; "
                 f"other components at their mean)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    return {"explained_variance_ratio": [float(v) for v in pca.explained_variance_ratio_],
            "grid": n, "spread_std": spread}


def gaussian_codes(train_codes: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` codes drawn (seeded) from the Gaussian with the mean and full covariance
    of ``train_codes``."""
    mean = train_codes.mean(axis=0)
    cov = np.cov(train_codes, rowvar=False).reshape(len(mean), len(mean))
    return np.random.default_rng(seed).multivariate_normal(mean, cov, size=n)


def gaussian_samples(decoder, train_codes: np.ndarray, path: str, seed: int,
                     n: int = 40) -> dict:
    """Decodes codes drawn from a full-covariance Gaussian fitted to the training codes."""
    images = decode(decoder, gaussian_codes(train_codes, n, seed))
    image_grid(images, path, f"{n} new images: codes drawn from a Gaussian (full covariance) "
               f"fitted to {len(train_codes)} training codes, decoded", n_cols=10)
    return {"samples": n, "fitted_on": int(len(train_codes))}


def interpolations(decoder, test_codes: np.ndarray, y_test: np.ndarray, x_test: np.ndarray,
                   class_names: list, path: str, seed: int, pairs: int = 6,
                   steps: int = 9) -> dict:
    """Decodes straight lines in latent space between pairs of test images of different classes.

    The end columns show the real images; the columns between, decoded codes
    ``(1 - t) * a + t * b``.
    """
    rng = np.random.default_rng(seed)
    rows, titles = [], []
    for _ in range(pairs):
        i = int(rng.integers(len(test_codes)))
        others = np.flatnonzero(y_test != y_test[i])
        j = int(rng.choice(others)) if len(others) else int(rng.integers(len(test_codes)))
        t = np.linspace(0, 1, steps)[:, None]
        images = decode(decoder, (1 - t) * test_codes[i] + t * test_codes[j])
        rows.append(np.concatenate([x_test[i:i + 1], images, x_test[j:j + 1]]))
        titles.append(f"{class_names[int(y_test[i])]} →\n{class_names[int(y_test[j])]}")
    col_titles = ["image A"] + [f"t={v:.2f}" for v in np.linspace(0, 1, steps)] + ["image B"]
    image_rows(rows, titles, path, "Interpolation in latent space between test images "
               "(decoded (1−t)·code A + t·code B)", col_titles=col_titles)
    return {"pairs": pairs, "steps": steps}
