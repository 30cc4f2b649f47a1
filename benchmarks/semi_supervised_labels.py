#!/usr/bin/env python3
"""The semi-supervised classifier against the supervised CNN on few labels.

For each label count, one seeded class-balanced subset of the training labels
(and a validation subset as scarce, as ``classify`` cuts it): the supervised CNN
(``classify``'s baseline, its defaults) and the semi-supervised classifier on the
same subset, with every training image unlabelled. Prints a table of test
accuracies and training seconds; writes JSON.

    python benchmarks/semi_supervised_labels.py [--labels 100,480] [--epochs 20] \
        [--start scratch|encoder --encoder cae.keras] [--seed 0] \
        [--labelled-batch-size 32] [--unlabelled-ratio 4] [--reconstruction-weight 1] [--lr 1e-3] \
        [--weak-shift 0.0625] [--ema-epochs 2.67] [--no-supervised | --supervised-epochs 120] \
        [--verbose 2] [--out runs/semi_supervised_labels.json]

``--no-supervised`` trains only the semi-supervised model (to try its settings
against a supervised figure already measured on the same subset).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> int:
    from data.label_subsets import count_list
    from cli.args import non_negative_float, positive_float, positive_int, probability, rate
    from training.semi_supervised_config import MAX_UNLABELLED_RATIO, STRONG_VIEWS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=count_list, default=[100, 480],
                        help="label counts, comma-separated; the training split's size "
                             "(48000 on Fashion-MNIST) is all labels")
    parser.add_argument("--epochs", type=positive_int, default=20,
                        help="--semi-supervised-epochs")
    parser.add_argument("--start", choices=("scratch", "encoder"), default="scratch")
    parser.add_argument("--encoder", default=None, help="with --start encoder: a cae.keras")
    parser.add_argument("--consistency", default="pseudo_label",
                        choices=("pseudo_label", "mean_squared", "none"))
    parser.add_argument("--labelled-batch-size", type=positive_int, default=None,
                        help="--labelled-batch-size (default: classify's)")
    parser.add_argument("--unlabelled-ratio", type=positive_int, default=None,
                        help="--unlabelled-ratio (default: classify's)")
    parser.add_argument("--reconstruction-weight", type=non_negative_float, default=None,
                        help="--reconstruction-weight (default: classify's)")
    parser.add_argument("--threshold", type=probability, default=None,
                        help="the pseudo-labels' least confidence (default: classify's)")
    parser.add_argument("--distribution-alignment", action=argparse.BooleanOptionalAction,
                        default=None, help="--distribution-alignment (default: classify's)")
    parser.add_argument("--weak-shift", type=rate, default=None,
                        help="--weak-shift: the weak view's largest shift (default: classify's)")
    parser.add_argument("--strong-view", choices=STRONG_VIEWS, default=None,
                        help="the consistency term's strong view (default: classify's)")
    parser.add_argument("--ema-epochs", type=non_negative_float, default=None,
                        help="--semi-supervised-ema-epochs: validate and score a moving "
                             "average of the weights (default: classify's)")
    parser.add_argument("--lr", type=positive_float, default=None,
                        help="--semi-supervised-lr (default: classify's)")
    parser.add_argument("--supervised", action=argparse.BooleanOptionalAction, default=True,
                        help="train the supervised CNN too (--no-supervised: only the "
                             "semi-supervised model, while trying its settings)")
    parser.add_argument("--supervised-epochs", type=positive_int, default=None,
                        help="--baseline-epochs: the supervised CNN's most epochs (default: "
                             "classify's; fewer compare the two models at as many passes "
                             "over the labels; on a small subset classify's --min-steps "
                             "may add epochs)")
    parser.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2),
                        help="Keras fit verbosity (2: one line an epoch)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--out", default="runs/semi_supervised_labels.json")
    args = parser.parse_args()
    if (args.unlabelled_ratio or 0) > MAX_UNLABELLED_RATIO:
        parser.error(f"argument --unlabelled-ratio: {args.unlabelled_ratio} is more than "
                     f"{MAX_UNLABELLED_RATIO}; give an integer from 1 to {MAX_UNLABELLED_RATIO}")
    if args.start == "encoder" and args.encoder is None:
        parser.error("--start encoder needs --encoder PATH (a cae.keras)")

    from startup import start
    # As main.py: the process-wide settings (glibc's heap padding spares this long
    # run most of its page faults; none with UNSUPERVISED28_ACCEL=0).
    start([], os.environ.get("KERAS_BACKEND", "tensorflow"))
    import keras
    import numpy as np

    from data.datasets import load_dataset
    from data.label_subsets import class_balanced_count, class_balanced_subset
    from models.cae import CAEConfig, build_encoder
    from models.classifier import encoder_from_model
    from storage.files import write_json
    from training.classifier import train_baseline
    from training.classifier_config import Settings
    from training.semi_supervised import train_semi_supervised
    from training.semi_supervised_config import SemiSupervisedSettings

    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    data = load_dataset(args.dataset, seed=args.seed)
    if args.start == "encoder":
        encoder = encoder_from_model(keras.saving.load_model(args.encoder))
    else:
        encoder = build_encoder(CAEConfig())
    settings = Settings(seed=args.seed, **({} if args.supervised_epochs is None else
                                           {"baseline_epochs": args.supervised_epochs}))
    overrides = {name: value for name, value in (
        ("labelled_batch_size", args.labelled_batch_size),
        ("unlabelled_ratio", args.unlabelled_ratio),
        ("reconstruction_weight", args.reconstruction_weight),
        ("semi_supervised_lr", args.lr),
        ("pseudo_label_threshold", args.threshold),
        ("distribution_alignment", args.distribution_alignment),
        ("strong_view", args.strong_view),
        ("weak_shift", args.weak_shift),
        ("semi_supervised_ema_epochs", args.ema_epochs)) if value is not None}
    semi = SemiSupervisedSettings(semi_supervised_epochs=args.epochs,
                                  semi_supervised_start=args.start,
                                  consistency=args.consistency, **overrides)
    semi_settings = Settings(seed=args.seed, verbose=args.verbose)
    rows = []
    for count in args.labels:
        try:
            # Every training label (the classes need not be balanced), as classify's
            # 100% row; else a class-balanced subset.
            idx = (np.arange(count) if count == len(data.y_train)
                   else class_balanced_count(data.y_train, count, args.seed))
        except ValueError as e:
            parser.error(f"--labels {count}: {e}; or {len(data.y_train)}: all labels")
        val = class_balanced_subset(data.y_val, count / len(data.y_train), args.seed)
        split = (data.x_train[idx], data.y_train[idx], data.x_val[val], data.y_val[val])
        test = (data.x_test, data.y_test)
        base, base_s = {"test_accuracy": None, "epochs": None}, None
        if args.supervised:
            start = time.perf_counter()
            base = train_baseline(encoder, *split, *test, settings, epoch_scale=True)
            base_s = time.perf_counter() - start
        start = time.perf_counter()
        x, y, x_val, y_val = split
        ours = train_semi_supervised(encoder, x, y, data.x_train, x_val, y_val, *test,
                                     semi_settings, semi)
        ours_s = time.perf_counter() - start
        rows.append({"labels": count, "validation_labels": int(len(val)),
                     "supervised_cnn": base["test_accuracy"], "supervised_cnn_s": base_s,
                     "supervised_cnn_epochs": base["epochs"],
                     "semi_supervised": ours["test_accuracy"], "semi_supervised_s": ours_s,
                     "semi_supervised_epochs": ours["epochs"],
                     "semi_supervised_last_step": ours["last_step_test_accuracy"],
                     "pseudo_label_rate": ours["pseudo_label_rate"],
                     "val_accuracy": ours["val_accuracy"]})
        supervised = ("supervised CNN not trained" if base_s is None else
                      f"supervised CNN {100 * base['test_accuracy']:.2f}% ({base_s:.0f} s)")
        print(f"{count} labels: {supervised}, semi-supervised "
              f"{100 * ours['test_accuracy']:.2f}% "
              f"({ours_s:.0f} s, {ours['epochs']} epochs"
              + ("" if ours["last_step_test_accuracy"] is None else
                 f"; last step's weights {100 * ours['last_step_test_accuracy']:.2f}%")
              + ")", flush=True)
        write_json(args.out, {"backend": keras.backend.backend(), "args": vars(args),
                              "test_images": int(len(data.y_test)), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
