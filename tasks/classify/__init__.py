"""`python main.py classify`: classifiers on the CAE encoder against a supervised CNN.

1. The encoder: loaded from ``--encoder`` (a cae.keras or encoder.keras), else a
   CAE is trained with the CAE task's defaults into ``<run>/cae/``.
2. The head (hidden units, dropout, learning rate, AdamW weight decay) is tuned
   with KerasTuner's Bayesian optimisation on the frozen encoder's features;
   tuner state in ``<run>/tuner/``.
3. Three classifiers: the head on the frozen encoder, then the same classifier
   with the encoder unfrozen and fine-tuned at a low learning rate, and the
   supervised baseline (same architecture, random init).
4. Label efficiency: the three again with 1%, 10% (seeded, class-balanced) of
   the training labels; 100% is step 3.
"""

from __future__ import annotations

import argparse
import os
import time

from data.arguments import add_data_arguments
from runtime.args import non_negative_float, positive_float, positive_int, probability, rate
from storage.run_folder import add_output_arguments
from data.label_subsets import fraction_list

HELP = ("classify with the CAE encoder (frozen, fine-tuned) against a supervised CNN; "
        "tuned head, label efficiency")
MODELS = ("frozen", "fine_tuned", "baseline")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from runtime.compute import add_compute_arguments

    add_data_arguments(parser)
    add_compute_arguments(parser)
    group = parser.add_argument_group("encoder")
    group.add_argument("--encoder", default=None, metavar="PATH",
                       help="a cae.keras or encoder.keras (28x28x1 image -> 1-D code) to "
                            "build on; default: train a CAE (CAE task defaults) into <run>/cae")
    group.add_argument("--features", default="conv2",
                       choices=("code", "dense1", "conv3", "conv2"),
                       help="encoder layer the head reads: code (latent), dense1 (256-unit "
                            "hidden layer), conv3 (flattened 3x3x128 map), conv2 (7x7x64 "
                            "map) (default conv2, the best frozen layer measured)")
    group.add_argument("--cae-epochs", type=positive_int, default=30,
                       help="most epochs of the CAE trained when --encoder is not given "
                            "(default 30)")
    group = parser.add_argument_group("training")
    group.add_argument("--epochs", type=positive_int, default=60,
                       help="most epochs of the head on the frozen encoder; cheap, it "
                            "trains on cached features (default 60)")
    group.add_argument("--fine-tune-epochs", type=positive_int, default=120,
                       help="most epochs of fine-tuning the unfrozen encoder (default 120)")
    group.add_argument("--fine-tune-lr", type=positive_float, default=1e-3,
                       help="learning rate while fine-tuning, then following "
                            "--lr-schedule (default 1e-3: lower rates measured worse, see "
                            "benchmarks/classify_recipes.py)")
    group.add_argument("--unfreeze-last", type=positive_int, default=None, metavar="K",
                       help="fine-tune only the last K weighted encoder layers (default all)")
    group.add_argument("--baseline-epochs", type=positive_int, default=120,
                       help="most epochs of the supervised baseline (default 120, as "
                            "--fine-tune-epochs)")
    group.add_argument("--baseline-lr", type=positive_float, default=1e-3,
                       help="learning rate of the supervised baseline (default 1e-3)")
    group.add_argument("--batch-size", type=positive_int, default=128,
                       help="images per step (default 128)")
    group.add_argument("--patience", type=positive_int, default=20,
                       help="epochs without validation-accuracy gain before stopping (best "
                            "weights restored); with --lr-schedule plateau the learning rate "
                            "halves after half as many without validation-loss gain "
                            "(default 20)")
    group.add_argument("--lr-schedule", choices=("cosine", "plateau"), default="cosine",
                       help="cosine (default): decay the learning rate to 0 along a cosine "
                            "over each phase's epochs; plateau: halve it after --patience/2 "
                            "epochs without a lower validation loss")
    group = parser.add_argument_group(
        "regularisation", "the defaults are the best recipe of benchmarks/classify_recipes.py "
        "on full Fashion-MNIST")
    group.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                       help="random changes of the training images of the fine-tuned model "
                            "and the baseline, the same for both (--flip, --shift, "
                            "--erasing); off at inference (default: on)")
    group.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True,
                       help="with --augment: random horizontal flips (default: on)")
    group.add_argument("--shift", type=rate, default=0.0,
                       help="with --augment: random shifts of up to this fraction of the "
                            "height and width, in [0, 1) (default 0: 0.07 and 0.1 measured "
                            "0.4 and 1.0 point worse fine-tuned; the items are centred)")
    group.add_argument("--erasing", type=probability, default=0.25,
                       help="with --augment: probability of erasing a random rectangle "
                            "(2-33%% of the image) of each image, in [0, 1] (default 0.25)")
    group.add_argument("--label-smoothing", type=rate, default=0.1,
                       help="label smoothing of the cross-entropy of all three models, in "
                            "[0, 1) (default 0.1)")
    group.add_argument("--feature-dropout", type=rate, default=0.2,
                       help="dropout on the encoder features before the head (whole "
                            "channels of a conv map), all three models, in [0, 1) "
                            "(default 0.2)")
    group.add_argument("--end-to-end-dropout", type=rate, default=0.5,
                       help="the head's dropout in the fine-tuned model and the baseline, "
                            "which overfit more than the frozen head, whose dropout is "
                            "tuned; in [0, 1) (default 0.5)")
    group.add_argument("--ema-epochs", type=non_negative_float, default=0.0, metavar="E",
                       help="all three models validate, keep and are tested with an "
                            "exponential moving average of their weights over about E "
                            "epochs (momentum 1 - 1/(E x steps per epoch)); 0 keeps the raw "
                            "weights (default 0: 2.67 measured no better)")
    group = parser.add_argument_group("tuning and label efficiency")
    group.add_argument("--max-trials", type=positive_int, default=10,
                       help="Bayesian-optimisation trials for the head (default 10)")
    group.add_argument("--tuning-epochs", type=positive_int, default=10,
                       help="most epochs per tuning trial (default 10)")
    group.add_argument("--label-fractions", type=fraction_list, default=[0.01, 0.1, 1.0],
                       metavar="F,F,...",
                       help="fractions of the training labels, each in (0, 1] "
                            "(default 0.01,0.1,1)")
    group.add_argument("--min-steps", type=positive_int, default=300,
                       help="on a label subset, train at least this many steps (more "
                            "epochs; at most 100) so small subsets converge (default 300)")
    group.add_argument("--skip-label-efficiency", action="store_true",
                       help="train only on all labels")
    add_output_arguments(parser, "classify")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                        help="Keras progress: 0 silent, 1 progress bar (default), "
                             "2 one line per epoch")


def get_encoder(args, data, out: str):
    """The encoder from --encoder, or one from a CAE trained now; and where it came from."""
    from models.classifier import encoder_from_model, feature_model
    from models.cae import CAEConfig, split_cae
    from models.saving import load_keras_model
    from runtime.errors import UserError

    if args.encoder is not None:
        model = load_keras_model(args.encoder, "encoder")
        try:
            encoder = encoder_from_model(model)
        except ValueError as e:
            raise UserError(f"--encoder {args.encoder!r}: {e}") from None
        source = args.encoder
    else:
        from training.cae import train_cae

        cae_dir = os.path.join(out, "cae")
        os.makedirs(cae_dir, exist_ok=True)
        print(f"no --encoder: training a CAE into {cae_dir}", flush=True)
        metrics = train_cae(data, CAEConfig(), cae_dir, epochs=args.cae_epochs,
                            verbose=args.verbose, seed=args.seed)
        encoder = split_cae(metrics["model"])[0]
        source = os.path.join(cae_dir, "cae.keras")
    try:
        feature_model(encoder, args.features)
    except ValueError as e:
        raise UserError(f"--features {args.features}: {e}") from None
    return encoder, source


def tune_head(args, encoder, data, out: str) -> tuple:
    """Bayesian optimisation of the head on cached frozen features."""
    import keras
    import keras_tuner as kt

    from models.classifier import feature_model
    from tuning.classifier_hypermodel import ClassifierHeadHyperModel, head_hyperparameters
    from tuning.tuners import make_tuner

    start = time.perf_counter()
    extractor = feature_model(encoder, args.features)
    f_train = extractor.predict(data.x_train, batch_size=512, verbose=0)
    f_val = extractor.predict(data.x_val, batch_size=512, verbose=0)
    hypermodel = ClassifierHeadHyperModel(f_train.shape[1:],
                                          feature_dropout=args.feature_dropout,
                                          label_smoothing=args.label_smoothing)
    tuner = make_tuner("bayesian", hypermodel,
                       kt.Objective("val_accuracy", "max"), args.max_trials,
                       directory=os.path.join(out, "tuner"),
                       project_name=f"head_{args.features}", seed=args.seed)
    tuner.search(f_train, data.y_train, validation_data=(f_val, data.y_val),
                 epochs=args.tuning_epochs, batch_size=args.batch_size, verbose=0,
                 callbacks=[keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                                          patience=3)])
    best = head_hyperparameters(tuner.get_best_hyperparameters(1)[0])
    trial = tuner.oracle.get_best_trials(1)[0]
    summary = {"tuner": "bayesian", "objective": "val_accuracy", "max_trials": args.max_trials,
               "epochs_per_trial": args.tuning_epochs, "best_hyperparameters": best,
               "best_val_accuracy": float(trial.score),
               "trials": len(tuner.oracle.trials),
               "wall_time_s": time.perf_counter() - start}
    print(f"tuned head in {summary['wall_time_s']:.0f} s: {best} "
          f"(val accuracy {trial.score:.4f})", flush=True)
    return best, summary


def public(record: dict, class_names: list) -> dict:
    """A phase record without the model and predictions, per-class accuracy by name."""
    rec = {k: v for k, v in record.items() if k not in ("model", "predictions")}
    if "per_class_accuracy" in rec:
        rec["per_class_accuracy"] = dict(zip(class_names, rec["per_class_accuracy"]))
    return rec


def label_efficiency(args, data, encoder, settings, full: dict) -> list:
    """Test accuracy of the three models at each label fraction (1.0 reuses ``full``)."""
    from training.classifier import train_baseline, train_pretrained
    from data.label_subsets import class_balanced_subset

    rows = []
    for frac in args.label_fractions:
        start = time.perf_counter()
        if frac == 1.0:
            results, n = full, len(data.y_train)
        else:
            idx = class_balanced_subset(data.y_train, frac, args.seed)
            val = class_balanced_subset(data.y_val, frac, args.seed)  # as scarce as train
            xs, ys, xv, yv = data.x_train[idx], data.y_train[idx], data.x_val[val], data.y_val[val]
            results = train_pretrained(encoder, xs, ys, xv, yv, data.x_test, data.y_test,
                                       settings, epoch_scale=True)
            results["baseline"] = train_baseline(encoder, xs, ys, xv, yv, data.x_test,
                                                 data.y_test, settings, epoch_scale=True)
            n = len(idx)
        row = {"fraction": frac, "labels": int(n)}
        for key in MODELS:
            row[key] = results[key]["test_accuracy"]
            row[f"{key}_epochs"] = results[key]["epochs"]
        rows.append(row)
        print(f"labels {frac:g} ({n}): " + ", ".join(
            f"{k} {100 * row[k]:.2f}%" for k in MODELS)
            + f" [{time.perf_counter() - start:.0f} s]", flush=True)
    return rows


def markdown_table(header: list, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def run(args) -> str:
    from tasks.classify import figures as figs
    from training.classifier import Settings, train_baseline, train_pretrained
    from data.arguments import load_data
    from models.saving import save_model
    from runtime.backend import backend_name, seed_everything
    from storage.files import write_json, write_text
    from storage.run_folder import make_run_dir
    from runtime.compute import describe

    out = make_run_dir("classify", args.out, overwrite=args.overwrite)
    seed_everything(args.seed)
    data = load_data(args)
    encoder, source = get_encoder(args, data, out)
    best, tuning = tune_head(args, encoder, data, out)
    settings = Settings(features=args.features, epochs=args.epochs,
                        fine_tune_epochs=args.fine_tune_epochs, fine_tune_lr=args.fine_tune_lr,
                        unfreeze_last=args.unfreeze_last,
                        baseline_epochs=args.baseline_epochs,
                        baseline_lr=args.baseline_lr, batch_size=args.batch_size,
                        patience=args.patience, augment=args.augment, flip=args.flip,
                        shift=args.shift, erasing=args.erasing,
                        label_smoothing=args.label_smoothing,
                        feature_dropout=args.feature_dropout,
                        end_to_end_dropout=args.end_to_end_dropout,
                        ema_epochs=args.ema_epochs, lr_schedule=args.lr_schedule,
                        min_steps=args.min_steps,
                        verbose=args.verbose, seed=args.seed, **best)

    results = train_pretrained(
        encoder, data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test,
        settings, on_frozen=lambda m: save_model(m, os.path.join(out, "classifier_frozen.keras")))
    save_model(results["fine_tuned"]["model"], os.path.join(out, "classifier_fine_tuned.keras"))
    results["baseline"] = train_baseline(encoder, data.x_train, data.y_train, data.x_val,
                                         data.y_val, data.x_test, data.y_test, settings)
    save_model(results["baseline"]["model"], os.path.join(out, "baseline.keras"))

    names = data.class_names
    for key in MODELS:
        acc = 100 * results[key]["test_accuracy"]
        figs.confusion_matrix_figure(data.y_test, results[key]["predictions"], names,
                                     os.path.join(out, f"confusion_{key}.png"),
                                     f"{figs.LABELS[key]}: test accuracy {acc:.2f}% "
                                     f"({data.name})")
    figs.learning_curves_figure({k: results[k] for k in MODELS},
                                os.path.join(out, "learning_curves.png"),
                                f"Validation accuracy, {data.name}, features {args.features}, "
                                f"{backend_name()}")
    write_text(os.path.join(out, "per_class_accuracy.md"), markdown_table(
        ["class", *[figs.LABELS[k] for k in MODELS]],
        [[name, *[f"{100 * results[k]['per_class_accuracy'][c]:.1f}%" for k in MODELS]]
         for c, name in enumerate(names)]))

    metrics = {
        "task": "classify", "dataset": data.name, "data_source": data.source,
        "backend": backend_name(), **describe(), "encoder": source,
        "features": args.features,
        "train_images": int(len(data.x_train)), "val_images": int(len(data.x_val)),
        "test_images": int(len(data.x_test)), "settings": vars(settings),
        "tuning": tuning, "models": {k: public(results[k], names) for k in MODELS},
    }
    write_json(os.path.join(out, "metrics.json"), metrics)
    print(" | ".join(f"{k}: {100 * results[k]['test_accuracy']:.2f}% "
                     f"({results[k]['epochs']} epochs, {results[k]['wall_time_s']:.0f} s)"
                     for k in MODELS), flush=True)

    if not args.skip_label_efficiency:
        rows = label_efficiency(args, data, encoder, settings, results)
        metrics["label_efficiency"] = rows
        write_json(os.path.join(out, "metrics.json"), metrics)
        write_text(os.path.join(out, "label_efficiency.md"), markdown_table(
            ["labels", "fraction", *[figs.LABELS[k] for k in MODELS]],
            [[r["labels"], f"{100 * r['fraction']:g}%",
              *[f"{100 * r[k]:.2f}%" for k in MODELS]] for r in rows]))
        figs.label_efficiency_figure(rows, os.path.join(out, "label_efficiency.png"),
                                     f"Label efficiency, {data.name} test split "
                                     f"(features {args.features})")
    return out
