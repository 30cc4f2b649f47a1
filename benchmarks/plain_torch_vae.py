"""The default VAE of ``main.py vae`` as a plain PyTorch script: the peer a user
would write, that ``benchmarks/whole_process.py`` times a whole ``main.py vae``
process against.

Same networks as ``build_vae(**VAEConfig())`` (latent 16, width 32, dense 512):
two stride-2 convolutions (28 -> 14 -> 7), dense 512, the code's mean and
log-variance; dense 512, dense 7*7*64, two stride-2 transposed convolutions
(7 -> 14 -> 28) and a 3x3 sigmoid convolution; Glorot-uniform kernels and zero
biases as Keras initialises them.
The same loss: the calibrated Gaussian likelihood (each image's variance its
mean squared error) plus 0.25 x KL, Adam 1e-3, batch 128, shuffled each epoch.

It does the job of ``main.py vae``: train with a validation pass
per epoch, the test loss, the test ELBO under both likelihoods, the model saved,
and the same four figures (loss curves, reconstructions, 64 prior samples, the
latent means of 5 000 test images on their first two PCA axes).

Run alone (prints the metrics as JSON):
``python benchmarks/plain_torch_vae.py --epochs 1 --out runs/plain_vae``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile

import numpy as np

MIN_VARIANCE = 1e-6  # as models/vae.py


def build_plain_vae(latent_dim: int = 16, width: int = 32, dense_units: int = 512):
    """``(encoder, decoder)``, ``torch.nn.Sequential`` models on NCHW images; the
    encoder outputs the code's mean and log-variance side by side."""
    import torch
    from torch import nn

    w, hidden = width, dense_units
    encoder = nn.Sequential(
        nn.Conv2d(1, w, 3, 2, 1), nn.ReLU(),           # 28 -> 14
        nn.Conv2d(w, 2 * w, 3, 2, 1), nn.ReLU(),       # 14 -> 7
        nn.Flatten(), nn.Linear(49 * 2 * w, hidden), nn.ReLU(),
        nn.Linear(hidden, 2 * latent_dim))
    decoder = nn.Sequential(
        nn.Linear(latent_dim, hidden), nn.ReLU(),
        nn.Linear(hidden, 49 * 2 * w), nn.ReLU(), nn.Unflatten(1, (2 * w, 7, 7)),
        nn.ConvTranspose2d(2 * w, 2 * w, 3, 2, 1, 1), nn.ReLU(),   # 7 -> 14
        nn.ConvTranspose2d(2 * w, w, 3, 2, 1, 1), nn.ReLU(),       # 14 -> 28
        nn.Conv2d(w, 1, 3, 1, 1), nn.Sigmoid())
    for module in [*encoder.modules(), *decoder.modules()]:
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    with torch.no_grad():  # the output shape must be the Keras model's
        assert decoder(encoder(torch.zeros(1, 1, 28, 28)).chunk(2, 1)[0]).shape == (1, 1, 28, 28)
    return encoder, decoder


def gaussian_nll(x, recon):
    """Per-image negative log-density under the calibrated Gaussian (nats)."""
    import torch

    mse = (x - recon).square().mean((1, 2, 3))
    variance = mse + MIN_VARIANCE
    return 0.5 * x[0].numel() * (torch.log(2 * math.pi * variance) + mse / variance)


def bernoulli_nll(x, recon):
    from torch.nn import functional as F

    return F.binary_cross_entropy(recon.clamp(1e-7, 1 - 1e-7), x,
                                  reduction="none").sum((1, 2, 3))


def figures(history, x_test, y_test, class_names, encoder, decoder, out, seed):
    """The four figures of ``main.py vae``, written into ``out``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from sklearn.decomposition import PCA

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, values in history.items():
        ax.plot(range(1, len(values) + 1), values, label=name)
    ax.set_xlabel("epoch")
    ax.legend()
    fig.savefig(os.path.join(out, "loss.png"), dpi=100)
    plt.close(fig)

    with torch.no_grad():
        idx = np.linspace(0, len(x_test) - 1, 10).astype(int)
        recon = decoder(encoder(x_test[idx]).chunk(2, 1)[0])
        fig, axes = plt.subplots(2, 10, figsize=(12, 2.8))
        for j in range(10):
            for row, images in enumerate((x_test[idx], recon)):
                axes[row, j].imshow(images[j, 0].numpy(), cmap="gray", vmin=0, vmax=1)
                axes[row, j].axis("off")
            axes[0, j].set_title(class_names[int(y_test[idx[j]])], fontsize=8)
        fig.savefig(os.path.join(out, "reconstructions.png"), dpi=100)
        plt.close(fig)

        z = torch.from_numpy(np.random.default_rng(seed).standard_normal(
            (64, decoder[0].in_features)).astype("float32"))
        samples = decoder(z)
        fig, axes = plt.subplots(8, 8, figsize=(8, 8))
        for ax, image in zip(axes.flat, samples):
            ax.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=1)
            ax.axis("off")
        fig.savefig(os.path.join(out, "samples.png"), dpi=100)
        plt.close(fig)

        n = min(5000, len(x_test))
        means = torch.cat([encoder(x_test[i:i + 512]).chunk(2, 1)[0]
                           for i in range(0, n, 512)])[:n].numpy()
    points = PCA(2, random_state=0).fit_transform(means)
    fig, ax = plt.subplots(figsize=(7.5, 6))
    for c, name in enumerate(class_names):
        sel = y_test[:n] == c
        ax.scatter(points[sel, 0], points[sel, 1], s=3, alpha=0.6, label=name)
    ax.legend(markerscale=4, fontsize=8)
    fig.savefig(os.path.join(out, "latent_scatter.png"), dpi=100)
    plt.close(fig)


def whole_process(data, epochs: int, batch_size: int = 128, lr: float = 1e-3,
                  beta: float = 0.25, seed: int = 0, out: str | None = None) -> dict:
    """What ``main.py vae`` does, as a plain script; returns its metrics."""
    import torch

    torch.manual_seed(seed)
    encoder, decoder = build_plain_vae()
    params = [*encoder.parameters(), *decoder.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr)
    to_nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa: E731
    x, x_val, x_test = to_nchw(data.x_train), to_nchw(data.x_val), to_nchw(data.x_test)
    generator = torch.Generator().manual_seed(seed)

    def losses(images):
        mean, log_var = encoder(images).chunk(2, dim=1)
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        rec = gaussian_nll(images, decoder(z)).mean()
        kl = (-0.5 * (1 + log_var - mean.square() - log_var.exp())).sum(1).mean()
        return rec, kl

    def evaluate(images) -> float:
        encoder.eval(), decoder.eval()
        with torch.no_grad():
            total = 0.0
            for i in range(0, len(images), 512):
                rec, kl = losses(images[i:i + 512])
                total += float(rec + beta * kl) * len(images[i:i + 512])
        encoder.train(), decoder.train()
        return total / len(images)

    history = {"loss": [], "val_loss": []}
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        total, count = 0.0, 0
        for i in range(0, len(x), batch_size):
            batch = x[order[i:i + batch_size]]
            rec, kl = losses(batch)
            loss = rec + beta * kl
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, count = total + float(loss.detach()) * len(batch), count + len(batch)
        history["loss"].append(total / count)
        history["val_loss"].append(evaluate(x_val))
    metrics = {"test_loss": evaluate(x_test), "history": history}
    with torch.no_grad():  # the test ELBO under both likelihoods, one sample each
        mean, log_var = torch.cat([encoder(x_test[i:i + 512])
                                   for i in range(0, len(x_test), 512)]).chunk(2, 1)
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        recon = torch.cat([decoder(z[i:i + 512]) for i in range(0, len(z), 512)])
        kl = float((-0.5 * (1 + log_var - mean.square() - log_var.exp())).sum(1).mean())
        for name, nll in (("gaussian", gaussian_nll), ("bernoulli", bernoulli_nll)):
            metrics[f"test_elbo_{name}_nats"] = -(float(nll(x_test, recon).mean()) + kl)
        metrics["test_mse"] = float((x_test - recon).square().mean())
    with tempfile.TemporaryDirectory() as scratch:
        out = out or scratch
        os.makedirs(out, exist_ok=True)
        torch.save({"encoder": encoder.state_dict(), "decoder": decoder.state_dict()},
                   os.path.join(out, "vae.pt"))
        figures(history, x_test, data.y_test, data.class_names, encoder, decoder, out, seed)
    return metrics


def main(argv=None) -> int:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from data.datasets import load_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--out", default=None,
                        help="folder for the model and figures (default: a temporary one)")
    args = parser.parse_args(argv)
    if not 1 <= args.epochs <= 1000:
        parser.exit(2, f"--epochs must be 1 to 1000. Received: {args.epochs}\n")
    data = load_dataset(args.dataset, train_limit=args.train_size)
    print(json.dumps(whole_process(data, args.epochs, out=args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
