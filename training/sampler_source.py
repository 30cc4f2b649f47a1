"""Where ``generate`` and ``quality`` get an image sampler: a saved VAE, GAN
generator or CAE decoder, and a latent sampler (:mod:`models.samplers`) saved
beside it or fitted now to the training codes."""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

from configs import checks
from cli.args import positive_int
from cli.options import option, same_option

# The latent samplers' names (models.samplers.CLASSES), here so that argparse
# needs no Keras.
SAMPLERS = ("prior", "gaussian", "gmm", "two_stage", "flow")
# Which samplers fit which model kind (a GAN has no encoder, so no codes to fit).
VALID = {"gan": ("prior",), "vae": ("prior", "gaussian", "gmm", "two_stage", "flow"),
         "cae": ("gaussian", "gmm", "flow")}
# The flow sampler's ODE solvers and default steps (models.flow_prior.SOLVERS,
# STEPS, SOLVER) and the most steps it takes: each step is a network call on
# every sample, and past a few hundred the path no longer changes.
FLOW_SOLVERS = ("euler", "midpoint")
FLOW_STEPS, FLOW_SOLVER = 25, "midpoint"
MAX_FLOW_STEPS = 1000
DEFAULT = {"gan": "prior", "vae": "prior", "cae": "gaussian"}

GAUSSIAN_FILE = "latent_gaussian.json"  # models.samplers.GaussianSampler.FILE


def ode_steps(text: str) -> int:
    """argparse type: the flow sampler's ODE steps, 1 ... MAX_FLOW_STEPS."""
    value = positive_int(text)
    if value > MAX_FLOW_STEPS:
        raise argparse.ArgumentTypeError(f"{value} is too many ODE steps; give an integer "
                                         f"1 ... {MAX_FLOW_STEPS}")
    return value


def check_flow(config) -> None:
    """ValueError unless ``config``'s flow_steps and flow_solver are valid."""
    steps = config.flow_steps
    if not (isinstance(steps, int) and 1 <= steps <= MAX_FLOW_STEPS):
        raise ValueError(f"flow_steps must be an integer in [1, {MAX_FLOW_STEPS}]. "
                         f"Received: flow_steps={steps}")
    if config.flow_solver not in FLOW_SOLVERS:
        raise ValueError(f"flow_solver must be one of {', '.join(FLOW_SOLVERS)}. "
                         f"Received: flow_solver={config.flow_solver!r}")


def sampler_list(text: str) -> list:
    """argparse type: comma-separated sampler names, e.g. ``prior,gmm``."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    bad = [name for name in names if name not in SAMPLERS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown sampler {', '.join(bad) or text!r}; "
                                         f"valid: {', '.join(SAMPLERS)}")
    return names


@dataclasses.dataclass
class SamplerConfig:
    """The latent sampler ``generate`` draws from, and how it is fitted."""

    sampler: str | None = option(
        None, choices=SAMPLERS, default_help="prior, for a CAE gaussian",
        help="latent sampler: prior (VAE, GAN), gaussian or gmm fitted to the training "
             "codes (CAE, VAE), two_stage (VAE), flow (a flow-matching prior learned on "
             "the training codes: CAE, VAE)")
    components: int = option(10, type=positive_int,
                             help="Gaussian-mixture components of the gmm sampler")
    flow_steps: int = option(FLOW_STEPS, type=ode_steps, metavar="STEPS",
                             help=f"ODE steps from noise to codes of the flow sampler, at "
                                  f"most {MAX_FLOW_STEPS}")
    flow_solver: str = option(FLOW_SOLVER, choices=FLOW_SOLVERS,
                              help="ODE solver of the flow sampler (midpoint: two network "
                                   "calls a step, more accurate than two Euler steps)")
    refit: bool = option(False, action="store_true",
                         help="fit the samplers anew even when one is saved beside the model")

    def __post_init__(self):
        if self.sampler is not None and self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)} or None. "
                             f"Received: sampler={self.sampler!r}")
        checks.positive_ints(self, ("components",))
        check_flow(self)


@dataclasses.dataclass
class SamplersConfig:
    """The latent samplers ``quality`` scores each model with, and how they are
    fitted."""

    samplers: tuple | None = option(
        None, type=sampler_list, metavar="NAME[,NAME...]",
        default_help="all that fit",
        help=f"latent samplers to score, of {', '.join(SAMPLERS)}; each model gets those "
             f"that fit it")
    components: int = same_option(SamplerConfig, "components")
    flow_steps: int = same_option(SamplerConfig, "flow_steps")
    flow_solver: str = same_option(SamplerConfig, "flow_solver")
    refit: bool = same_option(SamplerConfig, "refit")

    def __post_init__(self):
        if self.samplers is not None:
            self.samplers = tuple(self.samplers)
            bad = [name for name in self.samplers if name not in SAMPLERS]
            if bad or not self.samplers:
                raise ValueError(f"samplers must be names of {', '.join(SAMPLERS)}. "
                                 f"Received: samplers={list(self.samplers)}")
        checks.positive_ints(self, ("components",))
        check_flow(self)


@dataclasses.dataclass
class Sampler:
    """Latent sampler -> decoder -> images in [0, 1], shape (n, 28, 28, 1).

    Attributes:
        kind: "vae", "gan" or "cae".
        network: the Keras model that decodes latent points.
        latent_dim: size of its input.
        latent: the code distribution (:mod:`models.samplers`): prior, gaussian,
            gmm, two_stage or flow.
        encoder: the model's encoder where the file holds one (a whole VAE or
            CAE), else None: it gives the reconstructions, the floor of every
            latent sampler of this decoder.
    """

    kind: str
    network: object
    latent_dim: int
    latent: object = None
    encoder: object = None
    fit_seconds: float | None = None  # how long the latent sampler took to fit, if just now

    def __post_init__(self):
        if self.latent is None:
            from models.samplers import PriorSampler
            self.latent = PriorSampler(self.latent_dim)

    @property
    def name(self) -> str:
        return self.latent.name

    def decode(self, z, batch_size: int = 500):
        import numpy as np

        from models.gan import from_gan_range

        images = self.network.predict(np.asarray(z, "float32"), batch_size=batch_size,
                                      verbose=0)
        if self.kind == "gan":
            return from_gan_range(images)
        return np.clip(np.asarray(images, "float32"), 0.0, 1.0)

    def __call__(self, eps, batch_size: int = 500):
        """Images for standard-normal noise ``eps`` of shape (n, latent_dim)
        (prior, gaussian and two_stage samplers: each maps noise to codes)."""
        return self.decode(self.latent.transform(eps), batch_size)

    def sample(self, n: int, seed: int = 0):
        return self.decode(self.latent.sample(n, seed))

    def reconstruct(self, images):
        """``decode(encode(images))`` (a VAE's posterior means): what the decoder
        makes of real images' codes, which no latent sampler can beat."""
        return self.decode(training_codes(self.encoder, images))


def identify(model, path: str):
    """(kind, network) of a loaded model, or UserError if it generates nothing."""
    from models.cae import split_cae
    from models.gan import GAN
    from models.vae import VAE
    from cli.errors import UserError

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


def encoder_of(model):
    """The encoder inside a whole VAE or CAE, the model itself if it is an
    encoder, else None."""
    from models.cae import split_cae
    from models.vae import VAE

    if isinstance(model, VAE):
        return model.encoder
    if model.name == "cae":
        return split_cae(model)[0]
    if model.name in ("encoder", "vae_encoder"):
        return model
    return None


def training_codes(encoder, images):
    """The encoder's codes of ``images`` (a VAE's posterior means)."""
    import numpy as np

    codes = encoder.predict(images, batch_size=512, verbose=0)
    if isinstance(codes, (list, tuple)):  # a VAE encoder: use the means
        codes = codes[0]
    return np.asarray(codes, "float64")


def fit_latent_gaussian(encoder, images) -> dict:
    """Mean and covariance of the encoder's codes of ``images``."""
    from models.samplers import GaussianSampler

    codes = training_codes(encoder, images)
    return GaussianSampler(codes.shape[1]).fit(codes).to_json()


def load_sampler(path: str, gaussian: dict | None = None, sampler: str | None = None,
                 components: int = 10, codes_from: str | None = None,
                 training_images=None, refit: bool = False, seed: int = 0,
                 option: str | None = None, flow_steps: int = FLOW_STEPS,
                 flow_solver: str = FLOW_SOLVER) -> Sampler:
    """The image sampler for a saved model and a latent sampler name.

    The latent sampler is the one saved beside the model when it matches
    (same name, dimension and, for gmm, ``components``) unless ``refit``;
    otherwise it is fitted to the codes of ``training_images()`` (a callable,
    so data load only when needed) by the model's own encoder (a whole
    vae.keras / cae.keras) or the one in ``codes_from``, and saved beside the
    model. ``gaussian`` (a dict from :func:`fit_latent_gaussian`) is used as given.
    With ``option`` (``gan``, ``vae`` or ``cae``: the ``quality`` option that named
    the file), a model of another kind is refused at once. ``flow_steps`` and
    ``flow_solver``: how the flow sampler integrates (not refitted when they change).
    """
    from models import samplers
    from models.saving import load_keras_model
    from cli.errors import UserError

    model = load_keras_model(path, "generator")
    kind, network = identify(model, path)
    if option is not None and kind != option:
        raise UserError(f"--{option} {path!r} holds a {kind.upper()} model; give a "
                        f"{option.upper()} model (or pass this file as --{kind})")
    latent_dim = int(network.input_shape[-1])
    name = sampler or DEFAULT[kind]
    check_valid(name, kind)
    own_encoder = encoder_of(model)
    if gaussian is not None and name == "gaussian":
        return Sampler(kind, network, latent_dim,
                       samplers.GaussianSampler.from_json(gaussian, latent_dim), own_encoder)
    folder = os.path.dirname(path)
    fresh = refit or codes_from is not None  # a named encoder asks for a new fit
    latent = None if fresh else samplers.saved_matches(name, folder, latent_dim, components,
                                                       flow_steps, flow_solver)
    if latent is None:
        encoder = own_encoder if codes_from is None else encoder_from(codes_from, kind)
        file = samplers.CLASSES[name].FILE
        if encoder is None:
            raise UserError(f"{kind.upper()} decoder {path!r} has no {file} beside it; give "
                            f"--codes-from <the {kind} .keras or its encoder.keras> to fit one")
        if training_images is None:
            raise UserError(f"no training images to fit the {name} sampler of {path!r}")
        codes = training_codes(encoder, training_images())
        if codes.shape[1] != latent_dim:
            raise UserError(f"the encoder's codes have dimension {codes.shape[1]}, the "
                            f"decoder {path!r} takes {latent_dim}")
        if name == "gmm" and components > len(codes):  # sklearn's traceback otherwise
            raise UserError(f"--components {components}: a mixture of {components} "
                            f"Gaussians needs at least as many training codes, and there "
                            f"are {len(codes)}; give --components {len(codes)} or fewer")
        start = time.perf_counter()
        latent = samplers.new_sampler(name, latent_dim, components, seed, flow_steps,
                                      flow_solver).fit(codes)
        seconds = time.perf_counter() - start
        latent.save(folder)
        print(f"fitted the {name} sampler to {len(codes)} training codes in {seconds:.1f} s; "
              f"saved beside {path}", flush=True)
        return Sampler(kind, network, latent_dim, latent, own_encoder, seconds)
    return Sampler(kind, network, latent_dim, latent, own_encoder)


def encoder_from(codes_from: str, kind: str = "cae"):
    """The encoder in ``--codes-from`` (a whole CAE/VAE or its encoder.keras)."""
    from models.saving import load_keras_model
    from cli.errors import UserError

    encoder = encoder_of(load_keras_model(codes_from, "--codes-from model"))
    if encoder is None:
        raise UserError(f"--codes-from {codes_from!r} holds no encoder; give the {kind}'s "
                        f".keras or its encoder.keras")
    return encoder


def check_valid(name: str, kind: str) -> None:
    """UserError unless sampler ``name`` applies to a ``kind`` model."""
    from cli.errors import UserError
    if name not in VALID[kind]:
        raise UserError(f"--sampler {name!r} does not fit a {kind.upper()}; valid for a "
                        f"{kind.upper()}: {', '.join(VALID[kind])}")
