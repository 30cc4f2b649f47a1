"""`python main.py vae`: train the variational autoencoder end to end."""

from __future__ import annotations

import dataclasses
import os

from configs.vae import VAEConfig
from data.arguments import DataConfig
from runtime.compute import ComputeConfig
from cli.options import add_config, from_args, option, section, to_dict
from storage.run_folder import OutputConfig, verbose_option
from training.vae import VAETraining

HELP = "train the variational autoencoder (VAE): samples, 2-D manifold, test ELBO"


@dataclasses.dataclass
class VaeTaskConfig:
    """One ``vae`` run."""

    data: DataConfig = section(DataConfig, "data")
    compute: ComputeConfig = section(ComputeConfig, "compute")
    vae: VAEConfig = section(VAEConfig, "VAE")
    training: VAETraining = section(VAETraining, "VAE")
    verbose: int = verbose_option()
    output: OutputConfig = section(OutputConfig, "output")
    resume: bool = option(
        False, action="store_true",
        help="continue the interrupted run in --out (an existing folder) from its last "
             "finished epoch")


def add_arguments(parser) -> None:
    add_config(parser, VaeTaskConfig, task="vae")


def manifold(decoder, n: int = 15):
    """Decodes an n x n grid of the 2-D latent plane, spaced by the Gaussian's
    inverse CDF so each cell holds equal prior mass. Returns (n*n images, grid)."""
    import numpy as np
    from scipy.stats import norm

    grid = norm.ppf(np.linspace(0.05, 0.95, n))
    # Rows go from high z2 (top) to low z2, columns from low z1 to high z1.
    points = np.array([[z1, z2] for z2 in grid[::-1] for z1 in grid], "float32")
    return decoder.predict(points, batch_size=512, verbose=0), grid


def manifold_figure(decoder, path: str, title: str, n: int = 15) -> str:
    import matplotlib.pyplot as plt
    import numpy as np

    from storage.files import save_figure

    images, grid = manifold(decoder, n)
    canvas = np.zeros((28 * n, 28 * n))
    for k, image in enumerate(images):
        i, j = divmod(k, n)
        canvas[i * 28:(i + 1) * 28, j * 28:(j + 1) * 28] = image[..., 0]
    fig, ax = plt.subplots(figsize=(8, 8))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1,
              extent=(grid[0], grid[-1], grid[0], grid[-1]))
    ax.set_xlabel("z[0] (prior quantiles 5%..95%)")
    ax.set_ylabel("z[1]")
    ax.set_title(title)
    return save_figure(fig, path)


def latent_scatter(encoder, images, labels, class_names, path: str, title: str) -> str:
    """Latent means of ``images`` coloured by class (first two PCA axes if > 2-D)."""
    import matplotlib.pyplot as plt
    import numpy as np

    from storage.files import save_figure

    z_mean = np.asarray(encoder.predict(images, batch_size=512, verbose=0)[0])
    axes_label = ("z[0]", "z[1]")
    if z_mean.shape[1] > 2:
        from sklearn.decomposition import PCA
        z_mean = PCA(2, random_state=0).fit_transform(z_mean)
        axes_label = ("PCA 1 of z mean", "PCA 2 of z mean")
    fig, ax = plt.subplots(figsize=(7.5, 6))
    cmap = plt.get_cmap("tab10")
    for c, name in enumerate(class_names):
        sel = labels == c
        ax.scatter(z_mean[sel, 0], z_mean[sel, 1], s=3, alpha=0.6, color=cmap(c), label=name)
    ax.set_xlabel(axes_label[0])
    ax.set_ylabel(axes_label[1])
    ax.set_title(title)
    ax.legend(markerscale=4, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return save_figure(fig, path)


def vae_figures(vae, data, out: str, hist: dict, seed: int) -> None:
    """The ``vae`` task's figures: loss curves, reconstructions, prior samples, the
    2-D manifold (a 2-D latent space only) and the latent means by class."""
    import numpy as np

    from plots.figures import image_grid, image_rows, loss_curves
    from runtime.backend import backend_name

    latent_dim, beta = vae.latent_dim, vae.beta
    tag = f"latent {latent_dim}, beta {beta:g}, {vae.likelihood}, {backend_name()}"
    # A Gaussian's negative log-density falls below zero: no log axis for it.
    loss_curves(hist, os.path.join(out, "loss.png"), f"VAE training ({tag})",
                "nats per image", log_y=vae.likelihood == "bernoulli")
    idx = np.linspace(0, len(data.x_test) - 1, 10).astype(int)
    recon = vae.predict(data.x_test[idx], verbose=0)
    image_rows([data.x_test[idx], recon], ["test image", "reconstruction"],
               os.path.join(out, "reconstructions.png"),
               f"VAE reconstructions ({tag})",
               col_titles=[data.class_names[int(data.y_test[i])] for i in idx])
    z = np.random.default_rng(seed).standard_normal((64, latent_dim)).astype("float32")
    image_grid(vae.decoder.predict(z, verbose=0), os.path.join(out, "samples.png"),
               f"VAE samples, z ~ N(0, I) ({tag})")
    if latent_dim == 2:
        manifold_figure(vae.decoder, os.path.join(out, "manifold.png"),
                        f"VAE 2-D latent manifold ({tag})")
    n = min(5000, len(data.x_test))
    latent_scatter(vae.encoder, data.x_test[:n], data.y_test[:n], data.class_names,
                   os.path.join(out, "latent_scatter.png"),
                   f"VAE latent means of {n} test images ({tag})")


CONFIG = VaeTaskConfig


def run(args) -> str:
    return train(from_args(VaeTaskConfig, args))


def train(config: VaeTaskConfig) -> str:
    """Trains the VAE of ``config`` into its run folder, which it returns."""
    from data.arguments import load_data
    from runtime.backend import seed_everything
    from training.resume import run_folder
    from training.vae import train_vae

    out = run_folder("vae", config.output.out, config.resume, config.output.overwrite)
    seed_everything(config.data.seed)
    data = load_data(config.data)
    seed = config.data.seed
    _, metrics = train_vae(data, config.vae, out, config.training, resume=config.resume,
                           verbose=config.verbose, seed=seed, run_config=to_dict(config),
                           figures=lambda vae, hist: vae_figures(vae, data, out, hist, seed))
    print(f"test ELBO {metrics['test_elbo_nats']:.2f} nats, {metrics['likelihood']} "
          f"likelihood (KL {metrics['test_kl']:.2f}; Bernoulli ELBO "
          f"{metrics['test_elbo_bernoulli_nats']:.2f}, test MSE {metrics['test_mse']:.4f}), "
          f"{metrics['epochs']} epochs in {metrics['wall_time_s']:.0f} s on "
          f"{metrics['backend']}")
    return out
