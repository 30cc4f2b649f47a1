"""Distributions over a decoder's latent codes: what `generate` and `quality` feed it.

Each sampler has ``fit(codes)``, ``sample(n, seed)`` -> float32 codes (n, d),
``save(folder)`` and ``load(folder)``; its files sit beside the decoder and are
plain JSON or a plain Keras model, so the decoder and its sampler load
without this repository.

* ``prior``: N(0, I), the VAE's and the GAN's own prior; nothing to fit.
* ``gaussian``: one Gaussian fitted to the training codes (a CAE has no prior).
* ``gmm``: a Gaussian mixture fitted to the training codes "ex post" (Ghosh et
  al. 2020, RAE): scikit-learn ``GaussianMixture``, full covariances.
* ``two_stage``: a second small VAE trained on the codes (Dai & Wipf 2019,
  :mod:`models.two_stage`); its prior is N(0, I) and its decoder maps to codes.
* ``flow``: a velocity network trained by flow matching on the standardised
  codes (:mod:`models.flow_prior`); N(0, I) noise integrated along it in a
  fixed number of ODE steps becomes codes.
"""

from __future__ import annotations

import os


class PriorSampler:
    name = "prior"
    needs_fit = False

    def __init__(self, dim: int):
        self.dim = int(dim)

    def fit(self, codes):
        return self

    def transform(self, eps):
        """Codes for standard-normal noise ``eps`` (n, dim)."""
        import numpy as np
        return np.asarray(eps, "float32")

    def sample(self, n: int, seed: int = 0):
        import numpy as np
        return self.transform(np.random.default_rng(seed).standard_normal((n, self.dim)))

    def save(self, folder: str) -> None:
        pass

    @classmethod
    def exists(cls, folder: str) -> bool:
        return True

    @classmethod
    def load(cls, folder: str, dim: int):
        return cls(dim)


class GaussianSampler(PriorSampler):
    """z = mean + chol @ eps, fitted to codes; stored as ``latent_gaussian.json``."""

    name = "gaussian"
    needs_fit = True
    FILE = "latent_gaussian.json"

    def __init__(self, dim: int, mean=None, cov=None, n_codes: int = 0):
        super().__init__(dim)
        self.mean, self.cov, self.n_codes = mean, cov, int(n_codes)

    def fit(self, codes):
        import numpy as np
        codes = np.asarray(codes, "float64")
        self.mean = codes.mean(axis=0)
        self.cov = np.atleast_2d(np.cov(codes, rowvar=False))
        self.n_codes = len(codes)
        return self

    def transform(self, eps):
        import numpy as np
        chol = np.linalg.cholesky(np.asarray(self.cov) + 1e-6 * np.eye(self.dim))
        return (np.asarray(self.mean) + np.asarray(eps) @ chol.T).astype("float32")

    def to_json(self) -> dict:
        import numpy as np
        return {"mean": np.asarray(self.mean).tolist(), "cov": np.asarray(self.cov).tolist(),
                "n_codes": self.n_codes}

    def save(self, folder: str) -> None:
        from storage.files import write_json
        write_json(os.path.join(folder, self.FILE), self.to_json())

    @classmethod
    def exists(cls, folder: str) -> bool:
        return os.path.isfile(os.path.join(folder, cls.FILE))

    @classmethod
    def from_json(cls, obj: dict, dim: int):
        import numpy as np
        mean, cov = np.asarray(obj["mean"], "float64"), np.asarray(obj["cov"], "float64")
        check_dim(mean.shape[0], dim, cls.FILE)
        if cov.shape != (dim, dim):
            check_dim(cov.shape[0], dim, cls.FILE)
        return cls(dim, mean, cov, obj.get("n_codes", 0))

    @classmethod
    def load(cls, folder: str, dim: int):
        from storage.files import read_json
        return cls.from_json(read_json(os.path.join(folder, cls.FILE)), dim)


class MixtureSampler(GaussianSampler):
    """A K-component full-covariance Gaussian mixture; ``latent_gmm.json``.

    Sampling is numpy from the stored parameters (component by weight, then
    mean + chol @ eps), so a reloaded mixture draws the same codes per seed.
    """

    name = "gmm"
    FILE = "latent_gmm.json"

    def __init__(self, dim: int, components: int = 10, seed: int = 0, weights=None,
                 means=None, covariances=None, n_codes: int = 0):
        PriorSampler.__init__(self, dim)
        self.components, self.seed = int(components), int(seed)
        self.weights, self.means, self.covariances = weights, means, covariances
        self.n_codes = int(n_codes)

    def fit(self, codes):
        import numpy as np
        from sklearn.mixture import GaussianMixture

        codes = np.asarray(codes, "float64")
        gmm = GaussianMixture(self.components, covariance_type="full", reg_covar=1e-5,
                              random_state=self.seed).fit(codes)
        self.weights, self.means, self.covariances = gmm.weights_, gmm.means_, gmm.covariances_
        self.n_codes = len(codes)
        return self

    def sample(self, n: int, seed: int = 0):
        import numpy as np

        rng = np.random.default_rng(seed)
        weights = np.asarray(self.weights, "float64")
        which = rng.choice(len(weights), size=n, p=weights / weights.sum())
        eps = rng.standard_normal((n, self.dim))
        codes = np.empty((n, self.dim))
        for k in range(len(weights)):
            sel = which == k
            chol = np.linalg.cholesky(np.asarray(self.covariances[k]))
            codes[sel] = np.asarray(self.means[k]) + eps[sel] @ chol.T
        return codes.astype("float32")

    def transform(self, eps):
        raise ValueError("a mixture draws its own noise: call sample(n, seed)")

    def to_json(self) -> dict:
        import numpy as np
        return {"components": self.components, "seed": self.seed, "n_codes": self.n_codes,
                "weights": np.asarray(self.weights).tolist(),
                "means": np.asarray(self.means).tolist(),
                "covariances": np.asarray(self.covariances).tolist()}

    @classmethod
    def from_json(cls, obj: dict, dim: int):
        import numpy as np
        means = np.asarray(obj["means"], "float64")
        check_dim(means.shape[1], dim, cls.FILE)
        return cls(dim, obj["components"], obj.get("seed", 0),
                   np.asarray(obj["weights"], "float64"), means,
                   np.asarray(obj["covariances"], "float64"), obj.get("n_codes", 0))


class TwoStageSampler(PriorSampler):
    """u ~ N(0, I) through the second-stage decoder: ``two_stage_decoder.keras``."""

    name = "two_stage"
    needs_fit = True
    FILE = "two_stage_decoder.keras"

    def __init__(self, dim: int, decoder=None, epochs: int = 40, seed: int = 0):
        super().__init__(dim)
        self.decoder, self.epochs, self.seed = decoder, int(epochs), int(seed)
        self.history = None

    def fit(self, codes):
        import numpy as np

        from models.two_stage import train_code_vae
        self.decoder, self.history = train_code_vae(np.asarray(codes, "float32"),
                                                    epochs=self.epochs, seed=self.seed)
        return self

    def transform(self, eps):
        import numpy as np
        u = np.asarray(eps, "float32")
        return np.asarray(self.decoder.predict(u, batch_size=1000, verbose=0), "float32")

    def save(self, folder: str) -> None:
        from models.saving import save_model
        save_model(self.decoder, os.path.join(folder, self.FILE))

    @classmethod
    def exists(cls, folder: str) -> bool:
        return os.path.isfile(os.path.join(folder, cls.FILE))

    @classmethod
    def load(cls, folder: str, dim: int):
        from models.saving import load_keras_model
        decoder = load_keras_model(os.path.join(folder, cls.FILE), "two-stage decoder")
        check_dim(int(decoder.input_shape[-1]), dim, cls.FILE)
        return cls(dim, decoder)


class FlowSampler(PriorSampler):
    """Noise carried to codes by a flow-matching velocity network.

    Stored as ``latent_flow.keras`` (the network, plain Keras) and
    ``latent_flow.json`` (the codes' mean and std it standardises with, and how it
    was fitted). ``steps`` and ``solver`` are how it is sampled, not fitted, so a
    saved flow serves any number of steps.
    """

    name = "flow"
    needs_fit = True
    FILE = "latent_flow.keras"
    STATS_FILE = "latent_flow.json"

    def __init__(self, dim: int, velocity=None, mean=None, std=None, steps: int | None = None,
                 solver: str | None = None, seed: int = 0, epochs: int | None = None,
                 width: int | None = None, batch_size: int | None = None, n_codes: int = 0):
        from models import flow_prior

        super().__init__(dim)
        self.velocity, self.mean, self.std = velocity, mean, std
        self.steps = flow_prior.STEPS if steps is None else int(steps)
        self.solver = flow_prior.SOLVER if solver is None else solver
        self.seed = int(seed)
        self.epochs = flow_prior.EPOCHS if epochs is None else int(epochs)
        self.width = flow_prior.WIDTH if width is None else int(width)
        self.batch_size = flow_prior.BATCH_SIZE if batch_size is None else int(batch_size)
        self.n_codes = int(n_codes)
        self.history = None

    def fit(self, codes):
        from models.flow_prior import train_flow

        self.velocity, self.mean, self.std, self.history = train_flow(
            codes, epochs=self.epochs, batch_size=self.batch_size, width=self.width,
            seed=self.seed)
        self.n_codes = len(codes)
        return self

    def transform(self, eps):
        import numpy as np

        from models.flow_prior import integrate
        x = integrate(self.velocity, eps, self.steps, self.solver)
        return (x * np.asarray(self.std) + np.asarray(self.mean)).astype("float32")

    def save(self, folder: str) -> None:
        import numpy as np

        from models.saving import save_model
        from storage.files import write_json
        # The network first: exists() asks for both files, so a crash between
        # the two leaves no flow that loads.
        save_model(self.velocity, os.path.join(folder, self.FILE))
        write_json(os.path.join(folder, self.STATS_FILE), {
            "mean": np.asarray(self.mean).tolist(), "std": np.asarray(self.std).tolist(),
            "n_codes": self.n_codes, "epochs": self.epochs, "batch_size": self.batch_size,
            "width": self.width, "seed": self.seed})

    @classmethod
    def exists(cls, folder: str) -> bool:
        return all(os.path.isfile(os.path.join(folder, f)) for f in (cls.FILE, cls.STATS_FILE))

    @classmethod
    def load(cls, folder: str, dim: int):
        import numpy as np

        from models.saving import load_keras_model
        from storage.files import read_json
        velocity = load_keras_model(os.path.join(folder, cls.FILE), "flow velocity network")
        shapes = velocity.input_shape if isinstance(velocity.input_shape, list) else []
        if len(shapes) != 2 or tuple(shapes[1]) != (None, 1):
            from cli.errors import UserError
            raise UserError(f"{cls.FILE} in {folder!r} holds no flow velocity network (inputs "
                            f"[codes, time]); refit it (--refit)")
        check_dim(int(shapes[0][-1]), dim, cls.FILE)
        check_dim(int(velocity.output_shape[-1]), dim, cls.FILE)
        stats = read_json(os.path.join(folder, cls.STATS_FILE))
        mean, std = np.asarray(stats["mean"], "float64"), np.asarray(stats["std"], "float64")
        check_dim(len(mean), dim, cls.STATS_FILE)
        check_dim(len(std), dim, cls.STATS_FILE)
        return cls(dim, velocity, mean, std, seed=stats.get("seed", 0),
                   epochs=stats.get("epochs"), width=stats.get("width"),
                   batch_size=stats.get("batch_size"), n_codes=stats.get("n_codes", 0))


CLASSES = {c.name: c for c in (PriorSampler, GaussianSampler, MixtureSampler,
                               TwoStageSampler, FlowSampler)}


def check_dim(got: int, dim: int, file: str) -> None:
    from cli.errors import UserError
    if got != dim:
        raise UserError(f"the sampler {file} has dimension {got}, the decoder takes {dim}; "
                        f"refit it (--refit)")


def new_sampler(name: str, dim: int, components: int = 10, seed: int = 0,
                flow_steps: int | None = None, flow_solver: str | None = None):
    """An unfitted sampler."""
    if name == "gmm":
        return MixtureSampler(dim, components, seed=seed)
    if name == "two_stage":
        return TwoStageSampler(dim, seed=seed)
    if name == "flow":
        return FlowSampler(dim, steps=flow_steps, solver=flow_solver, seed=seed)
    return CLASSES[name](dim)


def saved_matches(name: str, folder: str, dim: int, components: int,
                  flow_steps: int | None = None, flow_solver: str | None = None):
    """The sampler saved in ``folder`` if there is one fitting the request, else None."""
    cls = CLASSES[name]
    if not cls.needs_fit:
        return cls(dim)
    if not cls.exists(folder):
        return None
    sampler = cls.load(folder, dim)
    if name == "gmm" and sampler.components != components:
        return None  # another K was asked for: refit
    if name == "flow":  # how to sample, not what was fitted
        sampler.steps = sampler.steps if flow_steps is None else int(flow_steps)
        sampler.solver = flow_solver or sampler.solver
    return sampler
