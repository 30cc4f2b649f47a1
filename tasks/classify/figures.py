"""Figures of the `classify` task: confusion matrix, learning curves, label efficiency."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from storage.files import save_figure  # noqa: E402

LABELS = {"frozen": "frozen encoder + head", "fine_tuned": "fine-tuned encoder",
          "baseline": "supervised CNN baseline",
          "semi_supervised": "semi-supervised (labelled + unlabelled)"}
COLORS = {"frozen": "tab:blue", "fine_tuned": "tab:orange", "baseline": "tab:green",
          "semi_supervised": "tab:red"}


def confusion_matrix_figure(y_true, y_pred, class_names: list, path: str, title: str) -> str:
    """scikit-learn's ConfusionMatrixDisplay with the class names on both axes."""
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, labels=list(range(len(class_names))), display_labels=class_names,
        ax=ax, cmap="Blues", xticks_rotation=45, colorbar=True, values_format="d")
    for text in ax.texts:
        text.set_fontsize(8)
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)


def learning_curves_figure(records: dict, path: str, title: str) -> str:
    """Validation accuracy against epoch (left) and wall-clock seconds (right).

    The fine-tuned curve continues the frozen one: its epochs and seconds
    start where the frozen phase ended.
    """
    fig, (ax_e, ax_t) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for key, rec in records.items():
        acc = 100 * np.asarray(rec["val_accuracy"])
        epochs = rec.get("epoch_offset", 0) + np.arange(1, len(acc) + 1)
        style = dict(color=COLORS.get(key), marker="o", ms=3, label=LABELS.get(key, key))
        ax_e.plot(epochs, acc, **style)
        ax_t.plot(rec["seconds"], acc, **style)
    ax_e.set_xlabel("epoch (fine-tuning continues after the frozen phase)")
    ax_e.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs only
    ax_t.set_xlabel("wall-clock seconds of training (fine-tuning after frozen)")
    ax_e.set_ylabel("validation accuracy (%)")
    for ax in (ax_e, ax_t):
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def label_efficiency_figure(rows: list, path: str, title: str) -> str:
    """Test accuracy against the number of training labels (log scale), one line per
    model; where a row has ``<model>_std`` (several seeds), bars of one standard
    deviation."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for key in LABELS:
        pts = sorted((r["labels"], 100 * r[key], 100 * (r.get(f"{key}_std") or 0.0))
                     for r in rows if r.get(key) is not None)
        if pts:
            n, acc, std = zip(*pts)
            ax.errorbar(n, acc, yerr=std, color=COLORS[key], marker="o", capsize=3,
                        label=LABELS[key])
    fraction_of = {r["labels"]: r["fraction"] for r in rows}
    ticks = sorted(fraction_of)
    ax.set_xscale("log")
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{n:,}\n({100 * fraction_of[n]:.3g}%)" for n in ticks])
    ax.minorticks_off()
    ax.set_xlabel("labelled training images (fraction of the training split)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)
