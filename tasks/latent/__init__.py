"""`python main.py latent`: explore a CAE's latent space and make new images from codes."""

from __future__ import annotations

import dataclasses
import os

from data.arguments import DataConfig
from cli.args import int_list, positive_int
from cli.options import add_config, from_args, option, section, to_dict
from storage.run_folder import OutputConfig, verbose_option
from training.cae_source import CAESource

HELP = ("explore a CAE's latent space: PCA/t-SNE/Isomap views, kNN and silhouette, "
        "a latent-size sweep, new images from codes")


@dataclasses.dataclass
class LatentConfig:
    """One ``latent`` run."""

    data: DataConfig = section(DataConfig, "data")
    source: CAESource = section(CAESource, "CAE")
    output: OutputConfig = section(OutputConfig, "output")
    tsne_samples: int = option(
        2000, type=positive_int, metavar="N",
        help="t-SNE and Isomap (and every view's trustworthiness) use a seeded subsample "
             "of N test codes, as their cost grows faster than linearly with N")
    sweep: list | None = option(
        None, type=int_list, metavar="D1,D2,...",
        help="also train one CAE per latent size, e.g. 2,4,8,16,32, and tabulate test "
             "MSE and kNN accuracy against size")
    resume: bool = option(
        False, action="store_true",
        help="continue the interrupted run in --out: the CAEs it finished are reused, the "
             "one in training continues from its last finished epoch")
    verbose: int = verbose_option()

    def __post_init__(self):
        if int(self.tsne_samples) != self.tsne_samples or self.tsne_samples < 1:
            raise ValueError(f"tsne_samples must be a positive integer. "
                             f"Received: tsne_samples={self.tsne_samples}")
        if self.sweep is not None and (not self.sweep or min(self.sweep) < 1):
            raise ValueError(f"sweep must hold positive latent sizes. "
                             f"Received: sweep={self.sweep}")


def add_arguments(parser) -> None:
    add_config(parser, LatentConfig, task="latent")


CONFIG = LatentConfig


def run(args) -> str:
    return explore(from_args(LatentConfig, args))


def explore(config: LatentConfig) -> str:
    """Explores the CAE of ``config`` into its run folder, which it returns."""
    import numpy as np

    from data.arguments import load_data
    from evaluation.metrics import mse, psnr
    from models.cae import split_cae
    from runtime.backend import backend_name, seed_everything
    from storage.files import write_json
    from storage.run_folder import make_run_dir
    from tasks.latent.samples import gaussian_samples, interpolations, pca_grid
    from tasks.latent.sweep import encode, sweep
    from tasks.latent.views import knn_accuracy, silhouette, views
    from training.cae_source import latent_dim_of, load_cae
    from training.phases import PhasedRun, cae_phase, resume_folder

    seed = config.data.seed
    out = resume_folder("latent", config.output.out, config.resume)
    out = make_run_dir("latent", out, overwrite=config.output.overwrite, resume=config.resume)
    if config.source.model is not None:  # fail on a bad file before loading data
        model, encoder, decoder = load_cae(config.source.model)
        source = config.source.model
    seed_everything(seed)
    data = load_data(config.data)
    run = PhasedRun(out, config.resume)
    run.check_options(to_dict(config))
    if config.source.model is None:
        model, source = cae_phase(run, "cae", 0, data, config.source.cae,
                                  config.source.training, os.path.join(out, "cae"),
                                  verbose=config.verbose, seed=seed)
        encoder, decoder = split_cae(model)

    train_codes, test_codes = encode(encoder, data.x_train), encode(encoder, data.x_test)
    recon = np.asarray(model.predict(data.x_test, batch_size=512, verbose=0))
    metrics = {
        "task": "latent", "config": to_dict(config), "dataset": data.name, "data_source": data.source,
        "backend": backend_name(), "model": source,
        "latent_dim": latent_dim_of(encoder),
        "train_images": int(len(data.x_train)), "test_images": int(len(data.x_test)),
        "test_mse": mse(recon, data.x_test), "test_psnr_db": psnr(recon, data.x_test),
        "knn5_accuracy": knn_accuracy(train_codes, data.y_train, test_codes, data.y_test),
        "silhouette_by_class": silhouette(test_codes, data.y_test, seed),
    }
    print(f"kNN (k=5) accuracy {metrics['knn5_accuracy']:.4f}, silhouette "
          f"{metrics['silhouette_by_class']}", flush=True)
    metrics["views"] = views(test_codes, data.y_test, data.class_names, out, seed,
                             config.tsne_samples, data.name)
    metrics["trustworthiness"] = {m: metrics["views"][m]["trustworthiness"]
                                  for m in ("pca", "tsne", "isomap")}
    metrics["samples"] = {
        "pca_grid": pca_grid(decoder, test_codes, os.path.join(out, "samples_pca_grid.png"),
                             seed),
        "gaussian": gaussian_samples(decoder, train_codes,
                                     os.path.join(out, "samples_gaussian.png"), seed),
        "interpolation": interpolations(decoder, test_codes, data.y_test, data.x_test,
                                        data.class_names,
                                        os.path.join(out, "samples_interpolation.png"),
                                        seed),
    }
    write_json(os.path.join(out, "metrics.json"), metrics)  # written now and after the sweep
    if config.sweep:
        metrics["sweep"] = sweep(run, config.source, data, config.sweep,
                                 os.path.join(out, "sweep"), verbose=config.verbose, seed=seed)
        write_json(os.path.join(out, "metrics.json"), metrics)
    return out
