"""Where tasks that study a CAE get it: a saved ``cae.keras``, or a fresh training run."""

from __future__ import annotations

import dataclasses
import os

from configs.cae import CAEConfig
from cli.options import option, section
from training.cae import CAETraining


@dataclasses.dataclass
class CAESource:
    """The CAE a task studies: a saved one (``model``), else one trained now."""

    model: str | None = option(
        None, metavar="PATH",
        help="the CAE to reuse (a cae.keras written by `main.py cae`); when left out, "
             "one is trained with the CAE options")
    cae: CAEConfig = section(CAEConfig, "CAE")
    training: CAETraining = section(CAETraining, "CAE")


def load_cae(path: str):
    """(cae, encoder, decoder) from a ``.keras`` file; one-line UserError if it is no CAE."""
    from models.cae import split_cae
    from models.saving import load_keras_model
    from cli.errors import UserError

    model = load_keras_model(path, "CAE")
    try:
        encoder, decoder = split_cae(model)
    except ValueError as e:
        raise UserError(f"--model {path!r}: {e}; give a cae.keras written by `main.py cae`") \
            from None
    return model, encoder, decoder


def obtain_cae(source: CAESource, data, out: str, latent_dim: int | None = None,
               noise=None, extra_callbacks=(), verbose: int = 1, seed: int = 0):
    """The CAE of ``source.model``, or one trained now into ``out``.

    Args:
        source: the saved model, or the CAE and training configs for a new one.
        data: the Dataset to train on when no model is given.
        out: folder for the trained model's files.
        latent_dim: overrides the config's for a freshly trained CAE.
        noise: a noise layer: train a denoising CAE (never loaded from ``model``).
        extra_callbacks: more Keras callbacks for training.
        verbose, seed: as for :func:`training.cae.train_cae`.

    Returns:
        (cae, encoder, decoder, source) where source says where the model came from.
    """
    from models.cae import split_cae
    from training.cae import train_cae

    if source.model is not None and noise is None and latent_dim is None:
        return (*load_cae(source.model), source.model)
    config = source.cae
    if latent_dim is not None:
        config = dataclasses.replace(config, latent_dim=latent_dim)
    os.makedirs(out, exist_ok=True)
    kind = "denoising CAE" if noise is not None else "CAE"
    print(f"training a {kind} (latent {config.latent_dim}) into {out}", flush=True)
    model, _ = train_cae(data, config, out, source.training, verbose=verbose, noise=noise,
                         extra_callbacks=extra_callbacks, seed=seed)
    return (model, *split_cae(model), os.path.join(out, "cae.keras"))


def latent_dim_of(encoder) -> int:
    return int(encoder.output_shape[-1])
