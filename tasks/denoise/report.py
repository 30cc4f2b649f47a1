"""The denoising study's outputs: a markdown table, a bar chart, example rows per noise."""

from __future__ import annotations

import numpy as np

from plots.figures import image_rows, plt
from storage.files import save_figure


def markdown_table(rows: list, dataset: str) -> str:
    """One table per latent dimension: MSE and PSNR per noise for each model."""
    lines = []
    for dim in sorted({r["latent_dim"] for r in rows}):
        lines += [f"### {dataset} test split, latent dimension {dim}", "",
                  "| noise | noisy input MSE | plain CAE MSE | denoising CAE MSE | "
                  "plain CAE PSNR (dB) | denoising CAE PSNR (dB) | denoising better |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | :---: |"]
        for r in (r for r in rows if r["latent_dim"] == dim):
            lines.append(f"| {r['label']} | {r['input_mse']:.4f} | {r['plain_mse']:.4f} | "
                         f"{r['denoising_mse']:.4f} | {r['plain_psnr_db']:.2f} | "
                         f"{r['denoising_psnr_db']:.2f} | "
                         f"{'yes' if r['denoising_better'] else 'NO'} |")
        lines.append("")
    return "\n".join(lines)


def mse_bars(rows: list, path: str, dim: int, dataset: str) -> str:
    """Grouped bars: test MSE per noise for the noisy input, the plain and the denoising CAE."""
    rows = [r for r in rows if r["latent_dim"] == dim]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(7, 1.0 * len(rows) + 2), 4.8))
    for k, (key, name) in enumerate([("input_mse", "noisy input (no model)"),
                                     ("plain_mse", "plain CAE"),
                                     ("denoising_mse", "denoising CAE")]):
        ax.bar(x + (k - 1) * 0.27, [r[key] for r in rows], width=0.27, label=name)
    ax.set_xticks(x, [r["label"] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("MSE against the clean test image (log scale)")
    ax.set_xlabel("noise applied to the test images")
    ax.set_title(f"Denoising study, {dataset} test split, latent dimension {dim}")
    ax.legend()
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def example_rows(noisy, plain, denoised, clean, titles: list, row: dict, path: str) -> str:
    """Rows noisy / plain CAE / denoising CAE / clean for one noise."""
    return image_rows(
        [noisy, plain, denoised, clean],
        ["noisy input", "plain CAE", "denoising\nCAE", "clean"], path,
        f"{row['label']} (latent {row['latent_dim']}): test MSE plain CAE "
        f"{row['plain_mse']:.4f}, denoising CAE {row['denoising_mse']:.4f}",
        col_titles=titles)
