#!/usr/bin/env python3
"""Images/s of a GAN and a VAE training step per Keras backend vs plain PyTorch.

Each Keras backend runs in its own process (the backend is fixed at import):
``model.fit`` on real Fashion-MNIST images (scikit-learn's digits where the
Debian package is missing), ``--warmup`` steps first (compilation), then
``--steps`` timed steps. The reference is a hand-written PyTorch loop over the
same networks, losses and optimizers. Ratio = Keras images/s / PyTorch images/s
(target >= 1.0). Writes benchmarks/results/train_step_speed.json and prints a
table. Timings on a shared machine are noisy: compare within one run.

    python benchmarks/train_step_speed.py --steps 20 --warmup 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKENDS = ("tensorflow", "jax", "torch")


def real_images(model_name: str, n: int):
    """``n`` real training images, shaped for the model: (n, 28, 28, 1) in [0, 1]
    for the VAE, padded to (n, 32, 32, 1) in [-1, 1] for the GAN."""
    sys.path.insert(0, ROOT)
    from data.datasets import load_dataset
    from cli.errors import UserError

    try:
        x = load_dataset("fashion_mnist", train_limit=n).x_train
    except UserError:
        x = load_dataset("digits").x_train
    while len(x) < n:  # the digits set is small: repeat it
        x = np.concatenate([x, x])[:n]
    x = x[:n]
    if model_name == "gan":
        x = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0))) * 2.0 - 1.0
    return x.astype("float32")


def keras_speed(model_name: str, steps: int, warmup: int, batch: int, width: int) -> float:
    """Images/s of ``model.fit`` on the current backend (call in a child process)."""
    sys.path.insert(0, ROOT)
    from startup import start
    # As main.py: the process-wide settings (none with UNSUPERVISED28_ACCEL=0).
    start([], os.environ.get("KERAS_BACKEND", "tensorflow"))
    import keras
    import numpy as np

    from accel import accelerate
    from models.gan import build_gan, default_optimizers
    from models.vae import build_vae

    keras.utils.set_random_seed(0)
    if model_name == "gan":
        model = build_gan(latent_dim=100, width=width, seed=0)
        model.compile(*default_optimizers())
    else:
        # Bernoulli, the plain loop's binary cross-entropy (the same cost as the default).
        model = build_vae(latent_dim=2, width=width, seed=0, likelihood="bernoulli")
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
    accelerate(model)  # as the training code: stock Keras with acceleration off
    x = real_images(model_name, batch * max(steps, warmup, 1))
    if warmup:
        model.fit(x, batch_size=batch, steps_per_epoch=warmup, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(x, batch_size=batch, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * batch / (time.perf_counter() - start)


def torch_speed(model_name: str, steps: int, warmup: int, batch: int, width: int) -> float:
    """Images/s of a plain PyTorch loop over the same networks and losses."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.manual_seed(0)
    w = width
    if model_name == "gan":
        latent = 100
        gen = nn.Sequential(
            nn.Linear(latent, 16 * 6 * w, bias=False), nn.Unflatten(1, (6 * w, 4, 4)),
            nn.BatchNorm2d(6 * w), nn.ReLU(),
            nn.ConvTranspose2d(6 * w, 3 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(3 * w),
            nn.ReLU(),
            nn.ConvTranspose2d(3 * w, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
            nn.ConvTranspose2d(w, 1, 4, 2, 1), nn.Tanh())
        disc = nn.Sequential(
            nn.Conv2d(1, w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(4 * w),
            nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(16 * 4 * w, 1))
        d_opt = torch.optim.Adam(disc.parameters(), 2e-4, betas=(0.5, 0.999))
        g_opt = torch.optim.Adam(gen.parameters(), 2e-4, betas=(0.5, 0.999))
        def step(x):
            fake = gen(torch.randn(batch, latent)).detach()
            d_loss = F.softplus(-disc(x)).mean() + F.softplus(disc(fake)).mean()
            d_opt.zero_grad()
            d_loss.backward()
            d_opt.step()
            g_loss = F.softplus(-disc(gen(torch.randn(batch, latent)))).mean()
            g_opt.zero_grad()
            g_loss.backward()
            g_opt.step()
    else:
        sys.path.insert(0, ROOT)
        from configs.vae import VAEConfig

        latent, hidden = 2, VAEConfig().dense_units  # the Keras model's default
        enc = nn.Sequential(nn.Conv2d(1, w, 3, 2, 1), nn.ReLU(), nn.Conv2d(w, 2 * w, 3, 2, 1),
                            nn.ReLU(), nn.Flatten(), nn.Linear(49 * 2 * w, hidden), nn.ReLU(),
                            nn.Linear(hidden, 2 * latent))
        dec = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(),
                            nn.Linear(hidden, 49 * 2 * w), nn.ReLU(),
                            nn.Unflatten(1, (2 * w, 7, 7)),
                            nn.ConvTranspose2d(2 * w, 2 * w, 3, 2, 1, 1), nn.ReLU(),
                            nn.ConvTranspose2d(2 * w, w, 3, 2, 1, 1), nn.ReLU(),
                            nn.Conv2d(w, 1, 3, 1, 1), nn.Sigmoid())
        opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], 1e-3)
        def step(x):
            z_mean, z_log_var = enc(x).chunk(2, dim=1)
            z = z_mean + torch.exp(0.5 * z_log_var) * torch.randn_like(z_mean)
            recon = dec(z)
            rec = F.binary_cross_entropy(recon, x, reduction="none").sum((1, 2, 3)).mean()
            kl = (-0.5 * (1 + z_log_var - z_mean ** 2 - z_log_var.exp())).sum(1).mean()
            opt.zero_grad()
            (rec + kl).backward()
            opt.step()

    images = torch.from_numpy(np.ascontiguousarray(
        real_images(model_name, batch * max(steps, warmup, 1)).transpose(0, 3, 1, 2)))
    batches = [images[i:i + batch] for i in range(0, len(images) - batch + 1, batch)]
    for i in range(warmup):
        step(batches[i % len(batches)])
    start = time.perf_counter()
    for i in range(steps):
        step(batches[i % len(batches)])
    return steps * batch / (time.perf_counter() - start)


def child(args) -> None:
    fn = torch_speed if args.child == "pytorch" else keras_speed
    print(json.dumps(fn(args.model, args.steps, args.warmup, args.batch_size, args.width)))


def measure(runner: str, args) -> float:
    env = dict(os.environ)
    if runner != "pytorch":
        env["KERAS_BACKEND"] = runner
    cmd = [sys.executable, __file__, "--child", runner, "--model", args.model_now,
           "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--batch-size", str(args.batch_size), "--width", str(args.width_now)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"{runner} {args.model_now} failed:\n{result.stderr[-2000:]}")
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed steps first, compilation included (default 3)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--gan-width", type=int, default=16)
    parser.add_argument("--vae-width", type=int, default=32)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results",
                                                      "train_step_speed.json"))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--model", default="gan", help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, default=16, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    rows = []
    for model, width in (("gan", args.gan_width), ("vae", args.vae_width)):
        args.model_now, args.width_now = model, width
        reference = measure("pytorch", args)
        for backend in args.backends.split(","):
            speed = measure(backend, args)
            rows.append({"model": model, "width": width, "backend": backend,
                         "images_per_s": speed, "pytorch_images_per_s": reference,
                         "ratio": speed / reference})
            print(f"{model:4s} {backend:11s} {speed:9.0f} img/s   plain PyTorch "
                  f"{reference:9.0f} img/s   ratio {speed / reference:5.2f}", flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"settings": {k: getattr(args, k) for k in
                                ("steps", "warmup", "batch_size", "gan_width", "vae_width")},
                   "cpu_count": os.cpu_count(), "results": rows}, f, indent=2)
    os.replace(tmp, args.out)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
