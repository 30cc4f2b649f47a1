"""`python main.py generate`: draw new images from a saved generative model.

Works with a VAE (``vae.keras`` or its ``decoder.keras``), a GAN generator
(``generator.keras``) or a CAE decoder. A CAE has no prior over its codes, so
its decoder is fed samples of a Gaussian fitted to the training codes: the
mean and covariance are read from ``latent_gaussian.json`` next to the decoder
(written by ``quality --cae`` or by ``generate --codes-from``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os

from tasks.common import add_data_arguments, add_output_arguments, positive_int

HELP = "draw new images from a saved VAE, GAN generator or CAE decoder into a grid PNG"

GAUSSIAN_FILE = "latent_gaussian.json"
# The most images one grid PNG holds (128 rows of 8): a bigger --n only used memory
# (--n 100000000 asked for 75 GiB) for a picture nobody can read.
GRID_LIMIT = 1024


@dataclasses.dataclass
class Sampler:
    """Noise -> images in [0, 1], shape (n, 28, 28, 1).

    Attributes:
        kind: "vae", "gan" or "cae".
        network: the Keras model that decodes latent points.
        latent_dim: size of its input.
        mean, chol: the CAE's code Gaussian (``z = mean + chol @ eps``); None
            for a VAE or GAN, whose prior is N(0, I).
    """

    kind: str
    network: object
    latent_dim: int
    mean: object = None
    chol: object = None

    def __call__(self, eps, batch_size: int = 500):
        """Images for standard-normal noise ``eps`` of shape (n, latent_dim)."""
        import numpy as np

        from models.gan import from_gan_range

        z = np.asarray(eps, "float32")
        if self.mean is not None:
            z = (self.mean + z @ self.chol.T).astype("float32")
        images = self.network.predict(z, batch_size=batch_size, verbose=0)
        if self.kind == "gan":
            return from_gan_range(images)
        return np.clip(np.asarray(images, "float32"), 0.0, 1.0)

    def sample(self, n: int, seed: int = 0):
        import numpy as np

        eps = np.random.default_rng(seed).standard_normal((n, self.latent_dim))
        return self(eps)


def identify(model, path: str):
    """(kind, network) of a loaded model, or UserError if it generates nothing."""
    from models.cae import split_cae
    from models.gan import GAN
    from models.vae import VAE
    from tasks.errors import UserError

    if isinstance(model, VAE):
        return "vae", model.decoder
    if isinstance(model, GAN):
        return "gan", model.generator
    if model.name == "cae":
        return "cae", split_cae(model)[1]
    kinds = {"vae_decoder": "vae", "generator": "gan", "decoder": "cae"}
    if model.name in kinds and len(model.input_shape) == 2:
        return kinds[model.name], model
    raise UserError(f"{path!r} holds model {model.name!r}, which is no generator; give a "
                    f"VAE (vae.keras, decoder.keras), a GAN generator.keras or a CAE "
                    f"decoder.keras")


def fit_latent_gaussian(encoder, images) -> dict:
    """Mean and covariance of the encoder's codes of ``images``."""
    import numpy as np

    codes = encoder.predict(images, batch_size=512, verbose=0)
    if isinstance(codes, (list, tuple)):  # a VAE encoder: use the means
        codes = codes[0]
    codes = np.asarray(codes, "float64")
    return {"mean": codes.mean(axis=0).tolist(),
            "cov": np.atleast_2d(np.cov(codes, rowvar=False)).tolist(),
            "n_codes": int(len(codes))}


def load_sampler(path: str, gaussian: dict | None = None, option: str | None = None) -> Sampler:
    """The sampler for a saved model; a CAE decoder needs its code Gaussian,
    given or read from ``latent_gaussian.json`` next to the file. With ``option``
    (``gan``, ``vae`` or ``cae``: the ``quality`` option that named the file), a
    model of another kind is refused at once."""
    import numpy as np

    from tasks.common import load_keras_model, read_json
    from tasks.errors import UserError

    kind, network = identify(load_keras_model(path, "generator"), path)
    if option is not None and kind != option:
        raise UserError(f"--{option} {path!r} holds a {kind.upper()} model; give a "
                        f"{option.upper()} model (or pass this file as --{kind})")
    latent_dim = int(network.input_shape[-1])
    if kind != "cae":
        return Sampler(kind, network, latent_dim)
    if gaussian is None:
        json_path = os.path.join(os.path.dirname(path), GAUSSIAN_FILE)
        if not os.path.isfile(json_path):
            raise UserError(f"CAE decoder {path!r} has no {GAUSSIAN_FILE} beside it; give "
                            f"--codes-from <cae.keras or encoder.keras> to fit one")
        gaussian = read_json(json_path)
    mean = np.asarray(gaussian["mean"], "float64")
    cov = np.asarray(gaussian["cov"], "float64")
    if mean.shape != (latent_dim,) or cov.shape != (latent_dim, latent_dim):
        raise UserError(f"the code Gaussian for {path!r} has dimension {mean.shape[0]}, the "
                        f"decoder takes {latent_dim}")
    chol = np.linalg.cholesky(cov + 1e-6 * np.eye(latent_dim))
    return Sampler(kind, network, latent_dim, mean=mean, chol=chol)


def cae_gaussian_from(codes_from: str, data) -> dict:
    """Fits the code Gaussian with a CAE (or its encoder) on ``data.x_train``."""
    from models.cae import split_cae
    from tasks.common import load_keras_model
    from tasks.errors import UserError

    model = load_keras_model(codes_from, "--codes-from model")
    if model.name == "cae":
        model = split_cae(model)[0]
    if model.name != "encoder":
        raise UserError(f"--codes-from {codes_from!r} holds {model.name!r}; give a CAE's "
                        f"cae.keras or encoder.keras")
    return fit_latent_gaussian(model, data.x_train)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="FILE.keras",
                        help="a VAE (vae.keras or decoder.keras), GAN generator.keras, or "
                             "CAE decoder.keras / cae.keras")
    parser.add_argument("--n", type=positive_int, default=64,
                        help=f"how many images to draw, at most {GRID_LIMIT} (default 64)")
    parser.add_argument("--codes-from", default=None, metavar="FILE.keras",
                        help="for a CAE decoder without latent_gaussian.json: the CAE or "
                             "encoder whose training codes the Gaussian is fitted to (it is "
                             "then saved beside the decoder)")
    add_data_arguments(parser)
    add_output_arguments(parser, "generate")


def run(args) -> str:
    from tasks.common import load_data, make_run_dir, seed_everything, write_json
    from tasks.errors import UserError
    from tasks.figures import image_grid

    if args.n > GRID_LIMIT:
        raise UserError(f"--n {args.n}: a grid holds at most {GRID_LIMIT} images; give "
                        f"--n 1 ... {GRID_LIMIT}")
    gaussian = None
    if args.codes_from is not None:
        gaussian = cae_gaussian_from(args.codes_from, load_data(args))
    sampler = load_sampler(args.model, gaussian)
    if gaussian is not None and sampler.kind == "cae":
        write_json(os.path.join(os.path.dirname(args.model), GAUSSIAN_FILE), gaussian)
    out = make_run_dir("generate", args.out, overwrite=args.overwrite)
    seed_everything(args.seed)
    images = sampler.sample(args.n, seed=args.seed)
    image_grid(images, os.path.join(out, "samples.png"),
               f"{args.n} {sampler.kind.upper()} samples from {os.path.basename(args.model)}",
               n_cols=min(8, args.n))
    print(f"{args.n} images from a {sampler.kind.upper()} {sampler.network.name} "
          f"(latent {sampler.latent_dim})")
    return out
