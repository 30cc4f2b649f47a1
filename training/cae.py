"""Training the CAE: how (:class:`CAETraining`), and one training run that writes
the models, history, figures and metrics into a run folder."""

from __future__ import annotations

import dataclasses
import os
import time

from cli.args import positive_float, positive_int
from cli.options import option
from training.resume import end_backup, start_backup

EVAL_BATCH = 512  # images per validation and test batch: no gradients, so larger


@dataclasses.dataclass
class CAETraining:
    """How a CAE is trained (Adam, early stopping, learning-rate halving)."""

    epochs: int = option(30, type=positive_int,
                         help="most epochs; early stopping may end sooner")
    batch_size: int = option(128, type=positive_int, help="images per step")
    lr: float = option(2e-3, type=positive_float,
                       help="Adam learning rate; halved when validation loss stalls")
    patience: int = option(4, type=positive_int,
                           help="epochs without validation improvement before stopping")


def train_cae(data, config, out: str, training: CAETraining | None = None,
              resume: bool = False, verbose: int = 1, noise=None, extra_callbacks=(),
              seed: int = 0, run_config: dict | None = None, backup_dir: str | None = None):
    """Trains a CAE and writes its models, history, figures and metrics into ``out``.

    Args:
        data: a :class:`data.datasets.Dataset`.
        config: a :class:`models.cae.CAEConfig`.
        out: the run folder (exists, writable).
        training: a :class:`CAETraining` (default: its defaults).
        resume: continue from ``out/backup`` if an interrupted run left one
            (else train from the start).
        verbose: Keras verbosity.
        noise: optional Keras layer applied to inputs during training only
            (the denoising CAE); targets stay clean.
        extra_callbacks: more Keras callbacks.
        seed: seeds the batch order of every epoch (with the epoch's number).
        run_config: the task's whole config, written into metrics.json as "config".
        backup_dir: where the per-epoch backup lives (default ``out/backup``); a
            task that trains several models keeps the one in training in its run
            folder's ``backup/`` (``training.phases``).

    Returns:
        ``(model, metrics)``: the trained CAE and the metrics written to
        ``out/metrics.json``.
    """
    import keras
    import numpy as np

    from accel import accelerate
    from evaluation.metrics import mse, psnr
    from models.cae import build_cae, split_cae
    from models.saving import save_model
    from plots.figures import image_rows, loss_curves
    from runtime.backend import backend_name
    from runtime.compute import describe
    from storage.files import write_json, write_text
    from storage.feeds import for_fit
    from storage.training_backup import EpochFeed, run_settings

    training = training or CAETraining()
    epochs, batch_size, lr, patience = (training.epochs, training.batch_size, training.lr,
                                        training.patience)
    model = build_cae(config)
    train_model = model
    if noise is not None:  # corrupt inputs in training only; saved CAE stays clean
        inputs = keras.Input(model.input_shape[1:])
        train_model = keras.Model(inputs, model(noise(inputs)), name="denoising_trainer")
    train_model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
    accelerate(train_model)  # the backend speed paths; the saved files stay plain Keras
    write_text(os.path.join(out, "config.json"), config.to_json() + "\n")

    early_stopping = keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True,
                                                   min_delta=1e-5)
    plateau = keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=max(1, patience // 2),
                                                min_lr=1e-5, min_delta=1e-5)
    feed = EpochFeed(data.x_train, data.x_train, batch_size, seed)
    # After every epoch the whole training state is saved; the folder is deleted
    # only once every final file is written: an interrupted run, even one killed
    # while saving its models, is finished by --resume.
    backup = start_backup(train_model, feed, out, resume, epochs,
                          run_settings(data, seed, config, training),
                          watched=(early_stopping, plateau), backup_dir=backup_dir)
    callbacks = [early_stopping, plateau, keras.callbacks.TerminateOnNaN(), *extra_callbacks,
                 backup]  # last: see TrainingBackup

    start = time.perf_counter()
    if not backup.finished:
        # shuffle=False: the feed shuffles; fit's own shuffle of a PyDataset would
        # reorder its batches with Python's random state, which a restart resets.
        # validation_batch_size: fit cannot take it from a PyDataset and would
        # use 32: validation took 4.9 s of each ~30 s torch epoch, 1.4 s at 512.
        train_model.fit(for_fit(feed), validation_data=(data.x_val, data.x_val), epochs=epochs,
                        initial_epoch=backup.initial_epoch, callbacks=callbacks, verbose=verbose,
                        shuffle=False, validation_batch_size=EVAL_BATCH)
    hist = end_backup(backup, time.perf_counter() - start, lr)  # every epoch, resumed too
    wall = backup.wall_s

    recon = model.predict(data.x_test, batch_size=EVAL_BATCH, verbose=0)
    encoder, decoder = split_cae(model)
    save_model(model, os.path.join(out, "cae.keras"))
    save_model(encoder, os.path.join(out, "encoder.keras"))
    save_model(decoder, os.path.join(out, "decoder.keras"))
    write_json(os.path.join(out, "history.json"), hist)

    metrics = {
        "task": "cae",
        **({"config": run_config} if run_config is not None else {}),
        "dataset": data.name,
        "data_source": data.source,
        "backend": backend_name(),
        **describe(),
        "latent_dim": config.latent_dim,
        "test_mse": mse(recon, data.x_test),
        "test_psnr_db": psnr(recon, data.x_test),
        "best_val_loss": float(min(hist["val_loss"])),
        "epochs": len(hist["loss"]),
        "wall_time_s": wall,
        "train_images": int(len(data.x_train)),
        "test_images": int(len(data.x_test)),
        "batch_size": batch_size,
        "learning_rate": lr,
        "parameters": int(model.count_params()),
        "denoising": noise is not None,
    }
    write_json(os.path.join(out, "metrics.json"), metrics)

    loss_curves({k: v for k, v in hist.items() if "loss" in k},
                os.path.join(out, "loss.png"),
                f"CAE training (latent {config.latent_dim}, {backend_name()})", "MSE")
    n = 10
    idx = np.linspace(0, len(data.x_test) - 1, n).astype(int)
    titles = [data.class_names[int(data.y_test[i])] for i in idx]
    image_rows([data.x_test[idx], recon[idx]], ["test image", "reconstruction"],
               os.path.join(out, "reconstructions.png"),
               f"CAE reconstructions, test MSE {metrics['test_mse']:.4f}", col_titles=titles)
    backup.discard()  # only now: every final file is written
    return model, metrics


def check_same_config(out: str, config) -> None:
    """UserError naming the first option that differs from the run's config.json."""
    from models.cae import CAEConfig
    from cli.errors import UserError
    from storage.files import read_json

    try:
        saved = CAEConfig.from_dict(read_json(os.path.join(out, "config.json"))).to_dict()
    except (OSError, ValueError, TypeError) as e:
        raise UserError(f"--resume: cannot read {os.path.join(out, 'config.json')} ({e}); "
                        f"the run cannot be resumed") from None
    for key, value in config.to_dict().items():
        if saved.get(key) != value:
            given = " ".join(map(str, value)) if isinstance(value, list) else value
            was = " ".join(map(str, saved[key])) if isinstance(saved[key], list) else saved[key]
            option = "--" + key.replace("_", "-")
            raise UserError(f"--resume: {out!r} was trained with {option} {was}, not {given}; "
                            f"resume it with {option} {was}")
