"""`python main.py latent`: explore a CAE's latent space and make new images from codes."""

from __future__ import annotations

import argparse
import os

from data.arguments import add_data_arguments
from runtime.args import int_list, positive_int
from storage.run_folder import add_output_arguments

HELP = ("explore a CAE's latent space: PCA/t-SNE/Isomap views, kNN and silhouette, "
        "a latent-size sweep, new images from codes")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from training.cae import add_cae_arguments
    from training.cae_source import add_model_argument

    add_model_argument(parser, "the CAE to explore")
    add_data_arguments(parser)
    add_cae_arguments(parser)
    add_output_arguments(parser, "latent")
    parser.add_argument("--tsne-samples", type=positive_int, default=2000, metavar="N",
                        help="t-SNE and Isomap (and every view's trustworthiness) use a seeded "
                             "subsample of N test codes, to stay within minutes on 2 cores (default 2000)")
    parser.add_argument("--sweep", type=int_list, default=None, metavar="D1,D2,...",
                        help="also train one CAE per latent size, e.g. 2,4,8,16,32, and "
                             "tabulate test MSE and kNN accuracy against size")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                        help="Keras progress when training: 0 silent, 1 bar (default), 2 per epoch")


def run(args) -> str:
    import numpy as np

    from data.arguments import load_data
    from evaluation.metrics import mse, psnr
    from runtime.backend import backend_name, seed_everything
    from storage.files import write_json
    from storage.run_folder import make_run_dir
    from tasks.latent.samples import gaussian_samples, interpolations, pca_grid
    from tasks.latent.sweep import encode, sweep
    from tasks.latent.views import knn_accuracy, silhouette, views
    from training.cae_source import latent_dim_of, obtain_cae

    out = make_run_dir("latent", args.out, overwrite=args.overwrite)
    if args.model is not None:  # fail on a bad file before loading data
        from training.cae_source import load_cae
        load_cae(args.model)
    seed_everything(args.seed)
    data = load_data(args)
    model, encoder, decoder, source = obtain_cae(args, data, os.path.join(out, "cae"))

    train_codes, test_codes = encode(encoder, data.x_train), encode(encoder, data.x_test)
    recon = np.asarray(model.predict(data.x_test, batch_size=512, verbose=0))
    metrics = {
        "task": "latent", "dataset": data.name, "data_source": data.source,
        "backend": backend_name(), "model": source,
        "latent_dim": latent_dim_of(encoder),
        "train_images": int(len(data.x_train)), "test_images": int(len(data.x_test)),
        "test_mse": mse(recon, data.x_test), "test_psnr_db": psnr(recon, data.x_test),
        "knn5_accuracy": knn_accuracy(train_codes, data.y_train, test_codes, data.y_test),
        "silhouette_by_class": silhouette(test_codes, data.y_test, args.seed),
    }
    print(f"kNN (k=5) accuracy {metrics['knn5_accuracy']:.4f}, silhouette "
          f"{metrics['silhouette_by_class']}", flush=True)
    metrics["views"] = views(test_codes, data.y_test, data.class_names, out, args.seed,
                             args.tsne_samples, data.name)
    metrics["trustworthiness"] = {m: metrics["views"][m]["trustworthiness"]
                                  for m in ("pca", "tsne", "isomap")}
    metrics["samples"] = {
        "pca_grid": pca_grid(decoder, test_codes, os.path.join(out, "samples_pca_grid.png"),
                             args.seed),
        "gaussian": gaussian_samples(decoder, train_codes,
                                     os.path.join(out, "samples_gaussian.png"), args.seed),
        "interpolation": interpolations(decoder, test_codes, data.y_test, data.x_test,
                                        data.class_names,
                                        os.path.join(out, "samples_interpolation.png"),
                                        args.seed),
    }
    write_json(os.path.join(out, "metrics.json"), metrics)  # written now and after the sweep
    if args.sweep:
        metrics["sweep"] = sweep(args, data, args.sweep, os.path.join(out, "sweep"))
        write_json(os.path.join(out, "metrics.json"), metrics)
    return out
