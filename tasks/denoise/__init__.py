"""`python main.py denoise`: the plain CAE against a denoising CAE on every noise."""

from __future__ import annotations

import argparse
import dataclasses
import os
import zlib

from data.arguments import DataConfig
from data.noise_spec import parse_noise_list
from cli.args import int_list
from runtime.compute import ComputeConfig
from cli.options import add_config, from_args, option, section, to_dict
from storage.run_folder import OutputConfig, verbose_option
from training.cae_source import CAESource

HELP = ("train a denoising CAE and compare it with the plain CAE on Gaussian, "
        "salt-and-pepper, uniform, occlusion and mixed noise")


def noise_list(text: str) -> list:
    """argparse type: ``all`` or comma-separated noise names."""
    try:
        return parse_noise_list(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


@dataclasses.dataclass
class DenoiseConfig:
    """One ``denoise`` run. ``noises`` and ``train_noise`` hold
    :class:`data.noise_spec.NoiseSpec` lists; given as text (``"all"``, the
    default, or comma-separated names) they are parsed."""

    data: DataConfig = section(DataConfig, "data")
    source: CAESource = section(CAESource, "CAE")
    compute: ComputeConfig = section(ComputeConfig, "compute")
    output: OutputConfig = section(OutputConfig, "output")
    noises: list = option(
        "all", type=noise_list, metavar="LIST",
        help="noises to evaluate on: comma-separated from none, gaussian:SIGMA, "
             "salt_pepper:AMOUNT, uniform, occlusion, mixed:AMOUNT:SIGMA; all is none, "
             "gaussian:0.1,0.3,0.5,1,2, salt_pepper:0.1, uniform, occlusion, mixed:0.1:0.3")
    train_noise: list = option(
        "all", type=noise_list, metavar="LIST",
        help="the denoising CAE's training corruption: each image of every batch gets one "
             "noise of this list, drawn afresh (names as for --noises)")
    from_scratch: bool = option(
        False, action="store_true",
        help="train the denoising CAE from random weights; without it, it starts from the "
             "plain CAE's weights (fine-tuning), which keeps its error on clean and mildly "
             "noisy images low")
    latent_dims: list | None = option(
        None, type=int_list, metavar="D1,D2,...",
        default_help="the --model's size, else --latent-dim",
        help="repeat the study for these latent sizes, e.g. 4,32")
    examples: int = option(8, type=int, choices=range(1, 21), metavar="N",
                           help="test images per example figure, 1-20")
    resume: bool = option(
        False, action="store_true",
        help="continue the interrupted run in --out: the CAEs it finished are reused, the "
             "one in training continues from its last finished epoch")
    verbose: int = verbose_option()

    def __post_init__(self):
        if isinstance(self.noises, str):
            self.noises = parse_noise_list(self.noises)
        if isinstance(self.train_noise, str):
            self.train_noise = parse_noise_list(self.train_noise)
        if self.latent_dims is not None and (not self.latent_dims or min(self.latent_dims) < 1):
            raise ValueError(f"latent_dims must hold positive latent sizes. "
                             f"Received: latent_dims={self.latent_dims}")
        if self.examples not in range(1, 21):
            raise ValueError(f"examples must be in 1-20. Received: examples={self.examples}")


def add_arguments(parser) -> None:
    add_config(parser, DenoiseConfig, task="denoise")


def noisy_test_set(x, spec, seed: int):
    """The fixed evaluation set for one noise: the same ``seed`` gives the same images."""
    from models.noise import apply_noise

    # Seed per noise name, so evaluating a subset of noises gives the same sets.
    return apply_noise(x, spec, seed=[seed, zlib.crc32(spec.name.encode())])


CONFIG = DenoiseConfig


def run(args) -> str:
    return study(from_args(DenoiseConfig, args))


def study(config: DenoiseConfig) -> str:
    """Runs the denoising study of ``config`` into its run folder, which it returns."""
    import numpy as np

    from data.arguments import load_data
    from evaluation.metrics import mse, psnr
    from models.noise import make_noise_layer
    from runtime.backend import backend_name, layer_seed, seed_everything
    from runtime.compute import describe
    from storage.files import write_json, write_text
    from storage.run_folder import make_run_dir
    from tasks.denoise.report import example_rows, markdown_table, mse_bars
    from training.cae_source import latent_dim_of, load_cae
    from training.phases import PhasedRun, cae_phase, resume_folder, with_latent_dim

    seed, verbose = config.data.seed, config.verbose
    out = resume_folder("denoise", config.output.out, config.resume)
    out = make_run_dir("denoise", out, overwrite=config.output.overwrite, resume=config.resume)
    run = PhasedRun(out, config.resume)
    run.check_options(to_dict(config))
    model_path = config.source.model
    given = load_cae(model_path) if model_path else None  # a bad file fails before training
    given_dim = latent_dim_of(given[1]) if given else None
    dims = config.latent_dims or [given_dim or config.source.cae.latent_dim]
    seed_everything(seed)
    data = load_data(config.data)
    noisy = {s.name: noisy_test_set(data.x_test, s, seed) for s in config.noises}
    idx = np.linspace(0, len(data.x_test) - 1, min(config.examples, len(data.x_test))).astype(int)
    titles = [data.class_names[int(data.y_test[i])] for i in idx]

    def predict(model, x):
        return np.asarray(model.predict(x, batch_size=512, verbose=0))

    def train(phase, index, dim, **kwargs):
        return cae_phase(run, f"{phase}_ld{dim}", index, data,
                         with_latent_dim(config.source.cae, dim), config.source.training,
                         os.path.join(out, f"{phase}_ld{dim}"), verbose=verbose, seed=seed,
                         **kwargs)

    rows, sources = [], {}
    for k, dim in enumerate(dims):
        if given and dim == given_dim:
            plain, source = given[0], model_path
        else:
            plain, source = train("plain", 2 * k, dim)
        layer = make_noise_layer(config.train_noise, seed=layer_seed(seed))
        denoiser, den_source = train("denoising", 2 * k + 1, dim, noise=layer,
                                     start_from=None if config.from_scratch else plain)
        sources[dim] = {"plain": source, "denoising": den_source}
        for spec in config.noises:
            x = noisy[spec.name]
            p, d = predict(plain, x), predict(denoiser, x)
            row = {"noise": spec.name, "label": spec.label, "latent_dim": dim,
                   "input_mse": mse(x, data.x_test), "input_psnr_db": psnr(x, data.x_test),
                   "plain_mse": mse(p, data.x_test), "plain_psnr_db": psnr(p, data.x_test),
                   "denoising_mse": mse(d, data.x_test),
                   "denoising_psnr_db": psnr(d, data.x_test)}
            row["denoising_better"] = row["denoising_mse"] < row["plain_mse"]
            rows.append(row)
            print(f"latent {dim} {spec.name:>16}: MSE plain {row['plain_mse']:.4f}, "
                  f"denoising {row['denoising_mse']:.4f}", flush=True)
            safe = spec.name.replace(":", "_").replace(".", "p")
            example_rows(x[idx], p[idx], d[idx], data.x_test[idx], titles, row,
                         os.path.join(out, f"examples_ld{dim}_{safe}.png"))
        mse_bars(rows, os.path.join(out, f"mse_ld{dim}.png"), dim, data.name)

    noisy_rows = [r for r in rows if r["noise"] != "none"]
    metrics = {
        "task": "denoise", "config": to_dict(config), "dataset": data.name, "data_source": data.source,
        "backend": backend_name(), **describe(), "seed": seed, "latent_dims": dims,
        "train_noise": [s.name for s in config.train_noise],
        "denoising_start": "random weights" if config.from_scratch else "plain CAE weights",
        "test_images": int(len(data.x_test)), "train_images": int(len(data.x_train)),
        "models": sources, "results": rows,
        "denoising_beats_plain_on_every_noise": all(r["denoising_better"] for r in noisy_rows),
    }
    write_json(os.path.join(out, "metrics.json"), metrics)
    write_json(os.path.join(out, "results.json"), rows)
    write_text(os.path.join(out, "results.md"), markdown_table(rows, data.name))
    print(markdown_table(rows, data.name))
    return out
