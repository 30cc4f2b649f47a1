"""`python main.py classify`: classifiers on the CAE encoder against a supervised CNN.

1. The encoder: loaded from ``--encoder`` (a cae.keras or encoder.keras), else a
   CAE is trained with the CAE task's defaults into ``<run>/cae/``.
2. The head (hidden units, dropout, learning rate, AdamW weight decay) is tuned
   with KerasTuner's Bayesian optimisation on the frozen encoder's features;
   tuner state in ``<run>/tuner/``.
3. Three classifiers: the head on the frozen encoder, then the same classifier
   with the encoder unfrozen and fine-tuned at a low learning rate, and the
   supervised baseline (same architecture, random init); a fourth, the
   semi-supervised classifier, trains the encoder, a decoder and the head on the
   labelled and the unlabelled images together (``tasks/classify/study.py``).
4. Label efficiency: the four again with 100 labels, 1% and 10% of the training
   labels, each on three seeded, class-balanced subsets; 100% is step 3.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

from cli.options import from_args, to_dict
from tasks.classify.config import ClassifyConfig
from tasks.classify.config import add_arguments as add_config_arguments

HELP = ("classify with the CAE encoder (frozen, fine-tuned) against a supervised CNN; "
        "tuned head, label efficiency")
MODELS = ("frozen", "fine_tuned", "baseline")  # tasks.classify.phases.MODELS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def get_encoder(config: ClassifyConfig, data, out: str, run):
    """The encoder from --encoder, or one from a CAE trained now (a phase of ``run``,
    the :class:`training.phases.PhasedRun`); and where it came from."""
    from models.cae import CAEConfig, split_cae
    from models.classifier import encoder_from_model, feature_model
    from models.saving import load_keras_model
    from cli.errors import UserError

    settings = config.settings
    if config.encoder is not None:
        model = load_keras_model(config.encoder, "encoder")
        try:
            encoder = encoder_from_model(model)
        except ValueError as e:
            raise UserError(f"--encoder {config.encoder!r}: {e}") from None
        source = config.encoder
    else:
        from training.cae import CAETraining
        from training.phases import cae_phase

        cae_dir = os.path.join(out, "cae")
        print(f"no --encoder: a CAE in {cae_dir}", flush=True)
        model, source = cae_phase(run, "cae", 0, data, CAEConfig(),
                                  CAETraining(epochs=config.cae_epochs), cae_dir,
                                  verbose=settings.verbose, seed=settings.seed)
        encoder = split_cae(model)[0]
    try:
        feature_model(encoder, settings.features)
    except ValueError as e:
        raise UserError(f"--features {settings.features}: {e}") from None
    return encoder, source


def tune_head(config, encoder, data, out: str, run) -> tuple:
    """Bayesian optimisation of the head on cached frozen features: a phase of
    ``run``; KerasTuner keeps its trials in ``<out>/tuner`` and continues there."""
    import keras_tuner as kt

    from models.classifier import feature_model
    from tuning.classifier_hypermodel import ClassifierHeadHyperModel, head_hyperparameters
    from tuning.kfold import KFoldTrialMixin
    from tuning.tuners import make_tuner

    if run.finished("tuning"):
        saved = run.record("tuning")
        print(f"reusing the finished search of the head: {saved['best']}", flush=True)
        return saved["best"], saved["summary"]
    settings = config.settings
    start = time.perf_counter()
    extractor = feature_model(encoder, settings.features)
    f_train = extractor.predict(data.x_train, batch_size=512, verbose=0)
    f_val = extractor.predict(data.x_val, batch_size=512, verbose=0)
    hypermodel = ClassifierHeadHyperModel(f_train.shape[1:],
                                          feature_dropout=settings.feature_dropout,
                                          label_smoothing=settings.label_smoothing)
    # Each trial starts from the same seed (KFoldTrialMixin, one hold-out fold), so
    # a search continued by --resume runs the trials an uninterrupted one ran.
    tuner = make_tuner("bayesian", hypermodel,
                       kt.Objective("val_accuracy", "max"), config.max_trials,
                       directory=os.path.join(out, "tuner"),
                       project_name=f"head_{settings.features}", seed=settings.seed,
                       tuner_class=KFoldTrialMixin, fold_seed=settings.seed, patience=3)
    tuner.search(f_train, data.y_train, validation_data=(f_val, data.y_val),
                 epochs=config.tuning_epochs, batch_size=settings.batch_size, verbose=0)
    best = head_hyperparameters(tuner.get_best_hyperparameters(1)[0])
    trial = tuner.oracle.get_best_trials(1)[0]
    summary = {"tuner": "bayesian", "objective": "val_accuracy", "max_trials": config.max_trials,
               "epochs_per_trial": config.tuning_epochs, "best_hyperparameters": best,
               "best_val_accuracy": float(trial.score),
               "trials": len(tuner.oracle.trials),
               "wall_time_s": time.perf_counter() - start}
    print(f"tuned head in {summary['wall_time_s']:.0f} s: {best} "
          f"(val accuracy {trial.score:.4f})", flush=True)
    run.finish("tuning", {"best": best, "summary": summary})
    return best, summary


def public(record: dict, class_names: list) -> dict:
    """A phase record without the model and predictions, per-class accuracy by name."""
    rec = {k: v for k, v in record.items() if k not in ("model", "predictions")}
    if "per_class_accuracy" in rec:
        rec["per_class_accuracy"] = dict(zip(class_names, rec["per_class_accuracy"]))
    return rec


def markdown_table(header: list, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


CONFIG = ClassifyConfig


def run(args) -> str:
    return classify(from_args(ClassifyConfig, args))


def classify(config: ClassifyConfig) -> str:
    """Runs ``config`` into its run folder, which it returns."""
    from data.arguments import load_data
    from runtime.backend import backend_name, seed_everything
    from runtime.compute import describe
    from storage.files import write_json, write_text
    from storage.run_folder import make_run_dir
    from tasks.classify import figures as figs
    from tasks.classify import study
    from tasks.classify.phases import train_three
    from training.phases import PhasedRun, resume_folder

    out = resume_folder("classify", config.output.out, config.resume)
    out = make_run_dir("classify", out, overwrite=config.output.overwrite, resume=config.resume)
    seed_everything(config.data.seed)
    data = load_data(config.data)
    counts = ([] if config.skip_label_efficiency
              else study.check_label_counts(config.label_counts, data.y_train))
    run = PhasedRun(out, config.resume)
    run.check_options(to_dict(config))
    encoder, source = get_encoder(config, data, out, run)
    best, tuning = tune_head(config, encoder, data, out, run)
    settings = dataclasses.replace(config.settings, **best)

    results = train_three(run, encoder, (data.x_train, data.y_train, data.x_val, data.y_val),
                          (data.x_test, data.y_test), settings, save_to=out)
    models = MODELS + (("semi_supervised",) if config.semi.semi_supervised else ())
    if config.semi.semi_supervised:
        results["semi_supervised"] = study.train_semi(
            run, encoder, (data.x_train, data.y_train, data.x_val, data.y_val), data.x_train,
            (data.x_test, data.y_test), settings, config.semi, save_to=out)

    names = data.class_names
    for key in models:
        acc = 100 * results[key]["test_accuracy"]
        figs.confusion_matrix_figure(data.y_test, results[key]["predictions"], names,
                                     os.path.join(out, f"confusion_{key}.png"),
                                     f"{figs.LABELS[key]}: test accuracy {acc:.2f}% "
                                     f"({data.name})")
    figs.learning_curves_figure({k: results[k] for k in models},
                                os.path.join(out, "learning_curves.png"),
                                f"Validation accuracy, {data.name}, features {settings.features}, "
                                f"{backend_name()}")
    write_text(os.path.join(out, "per_class_accuracy.md"), markdown_table(
        ["class", *[figs.LABELS[k] for k in models]],
        [[name, *[f"{100 * results[k]['per_class_accuracy'][c]:.1f}%" for k in models]]
         for c, name in enumerate(names)]))

    metrics = {
        "task": "classify", "config": to_dict(config), "dataset": data.name, "data_source": data.source,
        "backend": backend_name(), **describe(), "encoder": source,
        "features": settings.features,
        "train_images": int(len(data.x_train)), "val_images": int(len(data.x_val)),
        "test_images": int(len(data.x_test)), "settings": vars(settings),
        "tuning": tuning, "models": {k: public(results[k], names) for k in models},
    }
    write_json(os.path.join(out, "metrics.json"), metrics)
    print(" | ".join(f"{k}: {100 * results[k]['test_accuracy']:.2f}% "
                     f"({results[k]['epochs']} epochs, {results[k]['wall_time_s']:.0f} s)"
                     for k in models), flush=True)

    if not config.skip_label_efficiency:
        rows = study.label_efficiency(config, data, encoder, settings, results, run, models,
                                      counts)
        metrics["label_efficiency"] = rows
        write_json(os.path.join(out, "metrics.json"), metrics)
        write_text(os.path.join(out, "label_efficiency.md"),
                   study.tables(rows, models, figs.LABELS))
        figs.label_efficiency_figure(rows, os.path.join(out, "label_efficiency.png"),
                                     f"Label efficiency, {data.name} test split "
                                     f"(features {settings.features})")
    return out
