"""`python main.py generate`: draw new images from a saved generative model.

Works with a VAE (``vae.keras`` or its ``decoder.keras``), a GAN generator
(``generator.keras``) or a CAE decoder. A CAE has no prior over its codes, so
its decoder is fed samples of a Gaussian fitted to the training codes: the
mean and covariance are read from ``latent_gaussian.json`` next to the decoder
(written by ``quality --cae`` or by ``generate --codes-from``).

``--sampler`` picks the code distribution (:mod:`models.samplers`): ``prior``,
``gaussian``, ``gmm`` (``--components``), ``two_stage`` or ``flow``
(``--flow-steps``, ``--flow-solver``); a fitted one is saved beside the decoder
and reused (``--refit`` fits anew).
"""

from __future__ import annotations

import dataclasses
import os

from data.arguments import DataConfig
from cli.args import positive_int
from cli.options import add_config, from_args, option, section
from storage.run_folder import OutputConfig
from training.sampler_source import SamplerConfig

HELP = "draw new images from a saved VAE, GAN generator or CAE decoder into a grid PNG"

# The most images one grid PNG holds (128 rows of 8): a bigger --n only used memory
# (--n 100000000 asked for 75 GiB) for a picture nobody can read.
GRID_LIMIT = 1024


@dataclasses.dataclass
class GenerateConfig:
    """One ``generate`` run."""

    model: str | None = option(
        None, metavar="FILE.keras", required=True,
        help="a VAE (vae.keras or decoder.keras), GAN generator.keras, or CAE decoder.keras "
             "/ cae.keras")
    n: int = option(64, type=positive_int,
                    help=f"how many images to draw, at most {GRID_LIMIT}")
    codes_from: str | None = option(
        None, metavar="FILE.keras",
        help="for a decoder alone: the CAE / VAE or encoder whose training codes a sampler "
             "is fitted to (then saved beside the decoder)")
    sampling: SamplerConfig = section(SamplerConfig, "sampler")
    data: DataConfig = section(DataConfig, "data")
    output: OutputConfig = section(OutputConfig, "output")

    def __post_init__(self):
        if not self.model:
            raise ValueError(f"model must be the path of a .keras file. "
                             f"Received: model={self.model!r}")


def add_arguments(parser) -> None:
    add_config(parser, GenerateConfig, task="generate")


CONFIG = GenerateConfig


def run(args) -> str:
    return generate(from_args(GenerateConfig, args))


def generate(config: GenerateConfig) -> str:
    """Draws ``config.n`` images into ``samples.png`` of the run folder, which
    it returns."""
    from data.arguments import load_data
    from plots.figures import image_grid
    from runtime.backend import seed_everything
    from cli.errors import UserError
    from storage.run_folder import make_run_dir
    from training.sampler_source import load_sampler

    n, seed = config.n, config.data.seed
    if n > GRID_LIMIT:
        raise UserError(f"--n {n}: a grid holds at most {GRID_LIMIT} images; give "
                        f"--n 1 ... {GRID_LIMIT}")
    sampling = config.sampling
    sampler = load_sampler(config.model, sampler=sampling.sampler,
                           components=sampling.components, codes_from=config.codes_from,
                           refit=sampling.refit, seed=seed,
                           flow_steps=sampling.flow_steps, flow_solver=sampling.flow_solver,
                           training_images=lambda: load_data(config.data).x_train)
    out = make_run_dir("generate", config.output.out, overwrite=config.output.overwrite)
    seed_everything(seed)
    images = sampler.sample(n, seed=seed)
    image_grid(images, os.path.join(out, "samples.png"),
               f"{n} {sampler.kind.upper()} samples ({sampler.name} sampler) from "
               f"{os.path.basename(config.model)}", n_cols=min(8, n))
    print(f"{n} images from a {sampler.kind.upper()} {sampler.network.name} "
          f"(latent {sampler.latent_dim}, {sampler.name} sampler)")
    return out
