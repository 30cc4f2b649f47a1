"""`python main.py denoise`: the plain CAE against a denoising CAE on every noise."""

from __future__ import annotations

import argparse
import os
import zlib

from data.arguments import add_data_arguments
from runtime.args import int_list
from storage.run_folder import add_output_arguments

HELP = ("train a denoising CAE and compare it with the plain CAE on Gaussian, "
        "salt-and-pepper, uniform, occlusion and mixed noise")


def noise_list(text: str) -> list:
    """argparse type: ``all`` or comma-separated noise names."""
    from data.noise_spec import parse_noise_list  # no Keras: argparse runs before it

    try:
        return parse_noise_list(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from runtime.compute import add_compute_arguments
    from training.cae import add_cae_arguments
    from training.cae_source import add_model_argument

    add_model_argument(parser, "the plain CAE to evaluate")
    add_data_arguments(parser)
    add_cae_arguments(parser)
    add_compute_arguments(parser)
    add_output_arguments(parser, "denoise")
    parser.add_argument("--noises", type=noise_list, default="all", metavar="LIST",
                        help="noises to evaluate on: comma-separated from none, gaussian:SIGMA, "
                             "salt_pepper:AMOUNT, uniform, occlusion, mixed:AMOUNT:SIGMA; "
                             "'all' (default) is none, gaussian:0.1,0.3,0.5,1,2, "
                             "salt_pepper:0.1, uniform, occlusion, mixed:0.1:0.3")
    parser.add_argument("--train-noise", type=noise_list, default="all", metavar="LIST",
                        help="the denoising CAE's training corruption: each image of every "
                             "batch gets one noise of this list, drawn afresh (default all, "
                             "as for --noises)")
    parser.add_argument("--from-scratch", action="store_true",
                        help="train the denoising CAE from random weights; by default it "
                             "starts from the plain CAE's weights (fine-tuning), which keeps "
                             "its error on clean and mildly noisy images low")
    parser.add_argument("--latent-dims", type=int_list, default=None, metavar="D1,D2,...",
                        help="repeat the study for these latent sizes, e.g. 4,32 (default: "
                             "the --model's size, else --latent-dim)")
    parser.add_argument("--examples", type=int, default=8, choices=range(1, 21), metavar="N",
                        help="test images per example figure, 1-20 (default 8)")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                        help="Keras progress when training: 0 silent, 1 bar (default), 2 per epoch")


def noisy_test_set(x, spec, seed: int):
    """The fixed evaluation set for one noise: the same ``seed`` gives the same images."""
    from models.noise import apply_noise

    # Seed per noise name, so evaluating a subset of noises gives the same sets.
    return apply_noise(x, spec, seed=[seed, zlib.crc32(spec.name.encode())])


def run(args) -> str:
    import numpy as np

    from data.arguments import load_data
    from evaluation.metrics import mse, psnr
    from models.noise import make_noise_layer
    from runtime.backend import backend_name, layer_seed, seed_everything
    from runtime.compute import describe
    from storage.files import write_json, write_text
    from storage.run_folder import make_run_dir
    from tasks.denoise.report import example_rows, markdown_table, mse_bars
    from training.cae_source import latent_dim_of, load_cae, obtain_cae
    from training.callbacks import StartFrom

    out = make_run_dir("denoise", args.out, overwrite=args.overwrite)
    given = load_cae(args.model) if args.model else None  # a bad file fails before training
    given_dim = latent_dim_of(given[1]) if given else None
    dims = args.latent_dims or [given_dim or args.latent_dim]
    seed_everything(args.seed)
    data = load_data(args)
    noisy = {s.name: noisy_test_set(data.x_test, s, args.seed) for s in args.noises}
    idx = np.linspace(0, len(data.x_test) - 1, min(args.examples, len(data.x_test))).astype(int)
    titles = [data.class_names[int(data.y_test[i])] for i in idx]

    def predict(model, x):
        return np.asarray(model.predict(x, batch_size=512, verbose=0))

    rows, sources = [], {}
    for dim in dims:
        if given and dim == given_dim:
            plain, source = given[0], args.model
        else:
            plain, _, _, source = obtain_cae(args, data, os.path.join(out, f"plain_ld{dim}"),
                                             latent_dim=dim)
        layer = make_noise_layer(args.train_noise, seed=layer_seed(args.seed))
        start = () if args.from_scratch else (StartFrom(plain),)
        denoiser, _, _, den_source = obtain_cae(
            args, data, os.path.join(out, f"denoising_ld{dim}"), latent_dim=dim, noise=layer,
            extra_callbacks=start)
        sources[dim] = {"plain": source, "denoising": den_source}
        for spec in args.noises:
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
        "task": "denoise", "dataset": data.name, "data_source": data.source,
        "backend": backend_name(), **describe(), "seed": args.seed, "latent_dims": dims,
        "train_noise": [s.name for s in args.train_noise],
        "denoising_start": "random weights" if args.from_scratch else "plain CAE weights",
        "test_images": int(len(data.x_test)), "train_images": int(len(data.x_train)),
        "models": sources, "results": rows,
        "denoising_beats_plain_on_every_noise": all(r["denoising_better"] for r in noisy_rows),
    }
    write_json(os.path.join(out, "metrics.json"), metrics)
    write_json(os.path.join(out, "results.json"), rows)
    write_text(os.path.join(out, "results.md"), markdown_table(rows, data.name))
    print(markdown_table(rows, data.name))
    return out
