"""Latent-dimension sweep: one CAE per code size; test MSE and kNN accuracy against size."""

from __future__ import annotations

import os

import numpy as np

from plots.figures import plt
from storage.files import save_figure, write_json, write_text


def encode(encoder, images: np.ndarray) -> np.ndarray:
    return np.asarray(encoder.predict(images, batch_size=512, verbose=0))


def sweep(run, source, data, dims: list, out: str, verbose: int = 1, seed: int = 0) -> list:
    """Trains one CAE per latent size into ``out/latent_<d>``; writes sweep.{md,json,png}.

    ``run`` is the run's :class:`training.phases.PhasedRun` (each CAE is one of its
    phases: reused or continued on ``--resume``); ``source`` a
    :class:`training.cae_source.CAESource`: each CAE is trained with its CAE and
    training options, the latent size replaced; ``verbose`` and ``seed`` are as
    for :func:`training.cae.train_cae`.
    """
    from evaluation.metrics import mse, psnr
    from models.cae import split_cae
    from tasks.latent.views import knn_accuracy
    from training.phases import cae_phase, with_latent_dim

    rows = []
    for i, dim in enumerate(dims, start=1):
        model, _ = cae_phase(run, f"sweep_ld{dim}", i, data,
                             with_latent_dim(source.cae, dim), source.training,
                             os.path.join(out, f"latent_{dim}"), verbose=verbose, seed=seed)
        encoder = split_cae(model)[0]
        recon = np.asarray(model.predict(data.x_test, batch_size=512, verbose=0))
        acc = knn_accuracy(encode(encoder, data.x_train), data.y_train,
                           encode(encoder, data.x_test), data.y_test)
        rows.append({"latent_dim": dim, "test_mse": mse(recon, data.x_test),
                     "test_psnr_db": psnr(recon, data.x_test), "knn5_accuracy": acc})
        print(f"latent {dim}: test MSE {rows[-1]['test_mse']:.5f}, kNN accuracy {acc:.4f}",
              flush=True)
    write_json(os.path.join(out, "sweep.json"), rows)
    write_text(os.path.join(out, "sweep.md"), sweep_table(rows))
    sweep_plot(rows, os.path.join(out, "sweep.png"), data.name, source.training.epochs)
    return rows


def sweep_table(rows: list) -> str:
    lines = ["| latent dim | test MSE | test PSNR (dB) | kNN (k=5) accuracy |",
             "| ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['latent_dim']} | {r['test_mse']:.5f} | {r['test_psnr_db']:.2f} | "
              f"{r['knn5_accuracy']:.4f} |" for r in rows]
    return "\n".join(lines) + "\n"


def sweep_plot(rows: list, path: str, dataset: str, epochs: int) -> str:
    dims = [r["latent_dim"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(dims, [r["test_mse"] for r in rows], marker="o")
    ax1.set_ylabel("test reconstruction MSE")
    ax1.set_title("Reconstruction error")
    ax2.plot(dims, [r["knn5_accuracy"] for r in rows], marker="o", color="tab:green")
    ax2.set_ylabel("kNN (k=5) test accuracy on codes")
    ax2.set_title("Class information in the codes")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xticks(dims, [str(d) for d in dims])
        ax.set_xlabel("latent dimension")
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"Latent-dimension sweep: one CAE per size ({dataset}, at most {epochs} epochs)")
    fig.tight_layout()
    return save_figure(fig, path)
