"""Training the VAE: how (:class:`VAETraining`), and one training run that writes
the models, history and metrics into a run folder, resumable from its backup."""

from __future__ import annotations

import dataclasses
import os
import time

from configs import checks
from cli.args import positive_float, positive_int
from cli.options import option
from training.resume import end_backup, start_backup

# Images per validation and test batch: no gradients, so larger than training's,
# but not 512: the VAE's 28x28x64 decoder maps no longer fit the caches there, and
# evaluating 12 000 images took 6.5 s on jax (3.4 s at 256; tensorflow and torch
# 3.5 s at 256, 3.7-3.9 s at 512; idle 2-core machine).
EVAL_BATCH = 256
LR_SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass
class VAETraining:
    """How a VAE is trained (Adam on the negative ELBO)."""

    # 10 epochs of batch 64: on 2 CPU cores the default VAE trains them in 561 s
    # on tensorflow, within ten minutes; at batch 128 the same time held fewer,
    # slower-learning steps (benchmarks/results/sample_quality_fashion_mnist.md).
    epochs: int = option(10, type=positive_int, help="training epochs")
    batch_size: int = option(64, type=positive_int, help="images per step")
    lr: float = option(1e-3, type=positive_float, help="Adam learning rate")
    lr_schedule: str = option(
        "constant", choices=LR_SCHEDULES,
        help="constant: the learning rate throughout; cosine: decayed from it to 0 "
             "along a cosine over all the epochs' steps")

    def __post_init__(self):
        checks.positive_ints(self, ("epochs", "batch_size"))
        checks.positive_numbers(self, ("lr",))
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}. "
                             f"Received: lr_schedule={self.lr_schedule}")


def train_vae(data, config, out: str, training: VAETraining | None = None, *,
              resume: bool = False, verbose: int = 1, seed: int = 0,
              run_config: dict | None = None, figures=None):
    """Trains a VAE and writes its models, history and metrics into ``out``.

    Args:
        data: a :class:`data.datasets.Dataset`.
        config: a :class:`configs.vae.VAEConfig`.
        out: the run folder (exists, writable).
        training: a :class:`VAETraining` (default: its defaults).
        resume: continue from ``out/backup`` if an interrupted run left one
            (else train from the start).
        verbose: Keras verbosity.
        seed: seeds the layers' initial weights, the noise drawn in training and
            the batch order of every epoch (with the epoch's number).
        run_config: the task's whole config, written into metrics.json as "config".
        figures: ``figures(vae, history)``, called once every other file is
            written, draws the task's figures.

    Returns:
        ``(vae, metrics)``: the trained VAE and the metrics written to
        ``out/metrics.json``.
    """
    import keras

    from accel import accelerate
    from models.vae import build_vae
    from runtime.backend import layer_seed
    from storage.feeds import for_fit
    from storage.training_backup import EpochFeed, run_settings

    training = training or VAETraining()
    vae = build_vae(latent_dim=config.latent_dim, width=config.width, beta=config.beta,
                    likelihood=config.likelihood, seed=layer_seed(seed),
                    dense_units=config.dense_units)
    feed = EpochFeed(data.x_train, None, training.batch_size, seed)
    lr = training.lr
    if training.lr_schedule == "cosine":  # the optimizer counts its steps, so it resumes too
        lr = keras.optimizers.schedules.CosineDecay(lr, training.epochs * len(feed))
    vae.compile(optimizer=keras.optimizers.Adam(lr))
    accelerate(vae)  # the backend speed paths; the saved files stay plain Keras
    backup = start_backup(vae, feed, out, resume, training.epochs,
                          run_settings(data, seed, config, training))
    start = time.perf_counter()
    if not backup.finished:
        # shuffle=False: the feed shuffles (see training.cae.train_cae).
        vae.fit(for_fit(feed), validation_data=(data.x_val,), epochs=training.epochs,
                initial_epoch=backup.initial_epoch, verbose=verbose, shuffle=False,
                validation_batch_size=EVAL_BATCH,
                callbacks=[keras.callbacks.TerminateOnNaN(), backup])
    hist = end_backup(backup, time.perf_counter() - start, training.lr)
    metrics = write_vae_outputs(vae, data, out, hist, backup.wall_s, training, run_config)
    if figures is not None:
        figures(vae, hist)
    backup.discard()  # only now: every final file is written
    return vae, metrics


# The metrics' name of each likelihood's reconstruction term.
RECONSTRUCTION_NAMES = {"bernoulli": "bce", "gaussian": "gaussian_nll"}


def elbo_under_each_likelihood(vae, images, seed: int = 0) -> dict:
    """The test ELBO (nats, mean per image) under the Bernoulli and under the
    calibrated Gaussian likelihood, whichever the VAE trained on: one seeded
    reparameterised sample of each image's posterior, decoded once."""
    import numpy as np

    from models.vae import bernoulli_nll, gaussian_nll

    z_mean, z_log_var = (np.asarray(t, "float64") for t in
                         vae.encoder.predict(images, batch_size=EVAL_BATCH, verbose=0))
    eps = np.random.default_rng(seed).standard_normal(z_mean.shape)
    z = (z_mean + np.exp(0.5 * z_log_var) * eps).astype("float32")
    decoded = np.asarray(vae.decoder.predict(z, batch_size=EVAL_BATCH, verbose=0), "float64")
    decoded = np.clip(decoded, 1e-7, 1 - 1e-7)  # as Keras's binary cross-entropy clips
    x = np.asarray(images, "float64")
    kl = np.mean(np.sum(-0.5 * (1 + z_log_var - z_mean ** 2 - np.exp(z_log_var)), axis=1))
    out = {}
    for name, nll in (("bernoulli", bernoulli_nll), ("gaussian", gaussian_nll)):
        value = float(np.mean(np.asarray(nll(x, decoded))))
        out[f"test_elbo_{name}_nats"] = -(value + float(kl))
    out["test_mse"] = float(np.mean((x - decoded) ** 2))
    return out


def write_vae_outputs(vae, data, out: str, hist: dict, wall: float, training: VAETraining,
                      run_config: dict | None = None) -> dict:
    """Evaluates a trained VAE and writes its models, history and metrics."""
    from models.saving import save_model
    from runtime.backend import backend_name
    from runtime.compute import describe
    from storage.files import write_json

    width = int(vae.encoder.get_layer("conv1").filters)
    test = vae.evaluate(data.x_test, batch_size=EVAL_BATCH, verbose=0, return_dict=True)
    test = {k: float(v) for k, v in test.items()}

    save_model(vae, os.path.join(out, "vae.keras"))
    save_model(vae.encoder, os.path.join(out, "encoder.keras"))
    save_model(vae.decoder, os.path.join(out, "decoder.keras"))
    write_json(os.path.join(out, "history.json"), hist)
    elbo = -(test["reconstruction_loss"] + test["kl_loss"])
    metrics = {
        "task": "vae", "dataset": data.name, "data_source": data.source,
        "backend": backend_name(), **describe(), "latent_dim": vae.latent_dim, "width": width,
        "beta": vae.beta, "likelihood": vae.likelihood,
        # One reparameterised sample per test image: a stochastic estimate, in the
        # trained likelihood's nats (a Gaussian's are a density's).
        "test_elbo_nats": elbo,
        f"test_reconstruction_{RECONSTRUCTION_NAMES[vae.likelihood]}":
            test["reconstruction_loss"],
        "test_kl": test["kl_loss"],
        # Both likelihoods' ELBOs of the same decoder, comparable across runs.
        **elbo_under_each_likelihood(vae, data.x_test),
        "epochs": len(hist["loss"]), "wall_time_s": wall, "train_images": int(len(data.x_train)),
        "test_images": int(len(data.x_test)), "batch_size": training.batch_size,
        "learning_rate": training.lr, "lr_schedule": training.lr_schedule,
        "parameters": int(vae.count_params()),
        **({"config": run_config} if run_config is not None else {}),
    }
    write_json(os.path.join(out, "metrics.json"), metrics)
    return metrics
