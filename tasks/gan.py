"""`python main.py gan`: train the DCGAN end to end."""

from __future__ import annotations

import dataclasses
import os

from configs.gan import GANConfig
from data.arguments import DataConfig
from runtime.compute import ComputeConfig
from cli.options import add_config, from_args, option, section, to_dict
from storage.run_folder import OutputConfig, verbose_option
from training.gan import GANTraining

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
    resume: bool = option(
        False, action="store_true",
        help="continue the interrupted run in --out (an existing folder) from its last "
             "finished epoch")


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


def gan_figures(gan, out: str, history: dict, noise, width: int) -> None:
    """The ``gan`` task's figures beside the per-epoch grids: the per-iteration
    curves and the final generator's samples of the grids' fixed noise."""
    from models.gan import from_gan_range
    from plots.figures import image_grid
    from runtime.backend import backend_name

    tag = f"width {width}, {backend_name()}"
    iteration_curves(history["iterations"], os.path.join(out, "loss.png"),
                     f"DCGAN training per iteration ({tag})")
    image_grid(from_gan_range(gan.generator.predict(noise, verbose=0)),
               os.path.join(out, "samples.png"), f"DCGAN samples ({tag})")


CONFIG = GanTaskConfig


def run(args) -> str:
    return train(from_args(GanTaskConfig, args))


def train(config: GanTaskConfig) -> str:
    """Trains the DCGAN of ``config`` into its run folder, which it returns."""
    from data.arguments import load_data
    from runtime.backend import seed_everything
    from training.gan import train_gan
    from training.resume import run_folder

    out = run_folder("gan", config.output.out, config.resume, config.output.overwrite)
    seed_everything(config.data.seed)
    data = load_data(config.data)
    seed, width = config.data.seed, config.gan.width
    _, metrics = train_gan(
        data, config.gan, out, config.training, resume=config.resume, verbose=config.verbose,
        seed=seed, run_config=to_dict(config),
        figures=lambda gan, history, noise: gan_figures(gan, out, history, noise, width))
    last = metrics["final_epoch"]
    print(f"last epoch: d_loss {last['d_loss']:.3f}, g_loss {last['g_loss']:.3f}, "
          f"D(x) {last['d_real']:.2f}, D(G(z)) {last['d_fake']:.2f}; "
          f"{metrics['epochs']} epochs in {metrics['wall_time_s']:.0f} s on "
          f"{metrics['backend']}")
    return out
