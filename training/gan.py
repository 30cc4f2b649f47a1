"""Training the DCGAN: how (:class:`GANTraining`), and one training run that writes
the generator, the discriminator, the history and the metrics into a run folder,
resumable from its backup."""

from __future__ import annotations

import dataclasses
import os
import time

from configs import checks
from cli.args import positive_float, positive_int, rate
from cli.options import option
from training.resume import end_backup, start_backup


def ema_momentum(text: str) -> float:
    """argparse type: a moving-average momentum in [0, 1) (0: no average)."""
    return rate(text)


@dataclasses.dataclass
class GANTraining:
    """How a DCGAN is trained: Adam for each network, optionally an average of
    the generator's weights."""

    # Batch 64 and 10 epochs: FID 81 -> 40-47 in the reference features against
    # batch 128 and 5 epochs (benchmarks/results/gan_recipes.md).
    epochs: int = option(10, type=positive_int, help="training epochs")
    batch_size: int = option(64, type=positive_int, help="images per step")
    lr: float = option(2e-4, type=positive_float, help="Adam learning rate of both networks")
    beta1: float = option(0.5, type=positive_float, help="Adam beta_1 of both networks")
    d_lr: float | None = option(
        None, type=positive_float, default_help="--lr",
        help="the discriminator's learning rate, to train it faster or slower than the "
             "generator (two time-scale update rule)")
    ema: float = option(
        0.0, type=ema_momentum,
        help="momentum of an exponential moving average of the generator's weights, saved "
             "as the generator; 0 keeps the last weights")

    def __post_init__(self):
        checks.positive_ints(self, ("epochs", "batch_size"))
        checks.positive_numbers(self, ("lr", "beta1"))
        if self.d_lr is not None:
            checks.positive_numbers(self, ("d_lr",))
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1) (0: no average). Received: ema={self.ema}")


def train_gan(data, config, out: str, training: GANTraining | None = None, *,
              resume: bool = False, verbose: int = 1, seed: int = 0, extra_callbacks=(),
              run_config: dict | None = None, figures=None):
    """Trains a DCGAN and writes its generator, discriminator, history, per-epoch
    sample grids and metrics into ``out``.

    Args:
        data: a :class:`data.datasets.Dataset`.
        config: a :class:`configs.gan.GANConfig`.
        out: the run folder (exists, writable).
        training: a :class:`GANTraining` (default: its defaults).
        resume: continue from ``out/backup`` if an interrupted run left one
            (else train from the start).
        verbose: Keras verbosity.
        seed: seeds the layers' initial weights, the noise drawn in training,
            the batch order of every epoch (with the epoch's number) and the
            sample grids' fixed noise.
        extra_callbacks: more Keras callbacks.
        run_config: the task's whole config, written into metrics.json as "config".
        figures: ``figures(gan, history, noise)``, called once every other file
            is written, draws the task's figures (``history``: as history.json;
            ``noise``: the sample grids' fixed noise).

    Returns:
        ``(gan, metrics)``: the trained DCGAN and the metrics written to
        ``out/metrics.json``.
    """
    import keras

    from accel import accelerate
    from models.gan import build_gan, default_optimizers, to_gan_range, use_generator_ema
    from models.saving import save_model
    from runtime.backend import backend_name, layer_seed
    from runtime.compute import describe
    from storage.files import write_json
    from storage.feeds import for_fit
    from storage.training_backup import EpochFeed, run_settings
    from training.callbacks import GANMonitor

    training = training or GANTraining()
    gan = build_gan(latent_dim=config.latent_dim, width=config.width, seed=layer_seed(seed),
                    spectral_norm=config.spectral_norm)
    gan.compile(*default_optimizers(training.lr, training.beta1, d_lr=training.d_lr,
                                    ema=training.ema))
    accelerate(gan)  # the backend speed paths; the saved files stay plain Keras
    monitor = GANMonitor(out, config.latent_dim, seed)
    feed = EpochFeed(to_gan_range(data.x_train), None, training.batch_size, seed)
    # Both optimizers (and the generator's average) are in the weights file;
    # the per-iteration curves are the monitor's BACKUP_STATE.
    backup = start_backup(gan, feed, out, resume, training.epochs,
                          run_settings(data, seed, config, training), watched=[monitor])
    start = time.perf_counter()
    if not backup.finished:
        # shuffle=False: the feed shuffles (see training.cae.train_cae).
        gan.fit(for_fit(feed), epochs=training.epochs, initial_epoch=backup.initial_epoch,
                verbose=verbose, shuffle=False,
                callbacks=[monitor, keras.callbacks.TerminateOnNaN(), *extra_callbacks, backup])
    hist = end_backup(backup, time.perf_counter() - start, training.lr)
    use_generator_ema(gan)  # the averaged weights, when kept, are the generator saved

    save_model(gan.generator, os.path.join(out, "generator.keras"))
    save_model(gan.discriminator, os.path.join(out, "discriminator.keras"))
    written_history = {"epochs": hist, "iterations": monitor.iterations}
    write_json(os.path.join(out, "history.json"), written_history)
    metrics = {
        "task": "gan", "dataset": data.name, "data_source": data.source,
        "backend": backend_name(), **describe(), "latent_dim": config.latent_dim,
        "width": config.width, "epochs": training.epochs,
        "iterations": int(keras.ops.convert_to_numpy(gan.g_optimizer.iterations)),
        "final_epoch": {k: v[-1] for k, v in hist.items()},
        "wall_time_s": backup.wall_s, "train_images": int(len(data.x_train)),
        "batch_size": training.batch_size, "learning_rate": training.lr,
        "beta_1": training.beta1, "d_learning_rate": training.d_lr or training.lr,
        "ema": training.ema, "spectral_norm": config.spectral_norm,
        "generator_parameters": int(gan.generator.count_params()),
        "discriminator_parameters": int(gan.discriminator.count_params()),
        **({"config": run_config} if run_config is not None else {}),
    }
    write_json(os.path.join(out, "metrics.json"), metrics)
    if figures is not None:
        figures(gan, written_history, monitor.noise)
    backup.discard()  # only now: every final file is written
    return gan, metrics
