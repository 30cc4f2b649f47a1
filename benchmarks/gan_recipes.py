"""Screens DCGAN recipes by FID in the reference extractor, epoch by epoch.

One training run scores its generator at each epoch of ``--snapshots``, with
its last weights and, with ``--ema``, with their moving average, so one run
gives FID against epochs and the EMA's effect. Appends one JSON line per
snapshot to ``<out>/recipes.jsonl``; the table of runs is kept by hand in
``benchmarks/results/gan_recipes.md``.

    python3 benchmarks/gan_recipes.py --train-size 12000 --epochs 10 --ema 0.999 \
        --snapshots 5,10 --out runs/gan_recipes/ema
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def snapshot_callback(data, epochs: set, log, n: int = 10000, seed: int = 0):
    import keras
    import numpy as np

    from evaluation.sample_quality import featurize, fid, precision_recall, reference_extractor
    from models.gan import from_gan_range

    extractor, info = reference_extractor(data.name, seed=0)
    train_features, _ = featurize(extractor, data.x_train)
    rng = np.random.default_rng(seed)
    real = train_features[rng.choice(len(train_features), min(n, len(train_features)),
                                     replace=False)]
    noise = rng.standard_normal((n, 100)).astype("float32")
    start = time.perf_counter()

    def scored(generator, epoch, weights, trained):
        images = from_gan_range(generator.predict(noise[:, :generator.input_shape[-1]],
                                                  batch_size=500, verbose=0))
        features, _ = featurize(extractor, images)
        precision, recall = precision_recall(real, features)
        row = {"epoch": epoch, "weights": weights, "fid": fid(features, train_features),
               "precision": precision, "recall": recall,
               "train_seconds": trained,
               "extractor": info["recipe_hash"]}
        log(row)

    class Snapshots(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            nonlocal start
            if epoch + 1 not in epochs:
                return
            t = time.perf_counter()
            trained = t - start
            gan = self.model
            scored(gan.generator, epoch + 1, "last", trained)
            if gan.g_optimizer.use_ema:
                # The averaged weights into a copy; training goes on with the live ones.
                live = gan.generator.get_weights()
                gan.g_optimizer.finalize_variable_values(gan.generator.trainable_variables)
                clone = keras.models.clone_model(gan.generator)
                clone.set_weights(gan.generator.get_weights())
                gan.generator.set_weights(live)
                scored(clone, epoch + 1, "ema", trained)
            start += time.perf_counter() - t  # scoring time is not training time

    return Snapshots()


# The recipes' baseline: the gan task's old defaults (batch 128, 5 epochs), which
# the commands in benchmarks/results/gan_recipes.md start from.
BASELINE = {"epochs": 5, "batch_size": 128}


def main(argv=None):
    from configs.gan import GANConfig
    from training.gan import GANTraining
    from cli.options import add_options

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--snapshots", default=None, help="epochs to score, e.g. 5,10")
    # The gan task's own options and defaults, but for the baseline's epochs and batch.
    add_options(parser, (GANConfig, GANTraining),
                ["width", "spectral_norm", "lr", "d_lr", "beta1", "ema"])
    parser.add_argument("--epochs", type=int, default=BASELINE["epochs"])
    parser.add_argument("--batch-size", type=int, default=BASELINE["batch_size"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    from runtime.quiet import import_tensorflow_quietly
    import_tensorflow_quietly()
    from data.arguments import load_data
    from runtime.backend import backend_name, seed_everything
    from cli.options import from_args
    from tasks.gan import GanTaskConfig
    from training.gan import train_gan

    base = GanTaskConfig()
    config = dataclasses.replace(
        base, data=dataclasses.replace(base.data, train_size=args.train_size, seed=args.seed),
        gan=dataclasses.replace(base.gan, width=args.width, spectral_norm=args.spectral_norm),
        training=from_args(GANTraining, args), verbose=2)
    os.makedirs(args.out, exist_ok=True)
    seed_everything(args.seed)
    data = load_data(config.data)  # fashion_mnist, the default
    snapshots = {int(e) for e in (args.snapshots or str(args.epochs)).split(",")}
    recipe = {k: v for k, v in vars(args).items() if k not in ("out", "snapshots")}

    def log(row):
        row = {**recipe, **row, "backend": backend_name()}
        print(json.dumps(row), flush=True)
        with open(os.path.join(args.out, "recipes.jsonl"), "a") as f:
            f.write(json.dumps(row) + "\n")

    callback = snapshot_callback(data, snapshots, log, seed=args.seed)
    _, metrics = train_gan(data, config.gan, args.out, config.training,
                           verbose=config.verbose, seed=args.seed, extra_callbacks=[callback])
    print(f"trained in {metrics['wall_time_s']:.0f} s (with scoring)", flush=True)


if __name__ == "__main__":
    main()
