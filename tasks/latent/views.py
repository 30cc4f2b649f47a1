"""2-D views of latent codes (PCA, t-SNE, Isomap) and numbers on how well codes separate classes."""

from __future__ import annotations

import os

import numpy as np

from plots.figures import plt  # Agg backend already selected
from storage.files import save_figure

METHODS = ("pca", "tsne", "isomap")
TITLES = {"pca": "PCA", "tsne": "t-SNE", "isomap": "Isomap"}


def subsample(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted seeded indices of ``min(size, n)`` of ``n`` items (all when size >= n)."""
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def embed(codes: np.ndarray, method: str, seed: int) -> np.ndarray:
    """2-D embedding of ``codes`` with scikit-learn."""
    if method == "pca":
        from sklearn.decomposition import PCA
        return PCA(2, random_state=seed).fit_transform(codes)
    if method == "tsne":
        from sklearn.manifold import TSNE
        perplexity = float(min(30, max(2, (len(codes) - 1) // 3)))
        return TSNE(2, perplexity=perplexity, init="pca", random_state=seed,
                    n_jobs=1).fit_transform(codes)
    if method == "isomap":
        from sklearn.manifold import Isomap
        return Isomap(n_neighbors=min(10, len(codes) - 1), n_components=2).fit_transform(codes)
    raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")


def scatter(points: np.ndarray, labels: np.ndarray, class_names: list, path: str,
            title: str, note: str, axis_name: str) -> str:
    """Scatter plot of a 2-D view coloured by class, with a legend of class names."""
    fig, ax = plt.subplots(figsize=(8, 6.2))
    cmap = plt.get_cmap("tab10")
    size = 4 if len(points) > 3000 else 8
    for c, name in enumerate(class_names):
        sel = labels == c
        if sel.any():
            ax.scatter(points[sel, 0], points[sel, 1], s=size, color=cmap(c % 10),
                       alpha=0.7, label=name, linewidths=0)
    ax.set_xlabel(f"{axis_name} 1")
    ax.set_ylabel(f"{axis_name} 2")
    ax.set_title(f"{title}\n{note}", fontsize=10)
    ax.legend(title="class", loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=3,
              fontsize=9)
    ax.grid(True, alpha=0.2)
    fig.tight_layout()
    return save_figure(fig, path)


def knn_accuracy(train_codes, y_train, test_codes, y_test, k: int = 5) -> float:
    """Accuracy of a k-nearest-neighbour classifier fit on train codes, scored on test codes."""
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=min(k, len(train_codes)))
    return float(knn.fit(train_codes, y_train).score(test_codes, y_test))


def silhouette(codes, labels, seed: int, max_samples: int = 10_000) -> float | None:
    """Silhouette score of the classes in code space (None with fewer than 2 classes)."""
    from sklearn.metrics import silhouette_score

    if len(np.unique(labels)) < 2 or len(codes) <= len(np.unique(labels)):
        return None
    sample = max_samples if len(codes) > max_samples else None
    return float(silhouette_score(codes, labels, sample_size=sample, random_state=seed))


def views(codes: np.ndarray, labels: np.ndarray, class_names: list, out: str, seed: int,
          max_points: int, dataset: str) -> dict:
    """Writes latent_pca.png, latent_tsne.png, latent_isomap.png; returns their numbers.

    PCA shows every code; t-SNE and Isomap a seeded subsample of ``max_points``
    (their cost grows faster than linearly). Trustworthiness (k=5) is computed on
    that same subsample for every view so the three are comparable.
    """
    import time

    from sklearn.manifold import trustworthiness

    sub = subsample(len(codes), max_points, seed)
    result = {"subsample": int(len(sub)), "codes": int(len(codes))}
    for method in METHODS:
        start = time.perf_counter()
        if method == "pca":
            points = embed(codes, "pca", seed)
            sub_points = points[sub]
            shown, shown_labels = points, labels
            note = f"all {len(codes)} test codes"
        else:
            sub_points = embed(codes[sub], method, seed)
            shown, shown_labels = sub_points, labels[sub]
            note = (f"seeded subsample of {len(sub)} of {len(codes)} test codes"
                    if len(sub) < len(codes) else f"all {len(codes)} test codes")
        trust = float(trustworthiness(codes[sub], sub_points, n_neighbors=min(5, len(sub) // 2 - 1)))
        seconds = time.perf_counter() - start
        scatter(shown, shown_labels, class_names, os.path.join(out, f"latent_{method}.png"),
                f"{TITLES[method]} of the CAE's {codes.shape[1]}-D codes ({dataset} test split)",
                f"{note}; trustworthiness {trust:.3f}", TITLES[method])
        result[method] = {"trustworthiness": trust, "seconds": seconds}
        print(f"{TITLES[method]}: trustworthiness {trust:.3f} ({seconds:.0f} s)", flush=True)
    return result
