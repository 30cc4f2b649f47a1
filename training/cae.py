"""Training the CAE: its options, its config from them, and one training run that
writes the models, history, figures and metrics into a run folder."""

from __future__ import annotations

import argparse
import os
import shutil
import time

from runtime.args import non_negative_float, positive_float, positive_int, rate


def add_cae_arguments(parser: argparse.ArgumentParser) -> None:
    """The CAE's architecture and training options, shared with tasks that train one."""
    group = parser.add_argument_group("CAE")
    group.add_argument("--latent-dim", type=positive_int, default=10,
                       help="size of the latent code (default 10)")
    group.add_argument("--conv-filters", type=positive_int, nargs=3, default=[32, 64, 128],
                       metavar=("F1", "F2", "F3"),
                       help="widths of the three encoder convolutions (default 32 64 128)")
    group.add_argument("--dense-units", type=positive_int, default=256,
                       help="width of the hidden dense layer (default 256)")
    group.add_argument("--dropout", type=rate, default=0.0,
                       help="dropout after the hidden dense layers, in [0, 1) (default 0)")
    group.add_argument("--l2", type=non_negative_float, default=0.0,
                       help="L2 penalty on every kernel, >= 0 (default 0)")
    group.add_argument("--epochs", type=positive_int, default=30,
                       help="most epochs; early stopping may end sooner (default 30)")
    group.add_argument("--batch-size", type=positive_int, default=128,
                       help="images per step (default 128)")
    group.add_argument("--lr", type=positive_float, default=2e-3,
                       help="Adam learning rate; halved when validation loss stalls "
                            "(default 2e-3)")
    group.add_argument("--patience", type=positive_int, default=4,
                       help="epochs without validation improvement before stopping "
                            "(default 4)")


def config_from_args(args):
    from models.cae import CAEConfig
    from runtime.errors import UserError

    try:
        return CAEConfig(conv_filters=tuple(args.conv_filters), dense_units=args.dense_units,
                         latent_dim=args.latent_dim, dropout=args.dropout, l2=args.l2)
    except ValueError as e:
        raise UserError(str(e)) from None


def train_cae(data, config, out: str, epochs: int = 30, batch_size: int = 128,
              lr: float = 2e-3, patience: int = 4, resume: bool = False,
              verbose: int = 1, noise=None, extra_callbacks=(), seed: int = 0) -> dict:
    """Trains a CAE and writes its models, history, figures and metrics into ``out``.

    Args:
        data: a :class:`data.datasets.Dataset`.
        config: a :class:`models.cae.CAEConfig`.
        out: the run folder (exists, writable).
        epochs, batch_size, lr, patience: training settings.
        resume: restore from ``out/backup`` if an interrupted run left one.
        verbose: Keras verbosity.
        noise: optional Keras layer applied to inputs during training only
            (the denoising CAE); targets stay clean.
        extra_callbacks: more Keras callbacks.
        seed: seeds the batch order of every epoch (with the epoch's number).

    Returns:
        ``metrics`` dict (also written to ``out/metrics.json``), with the trained
        model under the key ``"model"`` removed before writing.
    """
    import keras
    import numpy as np

    from evaluation.metrics import mse, psnr
    from models.cae import build_cae, split_cae
    from models.saving import save_model
    from plots.figures import image_rows, loss_curves
    from runtime.backend import backend_name
    from runtime.compute import describe
    from runtime.errors import check_losses_finite
    from storage.files import write_json, write_text
    from storage.training_backup import EpochFeed, TrainingBackup

    model = build_cae(config)
    train_model = model
    if noise is not None:  # corrupt inputs in training only; saved CAE stays clean
        inputs = keras.Input(model.input_shape[1:])
        train_model = keras.Model(inputs, model(noise(inputs)), name="denoising_trainer")
    train_model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
    write_text(os.path.join(out, "config.json"), config.to_json() + "\n")

    early_stopping = keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True,
                                                   min_delta=1e-5)
    plateau = keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=max(1, patience // 2),
                                                min_lr=1e-5, min_delta=1e-5)
    feed = EpochFeed(data.x_train, data.x_train, batch_size, seed)
    # After every epoch the whole training state is saved; the folder is deleted
    # only once every final file is written: an interrupted run, even one killed
    # while saving its models, is finished by --resume.
    backup_dir = os.path.join(out, "backup")
    if not resume and os.path.isdir(backup_dir):
        shutil.rmtree(backup_dir)  # stale state of another run
    backup = TrainingBackup(backup_dir, feed, watched=(early_stopping, plateau))
    initial_epoch = backup.restore(train_model) if resume else 0
    if backup.stopped:
        initial_epoch = epochs  # early stopping had ended it: train no further epoch
    if initial_epoch:
        print(f"resuming from {backup_dir}: " + ("training had finished, writing its files"
              if backup.finished else f"epoch {initial_epoch} of {epochs} done"), flush=True)
    callbacks = [early_stopping, plateau, keras.callbacks.TerminateOnNaN(), *extra_callbacks,
                 backup]  # last: see TrainingBackup

    start = time.perf_counter()
    if not backup.finished:
        # shuffle=False: the feed shuffles; fit's own shuffle of a PyDataset would
        # reorder its batches with Python's random state, which a restart resets.
        train_model.fit(feed, validation_data=(data.x_val, data.x_val), epochs=epochs,
                        initial_epoch=initial_epoch, callbacks=callbacks, verbose=verbose,
                        shuffle=False)
    backup.add_wall_time(time.perf_counter() - start)
    wall = backup.wall_s
    hist = backup.history  # every epoch, the resumed ones too
    if any(not np.isfinite(v) for k, vals in hist.items() if "loss" in k for v in vals):
        shutil.rmtree(backup_dir, ignore_errors=True)  # nothing worth resuming
    check_losses_finite(hist, f"try a lower --lr than {lr:g}")

    recon = model.predict(data.x_test, batch_size=512, verbose=0)
    encoder, decoder = split_cae(model)
    save_model(model, os.path.join(out, "cae.keras"))
    save_model(encoder, os.path.join(out, "encoder.keras"))
    save_model(decoder, os.path.join(out, "decoder.keras"))
    write_json(os.path.join(out, "history.json"), hist)

    metrics = {
        "task": "cae",
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
    shutil.rmtree(backup_dir, ignore_errors=True)  # only now: every final file is written
    metrics_with_model = dict(metrics)
    metrics_with_model["model"] = model
    return metrics_with_model


def check_same_config(out: str, config) -> None:
    """UserError naming the first option that differs from the run's config.json."""
    from models.cae import CAEConfig
    from runtime.errors import UserError
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
