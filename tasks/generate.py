"""`python main.py generate`: draw new images from a saved generative model.

Works with a VAE (``vae.keras`` or its ``decoder.keras``), a GAN generator
(``generator.keras``) or a CAE decoder. A CAE has no prior over its codes, so
its decoder is fed samples of a Gaussian fitted to the training codes: the
mean and covariance are read from ``latent_gaussian.json`` next to the decoder
(written by ``quality --cae`` or by ``generate --codes-from``).

``--sampler`` picks the code distribution (:mod:`models.samplers`): ``prior``,
``gaussian``, ``gmm`` (``--components``) or ``two_stage``; a fitted one is
saved beside the decoder and reused (``--refit`` fits anew).
"""

from __future__ import annotations

import argparse
import os

from data.arguments import add_data_arguments
from runtime.args import positive_int
from storage.run_folder import add_output_arguments
from training.sampler_source import add_sampler_arguments

HELP = "draw new images from a saved VAE, GAN generator or CAE decoder into a grid PNG"

# The most images one grid PNG holds (128 rows of 8): a bigger --n only used memory
# (--n 100000000 asked for 75 GiB) for a picture nobody can read.
GRID_LIMIT = 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="FILE.keras",
                        help="a VAE (vae.keras or decoder.keras), GAN generator.keras, or "
                             "CAE decoder.keras / cae.keras")
    parser.add_argument("--n", type=positive_int, default=64,
                        help=f"how many images to draw, at most {GRID_LIMIT} (default 64)")
    parser.add_argument("--codes-from", default=None, metavar="FILE.keras",
                        help="for a decoder alone: the CAE / VAE or encoder whose training "
                             "codes a sampler is fitted to (then saved beside the decoder)")
    add_sampler_arguments(parser)
    add_data_arguments(parser)
    add_output_arguments(parser, "generate")


def run(args) -> str:
    from data.arguments import load_data
    from plots.figures import image_grid
    from runtime.backend import seed_everything
    from runtime.errors import UserError
    from storage.run_folder import make_run_dir
    from training.sampler_source import load_sampler

    if args.n > GRID_LIMIT:
        raise UserError(f"--n {args.n}: a grid holds at most {GRID_LIMIT} images; give "
                        f"--n 1 ... {GRID_LIMIT}")
    sampler = load_sampler(args.model, sampler=args.sampler, components=args.components,
                           codes_from=args.codes_from, refit=args.refit, seed=args.seed,
                           training_images=lambda: load_data(args).x_train)
    out = make_run_dir("generate", args.out, overwrite=args.overwrite)
    seed_everything(args.seed)
    images = sampler.sample(args.n, seed=args.seed)
    image_grid(images, os.path.join(out, "samples.png"),
               f"{args.n} {sampler.kind.upper()} samples ({sampler.name} sampler) from "
               f"{os.path.basename(args.model)}", n_cols=min(8, args.n))
    print(f"{args.n} images from a {sampler.kind.upper()} {sampler.network.name} "
          f"(latent {sampler.latent_dim}, {sampler.name} sampler)")
    return out
