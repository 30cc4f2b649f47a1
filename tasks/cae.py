"""`python main.py cae`: train the convolutional autoencoder end to end."""

from __future__ import annotations

import argparse
import os

from data.arguments import add_data_arguments
from storage.run_folder import add_output_arguments
from training.cae import add_cae_arguments

HELP = "train the convolutional autoencoder (CAE) and save cae/encoder/decoder .keras"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from runtime.compute import add_compute_arguments

    add_data_arguments(parser)
    add_cae_arguments(parser)
    add_compute_arguments(parser)
    add_output_arguments(parser, "cae")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from its last finished epoch; "
                             "give the interrupted run's folder with --out (default: "
                             "the newest folder under runs/cae)")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                        help="Keras progress: 0 silent, 1 progress bar (default), "
                             "2 one line per epoch")


def newest_run(task: str) -> str | None:
    root = os.path.join("runs", task)
    if not os.path.isdir(root):
        return None
    runs = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    return os.path.join(root, runs[-1]) if runs else None


def run(args) -> str:
    from data.arguments import load_data
    from runtime.backend import seed_everything
    from runtime.errors import UserError
    from storage.run_folder import make_run_dir
    from training.cae import check_same_config, config_from_args, train_cae

    config = config_from_args(args)
    out = args.out
    if args.resume and out is None:
        out = newest_run("cae")
        if out is None:
            raise UserError("--resume found no run under runs/cae; give the run folder with --out")
    if args.resume:
        from storage.training_backup import has_backup

        if not has_backup(os.path.join(out, "backup")):
            raise UserError(f"--resume: {out!r} holds no interrupted run (no backup/ with a "
                            f"finished epoch); finished runs cannot be resumed")
        check_same_config(out, config)
    out = make_run_dir("cae", out, overwrite=args.overwrite, resume=args.resume)
    seed_everything(args.seed)
    data = load_data(args)
    metrics = train_cae(data, config, out, epochs=args.epochs, batch_size=args.batch_size,
                        lr=args.lr, patience=args.patience, resume=args.resume,
                        verbose=args.verbose, seed=args.seed)
    print(f"test MSE {metrics['test_mse']:.5f}, PSNR {metrics['test_psnr_db']:.2f} dB, "
          f"{metrics['epochs']} epochs in {metrics['wall_time_s']:.0f} s on {metrics['backend']}")
    return out
