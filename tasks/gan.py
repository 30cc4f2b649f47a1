"""`python main.py gan`: train the DCGAN end to end."""

from __future__ import annotations

import argparse
import os
import time

from data.arguments import add_data_arguments
from runtime.args import positive_float, positive_int
from storage.run_folder import add_output_arguments

HELP = "train the DCGAN: fixed-noise sample grid per epoch, generator/discriminator .keras"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from runtime.compute import add_compute_arguments

    add_data_arguments(parser)
    add_compute_arguments(parser)
    group = parser.add_argument_group("GAN")
    group.add_argument("--latent-dim", type=positive_int, default=100,
                       help="size of the generator's noise input (default 100)")
    group.add_argument("--width", type=positive_int, default=16,
                       help="width multiplier w: generator 6w/3w/w filters, discriminator "
                            "w/2w/4w; 64 is the report's 384/192/64 (default 16)")
    # Batch 64 and 10 epochs: FID 81 -> 40-47 in the reference features against
    # batch 128 and 5 epochs (benchmarks/results/gan_recipes.md).
    group.add_argument("--epochs", type=positive_int, default=10,
                       help="training epochs (default 10)")
    group.add_argument("--batch-size", type=positive_int, default=64,
                       help="images per step (default 64)")
    group.add_argument("--lr", type=positive_float, default=2e-4,
                       help="Adam learning rate of both networks (default 2e-4)")
    group.add_argument("--beta1", type=positive_float, default=0.5,
                       help="Adam beta_1 of both networks (default 0.5)")
    group.add_argument("--d-lr", type=positive_float, default=None,
                       help="the discriminator's learning rate if not --lr (two time-scale "
                            "update rule; default: --lr)")
    group.add_argument("--ema", type=ema_momentum, default=0.0,
                       help="momentum of an exponential moving average of the generator's "
                            "weights, saved as the generator; 0 keeps the last weights "
                            "(default 0)")
    group.add_argument("--spectral-norm", action="store_true",
                       help="spectral normalisation in the discriminator instead of its "
                            "batch norm (the generator is unchanged)")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                        help="Keras progress: 0 silent, 1 progress bar (default), "
                             "2 one line per epoch")
    add_output_arguments(parser, "gan")


def ema_momentum(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1)")
    return value


def iteration_curves(iterations: dict, path: str, title: str) -> str:
    import matplotlib.pyplot as plt
    import numpy as np

    from storage.files import save_figure

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for key, ax in (("d_loss", ax1), ("g_loss", ax1), ("d_real", ax2), ("d_fake", ax2)):
        values = np.asarray(iterations[key])
        label = {"d_loss": "discriminator loss", "g_loss": "generator loss",
                 "d_real": "mean D(x)", "d_fake": "mean D(G(z))"}[key]
        ax.plot(np.arange(1, len(values) + 1), values, lw=0.7, label=label)
    ax1.set_ylabel("loss (non-saturating)")
    ax2.set_ylabel("discriminator output")
    for ax in (ax1, ax2):
        ax.set_xlabel("iteration")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def train_gan(data, out: str, latent_dim: int = 100, width: int = 16, epochs: int = 10,
              batch_size: int = 64, lr: float = 2e-4, beta1: float = 0.5, seed: int = 0,
              verbose: int = 1, d_lr: float | None = None, ema: float = 0.0,
              spectral_norm: bool = False, callbacks=()) -> dict:
    """Trains a DCGAN; writes models, curves and sample grids into ``out``."""
    import keras

    from models.gan import (build_gan, default_optimizers, from_gan_range, to_gan_range,
                            use_generator_ema)
    from models.saving import save_model
    from plots.figures import image_grid
    from runtime.backend import backend_name, layer_seed
    from runtime.compute import describe
    from runtime.errors import check_losses_finite
    from storage.files import write_json
    from training.callbacks import GANMonitor

    gan = build_gan(latent_dim=latent_dim, width=width, seed=layer_seed(seed),
                    spectral_norm=spectral_norm)
    gan.compile(*default_optimizers(lr, beta1, d_lr=d_lr, ema=ema))
    monitor = GANMonitor(out, latent_dim, seed)
    start = time.perf_counter()
    history = gan.fit(to_gan_range(data.x_train), epochs=epochs, batch_size=batch_size,
                      verbose=verbose, callbacks=[monitor, keras.callbacks.TerminateOnNaN(),
                                                  *callbacks])
    wall = time.perf_counter() - start
    use_generator_ema(gan)  # the averaged weights, when kept, are the generator saved
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    check_losses_finite(hist, f"try a lower --lr than {lr:g}")

    save_model(gan.generator, os.path.join(out, "generator.keras"))
    save_model(gan.discriminator, os.path.join(out, "discriminator.keras"))
    write_json(os.path.join(out, "history.json"), {"epochs": hist,
                                                   "iterations": monitor.iterations})
    tag = f"width {width}, {backend_name()}"
    iteration_curves(monitor.iterations, os.path.join(out, "loss.png"),
                     f"DCGAN training per iteration ({tag})")
    image_grid(from_gan_range(gan.generator.predict(monitor.noise, verbose=0)),
               os.path.join(out, "samples.png"), f"DCGAN samples ({tag})")
    metrics = {
        "task": "gan", "dataset": data.name, "data_source": data.source,
        "backend": backend_name(), **describe(), "latent_dim": latent_dim, "width": width,
        "epochs": epochs, "iterations": int(keras.ops.convert_to_numpy(gan.g_optimizer.iterations)),
        "final_epoch": {k: v[-1] for k, v in hist.items()},
        "wall_time_s": wall, "train_images": int(len(data.x_train)),
        "batch_size": batch_size, "learning_rate": lr, "beta_1": beta1,
        "d_learning_rate": d_lr or lr, "ema": ema, "spectral_norm": spectral_norm,
        "generator_parameters": int(gan.generator.count_params()),
        "discriminator_parameters": int(gan.discriminator.count_params()),
    }
    write_json(os.path.join(out, "metrics.json"), metrics)
    return {**metrics, "model": gan}


def run(args) -> str:
    from data.arguments import load_data
    from runtime.backend import seed_everything
    from storage.run_folder import make_run_dir

    out = make_run_dir("gan", args.out, overwrite=args.overwrite)
    seed_everything(args.seed)
    data = load_data(args)
    metrics = train_gan(data, out, latent_dim=args.latent_dim, width=args.width,
                        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        beta1=args.beta1, seed=args.seed, verbose=args.verbose,
                        d_lr=args.d_lr, ema=args.ema, spectral_norm=args.spectral_norm)
    last = metrics["final_epoch"]
    print(f"last epoch: d_loss {last['d_loss']:.3f}, g_loss {last['g_loss']:.3f}, "
          f"D(x) {last['d_real']:.2f}, D(G(z)) {last['d_fake']:.2f}; "
          f"{metrics['epochs']} epochs in {metrics['wall_time_s']:.0f} s on "
          f"{metrics['backend']}")
    return out
