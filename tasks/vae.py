"""`python main.py vae`: train the variational autoencoder end to end."""

from __future__ import annotations

import dataclasses
import os
import time

from configs.vae import VAEConfig, VAETraining
from data.arguments import DataConfig
from runtime.compute import ComputeConfig
from runtime.options import add_config, from_args, section, to_dict
from storage.run_folder import OutputConfig, verbose_option

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


def train_vae(data, out: str, config: VaeTaskConfig | None = None) -> dict:
    """Trains the VAE of ``config`` (default: the defaults); writes models,
    metrics and figures into ``out``; returns the metrics and the ``model``."""
    import keras

    from models.optimizers import adam
    from models.vae import build_vae
    from runtime.backend import layer_seed
    from runtime.errors import check_losses_finite

    config = config or VaeTaskConfig()
    model, training = config.vae, config.training
    vae = build_vae(latent_dim=model.latent_dim, width=model.width, beta=model.beta,
                    seed=layer_seed(config.data.seed))
    vae.compile(optimizer=adam(training.lr))
    start = time.perf_counter()
    history = vae.fit(data.x_train, validation_data=(data.x_val,), epochs=training.epochs,
                      batch_size=training.batch_size, verbose=config.verbose,
                      callbacks=[keras.callbacks.TerminateOnNaN()])
    wall = time.perf_counter() - start
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    check_losses_finite(hist, f"try a lower --lr than {training.lr:g}")
    metrics = write_vae_outputs(vae, data, out, hist, wall, config)
    return {**metrics, "model": vae}


def write_vae_outputs(vae, data, out: str, hist: dict, wall: float,
                      config: VaeTaskConfig) -> dict:
    """Evaluates a VAE trained as ``config`` says and writes its models, metrics
    (with ``config``) and figures."""
    import numpy as np

    from models.saving import save_model
    from plots.figures import image_grid, image_rows, loss_curves
    from runtime.backend import backend_name
    from runtime.compute import describe
    from storage.files import write_json

    latent_dim, beta, seed = vae.latent_dim, vae.beta, config.data.seed
    width = int(vae.encoder.get_layer("conv1").filters)
    test = vae.evaluate(data.x_test, batch_size=512, verbose=0, return_dict=True)
    test = {k: float(v) for k, v in test.items()}

    save_model(vae, os.path.join(out, "vae.keras"))
    save_model(vae.encoder, os.path.join(out, "encoder.keras"))
    save_model(vae.decoder, os.path.join(out, "decoder.keras"))
    write_json(os.path.join(out, "history.json"), hist)
    elbo = -(test["reconstruction_loss"] + test["kl_loss"])
    metrics = {
        "task": "vae", "dataset": data.name, "data_source": data.source,
        "backend": backend_name(), **describe(), "latent_dim": latent_dim, "width": width,
        "beta": beta,
        # One reparameterised sample per test image: a stochastic estimate.
        "test_elbo_nats": elbo,
        "test_reconstruction_bce": test["reconstruction_loss"],
        "test_kl": test["kl_loss"],
        "epochs": len(hist["loss"]), "wall_time_s": wall, "train_images": int(len(data.x_train)),
        "test_images": int(len(data.x_test)), "batch_size": config.training.batch_size,
        "learning_rate": config.training.lr, "parameters": int(vae.count_params()),
        "config": to_dict(config),
    }
    write_json(os.path.join(out, "metrics.json"), metrics)

    tag = f"latent {latent_dim}, beta {beta:g}, {backend_name()}"
    loss_curves(hist, os.path.join(out, "loss.png"), f"VAE training ({tag})",
                "nats per image")
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
    return metrics


CONFIG = VaeTaskConfig


def run(args) -> str:
    return train(from_args(VaeTaskConfig, args))


def train(config: VaeTaskConfig) -> str:
    """Trains the VAE of ``config`` into its run folder, which it returns."""
    from data.arguments import load_data
    from runtime.backend import seed_everything
    from storage.run_folder import make_run_dir

    out = make_run_dir("vae", config.output.out, overwrite=config.output.overwrite)
    seed_everything(config.data.seed)
    data = load_data(config.data)
    metrics = train_vae(data, out, config)
    print(f"test ELBO {metrics['test_elbo_nats']:.2f} nats (BCE "
          f"{metrics['test_reconstruction_bce']:.2f}, KL {metrics['test_kl']:.2f}), "
          f"{metrics['epochs']} epochs in {metrics['wall_time_s']:.0f} s on "
          f"{metrics['backend']}")
    return out
