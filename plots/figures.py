"""Figures a person can read: image grids with row titles, loss curves."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from storage.files import save_figure  # noqa: E402


def image_rows(rows: list, row_titles: list, path: str, title: str,
               col_titles: list | None = None, cmap: str = "gray") -> str:
    """One row of images per entry of ``rows`` (each (n, 28, 28[, 1]) in [0, 1])."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.1 * n_cols + 1.2, 1.15 * n_rows + 0.6),
                             squeeze=False)
    for i, (row, row_title) in enumerate(zip(rows, row_titles)):
        for j in range(n_cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(row):
                ax.imshow(np.squeeze(row[j]), cmap=cmap, vmin=0, vmax=1)
            if j == 0:
                ax.set_ylabel(row_title, rotation=0, ha="right", va="center", fontsize=9)
            if i == 0 and col_titles is not None and j < len(col_titles):
                ax.set_title(col_titles[j], fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def image_grid(images: np.ndarray, path: str, title: str, n_cols: int = 8) -> str:
    """A square-ish grid of images with a title."""
    images = np.asarray(images)
    n_rows = int(np.ceil(len(images) / n_cols))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(n_cols * 0.9, n_rows * 0.9 + 0.5),
                             squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < len(images):
            ax.imshow(np.squeeze(images[k]), cmap="gray", vmin=0, vmax=1)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def loss_curves(history: dict, path: str, title: str, ylabel: str = "loss",
                log_y: bool = True) -> str:
    """Training and validation curves of every key in a Keras history dict."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, values in history.items():
        if key in ("learning_rate", "lr") or not values:
            continue
        epochs = np.arange(1, len(values) + 1)
        ax.plot(epochs, values, marker="o", ms=3, label=key)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs only
    ax.set_ylabel(ylabel)
    if log_y:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)
