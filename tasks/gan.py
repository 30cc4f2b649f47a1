"""`python main.py gan`: train the DCGAN end to end."""

from __future__ import annotations

import dataclasses
import os
import time

from configs.gan import GANConfig, GANTraining
from data.arguments import DataConfig
from runtime.compute import ComputeConfig
from runtime.options import add_config, from_args, section, to_dict
from storage.run_folder import OutputConfig, verbose_option

HELP = "train the DCGAN: fixed-noise sample grid per epoch, generator/discriminator .keras"


@dataclasses.dataclass
class GanTaskConfig:
    """One ``gan`` run."""

    data: DataConfig = section(DataConfig, "data")
    compute: ComputeConfig = section(ComputeConfig, "compute")
    gan: GANConfig = section(GANConfig, "GAN")
    training: GANTraining = section(GANTraining, "GAN")
    verbose: int = verbose_option()
    output: OutputConfig = section(OutputConfig, "output")


def add_arguments(parser) -> None:
    add_config(parser, GanTaskConfig, task="gan")


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


def train_gan(data, out: str, config: GanTaskConfig | None = None, callbacks=()) -> dict:
    """Trains the DCGAN of ``config`` (default: the defaults); writes models,
    curves, sample grids and metrics (with ``config``) into ``out``; returns the
    metrics and the ``model``. ``callbacks``: more Keras callbacks."""
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

    config = config or GanTaskConfig()
    model, training, seed = config.gan, config.training, config.data.seed
    gan = build_gan(latent_dim=model.latent_dim, width=model.width, seed=layer_seed(seed),
                    spectral_norm=model.spectral_norm)
    gan.compile(*default_optimizers(training.lr, training.beta1, d_lr=training.d_lr,
                                    ema=training.ema))
    monitor = GANMonitor(out, model.latent_dim, seed)
    start = time.perf_counter()
    history = gan.fit(to_gan_range(data.x_train), epochs=training.epochs,
                      batch_size=training.batch_size, verbose=config.verbose,
                      callbacks=[monitor, keras.callbacks.TerminateOnNaN(), *callbacks])
    wall = time.perf_counter() - start
    use_generator_ema(gan)  # the averaged weights, when kept, are the generator saved
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    check_losses_finite(hist, f"try a lower --lr than {training.lr:g}")

    save_model(gan.generator, os.path.join(out, "generator.keras"))
    save_model(gan.discriminator, os.path.join(out, "discriminator.keras"))
    write_json(os.path.join(out, "history.json"), {"epochs": hist,
                                                   "iterations": monitor.iterations})
    tag = f"width {model.width}, {backend_name()}"
    iteration_curves(monitor.iterations, os.path.join(out, "loss.png"),
                     f"DCGAN training per iteration ({tag})")
    image_grid(from_gan_range(gan.generator.predict(monitor.noise, verbose=0)),
               os.path.join(out, "samples.png"), f"DCGAN samples ({tag})")
    metrics = {
        "task": "gan", "dataset": data.name, "data_source": data.source,
        "backend": backend_name(), **describe(), "latent_dim": model.latent_dim,
        "width": model.width, "epochs": training.epochs,
        "iterations": int(keras.ops.convert_to_numpy(gan.g_optimizer.iterations)),
        "final_epoch": {k: v[-1] for k, v in hist.items()},
        "wall_time_s": wall, "train_images": int(len(data.x_train)),
        "batch_size": training.batch_size, "learning_rate": training.lr,
        "beta_1": training.beta1, "d_learning_rate": training.d_lr or training.lr,
        "ema": training.ema, "spectral_norm": model.spectral_norm,
        "generator_parameters": int(gan.generator.count_params()),
        "discriminator_parameters": int(gan.discriminator.count_params()),
        "config": to_dict(config),
    }
    write_json(os.path.join(out, "metrics.json"), metrics)
    return {**metrics, "model": gan}


CONFIG = GanTaskConfig


def run(args) -> str:
    return train(from_args(GanTaskConfig, args))


def train(config: GanTaskConfig) -> str:
    """Trains the DCGAN of ``config`` into its run folder, which it returns."""
    from data.arguments import load_data
    from runtime.backend import seed_everything
    from storage.run_folder import make_run_dir

    out = make_run_dir("gan", config.output.out, overwrite=config.output.overwrite)
    seed_everything(config.data.seed)
    data = load_data(config.data)
    metrics = train_gan(data, out, config)
    last = metrics["final_epoch"]
    print(f"last epoch: d_loss {last['d_loss']:.3f}, g_loss {last['g_loss']:.3f}, "
          f"D(x) {last['d_real']:.2f}, D(G(z)) {last['d_fake']:.2f}; "
          f"{metrics['epochs']} epochs in {metrics['wall_time_s']:.0f} s on "
          f"{metrics['backend']}")
    return out
