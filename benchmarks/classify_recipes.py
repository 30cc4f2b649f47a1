#!/usr/bin/env python3
"""Which training recipe lifts the fine-tuned classifier and the baseline? A sweep.

Each recipe is a set of :class:`training.classifier.Settings` overrides
(augmentation, label smoothing, dropout on the features, weight decay, the
encoder layer, epochs). For every recipe the frozen head, the fine-tuned
encoder and the supervised baseline are trained on the same split of the same
data from the same pretrained encoder, and their validation and test accuracy
written to JSON and a Markdown table. Pick recipes by validation accuracy; the
test column is what the `classify` task would report.

Recipes run in parallel worker processes (``--jobs``), for a GPU that a
single small model leaves mostly idle; on a 2-core CPU use ``--jobs 1``.

    python benchmarks/classify_recipes.py --encoder runs/cae/<stamp>/cae.keras \
        [--data-dir DIR] [--recipes plain,flip,...] [--jobs 1] [--train-size N] \
        [--skip-baseline] [--val-size 12000] [--shared-val 6000] \
        [--out runs/classify_recipes.json]

Runs with different ``--val-size`` train on different images and validate on
different ones; compare them on ``val_accuracy_first_<N>``, the accuracy on the
``--shared-val`` validation images every split holds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data.arguments import DataConfig  # noqa: E402  (after the path)
from cli.options import add_options  # noqa: E402

# The sweep's starting point (no augmentation, plateau halving, shorter phases),
# as overrides of the task's defaults (Settings', which are the sweep's outcome):
# the recipes change them again.
COMMON = {"fine_tune_epochs": 50, "baseline_epochs": 60, "patience": 10,
          "fine_tune_lr": 3e-4, "end_to_end_dropout": None, "augment": False,
          "shift": 0.1, "erasing": 0.0, "label_smoothing": 0.0, "feature_dropout": 0.0,
          "lr_schedule": "plateau"}
# Each recipe: Settings overrides on top of COMMON. "augment" turns the
# augmentation on; flip / shift / erasing choose its parts. "erasing" is the
# probability of erasing a rectangle of an image. The GPU runs recorded in
# benchmarks/results/classify_recipes.md gave it as Keras's RandomErasing factor,
# which erases with a probability drawn from [0, factor], factor / 2 on average:
# their 0.5 and 0.8 are the 0.25 and 0.4 written here, the same distribution. "dropout"
# without "end_to_end_dropout" is the head's dropout in all three models.
FLIP = {"augment": True, "flip": True, "shift": 0.0}
COMBINED = {**FLIP, "erasing": 0.25, "label_smoothing": 0.1, "feature_dropout": 0.2,
            "dropout": 0.5, "fine_tune_epochs": 80, "baseline_epochs": 80}
C3 = {**COMBINED, "fine_tune_lr": 1e-3}  # the task's defaults since (its frozen dropout tuned)
C3_COSINE = {**C3, "lr_schedule": "cosine", "patience": 20}
C3_COSINE_E120 = {**C3_COSINE, "fine_tune_epochs": 120, "baseline_epochs": 120}  # the defaults
RECIPES = {
    "plain": {"augment": False},
    "flip": FLIP,
    "flip_shift10": {**FLIP, "shift": 0.1},
    "flip_shift07": {**FLIP, "shift": 0.07},
    "flip_erase": {**FLIP, "erasing": 0.25},
    "flip_smooth": {**FLIP, "label_smoothing": 0.1},
    "flip_featdrop": {**FLIP, "feature_dropout": 0.2, "dropout": 0.5},
    "flip_wd": {**FLIP, "weight_decay": 0.05},
    "flip_all": {**FLIP, "shift": 0.07, "label_smoothing": 0.1, "feature_dropout": 0.2,
                 "dropout": 0.5},
    "conv3_flip": {**FLIP, "features": "conv3"},
    "conv3_flip_all": {**FLIP, "features": "conv3", "shift": 0.07, "label_smoothing": 0.1,
                       "feature_dropout": 0.2, "dropout": 0.5},
    "dense1_flip": {**FLIP, "features": "dense1"},
    "flip_shift07_long": {**FLIP, "shift": 0.07, "fine_tune_epochs": 100,
                          "baseline_epochs": 100, "patience": 15},
    "flip_erase_smooth": {**FLIP, "erasing": 0.25, "label_smoothing": 0.1},
    # Everything that helped above together, and the fine-tuning learning rate,
    # with room for more epochs.
    "combined": COMBINED,
    "combined_ftlr6e-4": {**COMBINED, "fine_tune_lr": 6e-4},
    "combined_ftlr1e-3": {**COMBINED, "fine_tune_lr": 1e-3},
    "combined_noerase_ftlr1e-3": {**COMBINED, "erasing": 0.0, "fine_tune_lr": 1e-3},
    "flip_smooth_ftlr1e-3": {**FLIP, "label_smoothing": 0.1, "fine_tune_lr": 1e-3,
                             "fine_tune_epochs": 80, "baseline_epochs": 80},
    "combined_conv3_ftlr1e-3": {**COMBINED, "features": "conv3", "fine_tune_lr": 1e-3},
    "combined_erase08_ftlr1e-3": {**COMBINED, "erasing": 0.4, "fine_tune_lr": 1e-3},
    "combined_smooth02_ftlr1e-3": {**COMBINED, "label_smoothing": 0.2, "fine_tune_lr": 1e-3},
    # Around combined_ftlr1e-3.
    "c3": C3,
    "c3_seed1": {**C3, "seed": 1},
    "c3_ftlr2e-3": {**C3, "fine_tune_lr": 2e-3},
    "c3_batch64": {**C3, "batch_size": 64},
    "c3_hidden512": {**C3, "hidden_units": 512},
    "c3_long": {**C3, "fine_tune_epochs": 120, "baseline_epochs": 120, "patience": 15},
    "c3_wd": {**C3, "weight_decay": 0.05},
    "c3_erase08_smooth02": {**C3, "erasing": 0.4, "label_smoothing": 0.2},
    # The average of the weights (2-core CPU, tensorflow), measured as momentum
    # 0.999, which is 2.67 epochs of 375 steps.
    "c3_ema": {**C3, "ema_epochs": 2.67},
    "c3_ema_seed1": {**C3, "ema_epochs": 2.67, "seed": 1},
    # Cosine decay of the learning rate (2-core CPU, tensorflow).
    # Patience 20: the accuracy gained late, at low rates, is the point of it.
    "c3_cosine": C3_COSINE,
    "c3_cosine_seed1": {**C3_COSINE, "seed": 1},
    # Shifts by whole pixels on top of cosine decay (2-core CPU, tensorflow; not
    # in the GPU runs, too slow there). 0.07 of 28
    # pixels is up to 1.96, which rounds to -2..2 pixels (+-2 half as often);
    # 0.1 is up to 2.8, -3..3 pixels.
    "c3_cosine_shift07": {**C3_COSINE, "shift": 0.07},
    "c3_cosine_shift10": {**C3_COSINE, "shift": 0.1},
    # A wider head, and a longer cosine (2-core CPU, tensorflow).
    "c3_cosine_hidden512": {**C3_COSINE, "hidden_units": 512},
    "c3_cosine_e120": C3_COSINE_E120,
    "c3_cosine_e120_seed1": {**C3_COSINE_E120, "seed": 1},
}
MODELS = ("frozen", "fine_tuned", "baseline")


def recipe_settings(name: str | None, seed: int = 0):
    """The classifiers' Settings of recipe ``name`` (None: COMMON alone): the
    task's defaults, overridden by COMMON, ``seed``, then the recipe."""
    from training.classifier_config import Settings

    recipe = RECIPES[name] if name else {}
    return dataclasses.replace(Settings(), **{**COMMON, "seed": seed, **recipe, "verbose": 0})


def run_recipe(name: str, args) -> dict:
    """Trains the three classifiers with one recipe; their accuracies and times."""
    from runtime.quiet import import_tensorflow_quietly
    import_tensorflow_quietly()
    import keras

    from data.datasets import load_dataset
    from models.classifier import encoder_from_model
    from models.saving import load_keras_model
    from training.classifier import evaluate, train_baseline, train_pretrained

    data = load_dataset("fashion_mnist", data_dir=args.data_dir, val_size=args.val_size,
                        seed=args.seed, train_limit=args.train_size, test_limit=args.test_size)
    encoder = encoder_from_model(load_keras_model(args.encoder, "encoder"))
    settings = recipe_settings(name, args.seed)
    if args.max_epochs is not None:  # plumbing checks
        settings = dataclasses.replace(settings, **{
            key: min(getattr(settings, key), args.max_epochs)
            for key in ("epochs", "fine_tune_epochs", "baseline_epochs")})
    start = time.perf_counter()
    res = train_pretrained(encoder, data.x_train, data.y_train, data.x_val, data.y_val,
                           data.x_test, data.y_test, settings)
    if not args.skip_baseline:
        res["baseline"] = train_baseline(encoder, data.x_train, data.y_train, data.x_val,
                                         data.y_val, data.x_test, data.y_test, settings)
    row = {"recipe": name, "overrides": RECIPES[name], "backend": keras.backend.backend(),
           "conv_filters": [int(layer.filters) for layer in encoder.layers
                            if hasattr(layer, "filters")],
           "train_images": len(data.x_train), "val_images": len(data.x_val),
           "wall_time_s": time.perf_counter() - start}
    for key in (m for m in MODELS if m in res):
        row[key] = {k: res[key][k] for k in ("test_accuracy", "test_accuracy_flip_averaged",
                                             "best_val_accuracy", "epochs", "wall_time_s",
                                             "trainable_parameters") if k in res[key]}
    # A smaller --val-size moves images into training; its validation images are
    # the first ones of any larger split's (same seeded order), so runs with
    # different sizes compare on those shared images.
    n = min(args.shared_val, len(data.x_val))
    for key in ("fine_tuned", "baseline"):
        if key in res:
            row[key][f"val_accuracy_first_{n}"] = evaluate(
                res[key]["model"], data.x_val[:n], data.y_val[:n])["test_accuracy"]
    return row


def markdown(rows: list) -> str:
    lines = ["| recipe | " + " | ".join(f"{m} val / test" for m in MODELS) + " | wall |",
             "|---|" + "---|" * (len(MODELS) + 1)]
    for r in rows:
        cells = [f"{100 * r[m]['best_val_accuracy']:.2f} / {100 * r[m]['test_accuracy']:.2f}"
                 f" ({r[m]['epochs']} ep)" if m in r else "—" for m in MODELS]
        lines.append(f"| {r['recipe']} | " + " | ".join(cells) + f" | {r['wall_time_s']:.0f} s |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", required=True, help="cae.keras or encoder.keras")
    parser.add_argument("--recipes", default=",".join(RECIPES),
                        help=f"comma-separated, from: {', '.join(RECIPES)}")
    parser.add_argument("--jobs", type=int, default=1, help="recipes trained at once")
    # Fashion-MNIST, read and split as the tasks do (their data options).
    add_options(parser, DataConfig, ["data_dir", "val_size", "train_size", "test_size", "seed"])
    parser.add_argument("--shared-val", type=int, default=6_000,
                        help="also score the end-to-end models on the first N validation "
                             "images, which every --val-size >= N shares (default 6 000)")
    parser.add_argument("--max-epochs", type=int, default=None,
                        help="cap every phase's epochs (quick plumbing checks)")
    parser.add_argument("--skip-baseline", action="store_true",
                        help="train only the frozen head and the fine-tuned encoder")
    parser.add_argument("--out", default="runs/classify_recipes.json",
                        help="JSON of the rows, and the Markdown table beside it (.md); "
                             "the sweep's findings are kept in "
                             "benchmarks/results/classify_recipes.md")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker is not None:
        print(json.dumps(run_recipe(args.worker, args)), flush=True)
        return 0
    names = args.recipes.split(",")
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe {unknown[0]!r}; valid: {', '.join(RECIPES)}")

    # Each recipe in its own process: parallel on a GPU, and no state shared.
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    base = [sys.executable, os.path.abspath(__file__), "--encoder", args.encoder,
            "--seed", str(args.seed)]
    for flag in ("data_dir", "val_size", "shared_val", "train_size", "test_size",
                 "max_epochs"):
        if getattr(args, flag) is not None:
            base += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    if args.skip_baseline:
        base.append("--skip-baseline")
    pending, running, rows = list(names), {}, []
    start = time.perf_counter()
    while pending or running:
        while pending and len(running) < max(1, args.jobs):
            name = pending.pop(0)
            running[name] = subprocess.Popen(base + ["--worker", name], env=env,
                                             stdout=subprocess.PIPE, text=True)
        time.sleep(2)
        for name, proc in list(running.items()):
            if proc.poll() is None:
                continue
            out = proc.stdout.read().strip().splitlines()
            del running[name]
            if proc.returncode != 0 or not out:
                print(f"{name}: failed (exit {proc.returncode})", flush=True)
                continue
            rows.append(json.loads(out[-1]))
            r = rows[-1]
            print(f"{name} [{time.perf_counter() - start:.0f} s]: " + ", ".join(
                f"{m} {100 * r[m]['best_val_accuracy']:.2f}/{100 * r[m]['test_accuracy']:.2f}"
                for m in MODELS if m in r) + " (val/test %)", flush=True)
            rows.sort(key=lambda r: names.index(r["recipe"]))
            write_results(args, rows)  # after each recipe: a cut-off sweep keeps its rows
    print(markdown(rows))
    return 0


def write_results(args, rows: list) -> None:
    from storage.files import write_json, write_text

    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    common = dataclasses.asdict(recipe_settings(None))
    write_json(args.out, {"encoder": args.encoder, "common": common, "rows": rows})
    write_text(os.path.splitext(args.out)[0] + ".md", markdown(rows))


if __name__ == "__main__":
    sys.exit(main())
