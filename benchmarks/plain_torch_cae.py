"""The CAE of ``models/cae.py`` as a plain PyTorch training loop: the reference
the Keras backends are measured against in ``cae_throughput.py``.

Same layers and widths as ``build_cae(CAEConfig())``: three stride-2
convolutions (28 -> 14 -> 7 -> 3), dense 256, code, dense 256, dense 3*3*128,
three transposed convolutions (3 -> 7 -> 14 -> 28) with a sigmoid, MSE, Adam,
Glorot-uniform kernels and zero biases as Keras initialises them. Keras's
'same' padding with stride 2 pads one pixel on the bottom/right only; PyTorch
pads symmetrically, so ``padding=1`` gives the same output sizes with a
half-pixel shift: the same amount of work, which is what is measured here.

Run alone: ``python benchmarks/plain_torch_cae.py --train-size 6000 --epochs 3``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def build_plain_cae(conv_filters=(32, 64, 128), dense_units=256, latent_dim=10):
    """The CAE as a ``torch.nn.Sequential`` on NCHW images."""
    import torch
    from torch import nn

    f1, f2, f3 = conv_filters
    model = nn.Sequential(
        # encoder
        nn.Conv2d(1, f1, 3, stride=2, padding=1), nn.ReLU(),     # 28 -> 14 ('same')
        nn.Conv2d(f1, f2, 3, stride=2, padding=1), nn.ReLU(),    # 14 -> 7 ('same')
        nn.Conv2d(f2, f3, 3, stride=2, padding=0), nn.ReLU(),    # 7 -> 3 ('valid')
        nn.Flatten(),
        nn.Linear(3 * 3 * f3, dense_units), nn.ReLU(),
        nn.Linear(dense_units, latent_dim),
        # decoder
        nn.Linear(latent_dim, dense_units), nn.ReLU(),
        nn.Linear(dense_units, 3 * 3 * f3), nn.ReLU(),
        nn.Unflatten(1, (f3, 3, 3)),
        nn.ConvTranspose2d(f3, f2, 3, stride=2, padding=0), nn.ReLU(),  # 3 -> 7 ('valid')
        nn.ConvTranspose2d(f2, f1, 3, stride=2, padding=1, output_padding=1),  # 7 -> 14
        nn.ReLU(),
        nn.ConvTranspose2d(f1, 1, 3, stride=2, padding=1, output_padding=1),   # 14 -> 28
        nn.Sigmoid(),
    )
    for module in model.modules():  # Keras's defaults: glorot_uniform kernels, zero biases
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    with torch.no_grad():  # the output shape must be the Keras model's
        assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 1, 28, 28)
    return model


def train_plain(x_train: np.ndarray, epochs: int, batch_size: int = 256, lr: float = 1e-3,
                seed: int = 0, cpu_times: list | None = None) -> list:
    """Trains the plain CAE on ``x_train`` (N, 28, 28, 1) float32 with a shuffled
    minibatch loop, as Keras ``fit`` does; returns the wall time of each epoch (s)
    and appends the process CPU time of each epoch to ``cpu_times`` if given."""
    import torch

    torch.manual_seed(seed)
    model = build_plain_cae()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.MSELoss()
    # NHWC -> NCHW once, like a Dataset kept in memory as a tensor.
    x = torch.from_numpy(np.ascontiguousarray(x_train.transpose(0, 3, 1, 2)))
    n = len(x)
    generator = torch.Generator().manual_seed(seed)
    times = []
    model.train()
    for _ in range(epochs):
        start, cpu_start = time.perf_counter(), time.process_time()
        order = torch.randperm(n, generator=generator)
        for i in range(0, n, batch_size):
            batch = x[order[i:i + batch_size]]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(batch), batch)
            loss.backward()
            optimizer.step()
        float(loss.detach())  # waits for the last step
        times.append(time.perf_counter() - start)
        if cpu_times is not None:
            cpu_times.append(time.process_time() - cpu_start)
    return times


def whole_process(data, epochs: int, batch_size: int, lr: float, seed: int = 0) -> dict:
    """What ``main.py cae`` does, as a plain loop: train with a validation pass per
    epoch, then the test MSE. The reference of ``benchmarks/whole_process.py``."""
    import torch

    torch.manual_seed(seed)
    model = build_plain_cae()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.MSELoss()
    to_nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa: E731
    x, x_val, x_test = to_nchw(data.x_train), to_nchw(data.x_val), to_nchw(data.x_test)
    generator = torch.Generator().manual_seed(seed)

    def evaluate(images) -> float:
        model.eval()
        with torch.no_grad():
            total = sum(float(loss_fn(model(images[i:i + 512]), images[i:i + 512]))
                        * len(images[i:i + 512]) for i in range(0, len(images), 512))
        model.train()
        return total / len(images)

    val = []
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), batch_size):
            batch = x[order[i:i + batch_size]]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(batch), batch).backward()
            optimizer.step()
        val.append(evaluate(x_val))
    return {"val_mse": val, "test_mse": evaluate(x_test)}


def main(argv=None) -> int:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from data.datasets import load_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--whole-process", action="store_true",
                        help="train with validation and test MSE as main.py cae does, "
                             "print JSON (the reference of whole_process.py)")
    args = parser.parse_args(argv)
    data = load_dataset(args.dataset, train_limit=args.train_size)
    if args.whole_process:
        import json
        print(json.dumps(whole_process(data, args.epochs, args.batch_size, args.lr)))
        return 0
    times = train_plain(data.x_train, args.epochs, args.batch_size, args.lr)
    for epoch, t in enumerate(times, 1):
        print(f"epoch {epoch}: {t:.2f} s, {len(data.x_train) / t:.0f} images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
