"""Where tasks that study a CAE get it: a saved ``cae.keras``, or a fresh training run."""

from __future__ import annotations

import argparse
import os


def add_model_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """``--model PATH``: the CAE to reuse."""
    parser.add_argument("--model", default=None, metavar="PATH",
                        help=f"{what} (a cae.keras written by `main.py cae`); when left out, "
                             f"one is trained with the CAE options below")


def load_cae(path: str):
    """(cae, encoder, decoder) from a ``.keras`` file; one-line UserError if it is no CAE."""
    from models.cae import split_cae
    from models.saving import load_keras_model
    from runtime.errors import UserError

    model = load_keras_model(path, "CAE")
    try:
        encoder, decoder = split_cae(model)
    except ValueError as e:
        raise UserError(f"--model {path!r}: {e}; give a cae.keras written by `main.py cae`") \
            from None
    return model, encoder, decoder


def obtain_cae(args, data, out: str, latent_dim: int | None = None, noise=None,
               extra_callbacks=()):
    """The CAE of ``--model``, or one trained now into ``out`` with the CAE options.

    Args:
        args: parsed arguments holding the CAE options (and ``model``).
        data: the Dataset to train on when no model is given.
        out: folder for the trained model's files.
        latent_dim: overrides ``--latent-dim`` for a freshly trained CAE.
        noise: a noise layer: train a denoising CAE (never loaded from ``--model``).
        extra_callbacks: more Keras callbacks for training.

    Returns:
        (cae, encoder, decoder, source) where source says where the model came from.
    """
    import dataclasses

    from models.cae import split_cae
    from training.cae import config_from_args, train_cae

    if args.model is not None and noise is None and latent_dim is None:
        return (*load_cae(args.model), args.model)
    config = config_from_args(args)
    if latent_dim is not None:
        config = dataclasses.replace(config, latent_dim=latent_dim)
    os.makedirs(out, exist_ok=True)
    kind = "denoising CAE" if noise is not None else "CAE"
    print(f"training a {kind} (latent {config.latent_dim}) into {out}", flush=True)
    metrics = train_cae(data, config, out, epochs=args.epochs, batch_size=args.batch_size,
                        lr=args.lr, patience=args.patience, verbose=args.verbose, noise=noise,
                        extra_callbacks=extra_callbacks, seed=args.seed)
    model = metrics["model"]
    return (model, *split_cae(model), os.path.join(out, "cae.keras"))


def latent_dim_of(encoder) -> int:
    return int(encoder.output_shape[-1])
