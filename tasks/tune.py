"""`python main.py tune`: hyperparameter search with KerasTuner (random, Bayesian,
Hyperband) of the CAE, the classifier on a pretrained encoder, the VAE or the
GAN; optional k-fold cross-validation (CAE, classifier), TensorBoard HParams,
resume, and KerasTuner's chief/worker distribution.

Each model is a hypermodel in ``tuning/`` with its objectives: the CAE's
validation MSE, the classifier's validation accuracy, the VAE's validation
negative ELBO, the GAN's FID (or KID) of generated samples."""

from __future__ import annotations

import argparse
import os
import time

from data.arguments import add_data_arguments
from runtime.args import positive_float, positive_int
from storage.run_folder import add_output_arguments

HELP = ("search the hyperparameters of the CAE, classifier, VAE or GAN with KerasTuner "
        "(random, bayesian, hyperband; k-fold; distributed)")

MODELS = ("cae", "classifier", "vae", "gan")
TUNERS = ("random", "bayesian", "hyperband")
#: Settings that define a search: resuming with other values would mix two searches.
_SEARCH_KEYS = ("model", "tuner", "folds", "space", "epochs", "patience", "seed", "dataset",
                "train_size", "objective", "fid_samples", "encoder")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from tuning.distributed import ROLES, parse_address

    from runtime.compute import add_compute_arguments

    add_data_arguments(parser)
    add_compute_arguments(parser)
    group = parser.add_argument_group("search")
    group.add_argument("--model", choices=MODELS, default="cae",
                       help="what to tune: the CAE, the classifier on a pretrained encoder, "
                            "the VAE or the GAN (default cae)")
    group.add_argument("--objective", default=None, metavar="NAME",
                       help="what the search optimises; cae: val_mse (default) or val_loss; "
                            "classifier: val_accuracy (default) or val_loss; vae: "
                            "val_neg_elbo (nats, default) or val_reconstruction_loss; gan: "
                            "fid (default) or kid of generated samples")
    group.add_argument("--tuner", choices=TUNERS, default="random",
                       help="random search, Bayesian optimisation (Gaussian process), or "
                            "Hyperband (successive halving: the pruning tuner) (default random)")
    group.add_argument("--max-trials", type=positive_int, default=20, metavar="N",
                       help="trials to run, for every tuner (default 20); a resumed search "
                            "runs up to N in all")
    group.add_argument("--folds", type=positive_int, default=1, metavar="K",
                       help="K >= 2: each trial trains K models on seeded folds of the "
                            "training split and reports their mean objective (cae, "
                            "classifier); 1: plain hold-out on the validation split "
                            "(default 1)")
    group.add_argument("--epochs", type=positive_int, default=5, metavar="E",
                       help="most epochs per model in a trial (Hyperband's max_epochs) "
                            "(default 5)")
    group.add_argument("--patience", type=positive_int, default=2,
                       help="early stopping inside each trial: epochs without validation "
                            "improvement (default 2)")
    group.add_argument("--space", choices=("default", "small"), default="default",
                       help="search space: default, or small (tiny models, for smoke runs)")
    group.add_argument("--final-epochs", type=positive_int, default=30, metavar="E",
                       help="most epochs when retraining the best configuration on the "
                            "full training split (default 30)")
    gen = parser.add_argument_group("classifier and GAN")
    gen.add_argument("--encoder", default=None, metavar="FILE.keras",
                     help="classifier: the pretrained CAE or encoder (default: train a CAE "
                          "for --cae-epochs first)")
    gen.add_argument("--cae-epochs", type=positive_int, default=10, metavar="E",
                     help="classifier without --encoder: epochs of the CAE trained first "
                          "(default 10)")
    gen.add_argument("--fid-samples", type=positive_int, default=5000, metavar="N",
                     help="gan: images generated from a fixed noise seed to score each "
                          "trial against the validation split (default 5000)")
    gen.add_argument("--domain-classifier", default=None, metavar="FILE.keras",
                     help="gan: a feature extractor to use, or to train and save there "
                          "(default: `quality`'s cached reference extractor; with "
                          "--train-size, a small classifier in --out)")
    gen.add_argument("--classifier-epochs", type=positive_int, default=4, metavar="E",
                     help="gan: epochs when a --domain-classifier or subset classifier is "
                          "trained (default 4)")
    add_output_arguments(parser, "tune")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                        help="0: one line per trial; 1: also KerasTuner's trial tables "
                             "(default); 2: also one line per epoch")
    dist = parser.add_argument_group("distributed (KerasTuner chief/worker)")
    dist.add_argument("--distributed", choices=ROLES, default=None,
                      help="chief: serve the oracle and write the results; worker: run "
                           "trials from the chief's oracle")
    dist.add_argument("--oracle", type=parse_address, default=None, metavar="HOST:PORT",
                      help="the chief's address, e.g. 10.0.0.1:8000 (the chief listens there)")
    dist.add_argument("--oracle-timeout", type=positive_float, default=60.0, metavar="S",
                      help="a worker gives up when no chief answers at --oracle within S "
                           "seconds (default 60)")
    dist.add_argument("--tuner-id", default=None, metavar="ID",
                      help="a worker's unique id (default worker-<host>-<pid>); a restarted "
                           "worker with the same id resumes its unfinished trial")
    dist.add_argument("--local-workers", type=positive_int, default=None, metavar="N",
                      help="run the chief and N workers on this machine, each worker on one "
                           "GPU (CUDA_VISIBLE_DEVICES) or on the CPU; logs in <out>/workers")


def _check_search(out: str, settings: dict) -> bool:
    """Records the search's settings; refuses to resume a different search.

    Returns:
        True when ``out`` already held this search (a resume).
    """
    from runtime.errors import UserError
    from storage.files import read_json, write_json

    path = os.path.join(out, "search.json")
    if not os.path.isfile(path):
        write_json(path, settings)
        return False
    saved = read_json(path)
    diff = [f"--{k.replace('_', '-')} {saved.get(k)} (not {settings[k]})"
            for k in _SEARCH_KEYS if k in saved and saved[k] != settings[k]]
    if diff:
        raise UserError(f"--out {out!r} holds another search ({', '.join(diff)}); "
                        f"repeat its settings to resume it, or give a new --out")
    return True


def _trial_printer(tuner_id: str, objective: str):
    prefix = f"[{tuner_id}] " if tuner_id != "tuner0" else ""

    def done(trial_id, metrics):
        folds = int(metrics["folds"])
        spread = f" ± {metrics[objective + '_std']:.5f} over {folds} folds" if folds > 1 \
            else " (hold-out)"
        print(f"{prefix}trial {trial_id}: {objective} {metrics[objective]:.5f}{spread}, "
              f"{metrics['epochs']:.1f} epochs, {metrics['seconds']:.0f} s", flush=True)
    return done


def retrain_best(hypermodel, best_values: dict, data, out: str, epochs: int, patience: int,
                 seed: int, verbose: int) -> dict:
    """Trains the best configuration on the full training split; saves best.keras."""
    import keras
    import keras_tuner as kt

    from models.saving import save_model
    from plots.figures import loss_curves
    from runtime.backend import backend_name

    hp = kt.HyperParameters()
    hypermodel.build(hp)  # declares the space; the values below replace the defaults
    hp.values.update(best_values)
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = hypermodel.build(hp)
    objective = hypermodel.objective
    callbacks = [keras.callbacks.TerminateOnNaN()]
    if hypermodel.early_stopping:
        callbacks.insert(0, keras.callbacks.EarlyStopping(
            monitor=objective, mode=hypermodel.direction, patience=patience,
            restore_best_weights=True))
    x, y, val = hypermodel.search_data(data)
    start = time.perf_counter()
    history = hypermodel.fit(hp, model, x, y, validation_data=val, epochs=epochs,
                             verbose=verbose, callbacks=callbacks)
    wall = time.perf_counter() - start
    retrain_score = hypermodel.trial_score(model, history)
    save_model(hypermodel.inference_model(model), os.path.join(out, "best.keras"))
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    base = objective.removeprefix("val_")
    curves = {k: v for k, v in hist.items() if k.endswith(base)} or hist
    loss_curves(curves, os.path.join(out, "best_training.png"),
                f"best configuration retrained on {len(data.x_train)} images "
                f"({backend_name()})", base if curves is not hist else "loss")
    return {**hypermodel.test_metrics(model, data),
            f"retrain_{objective}": retrain_score,
            "retrain_epochs": len(hist["loss"] if "loss" in hist else next(iter(hist.values()))),
            "retrain_seconds": wall, "parameters": int(model.count_params())}


def check_model_options(args) -> None:
    """One-line errors for options that do not fit ``--model`` (before any work)."""
    from runtime.errors import UserError
    from tuning.hypermodels import HYPERMODELS

    cls = HYPERMODELS[args.model]
    if args.objective is not None and args.objective not in cls.OBJECTIVES:
        raise UserError(f"--objective {args.objective!r} does not fit --model {args.model}; "
                        f"valid: {', '.join(cls.OBJECTIVES)}")
    if args.folds > 1 and not cls.supports_folds:
        raise UserError(f"--folds {args.folds}: --model {args.model} is not cross-validated "
                        f"(k-fold is for cae and classifier); give --folds 1")
    if args.encoder is not None and args.model != "classifier":
        raise UserError(f"--encoder is only for --model classifier, not {args.model}")


def make_hypermodel(args, data, out: str):
    """The hypermodel of ``--model``, with what it needs (an encoder, a domain classifier)."""
    from runtime.errors import UserError
    from tuning.hypermodels import HYPERMODELS

    cls = HYPERMODELS[args.model]
    common = {"space": args.space, "objective": args.objective}
    if args.model == "classifier":
        encoder = _pretrained_encoder(args, data, out)
        try:
            return cls(encoder, num_classes=len(data.class_names), **common)
        except ValueError as e:
            raise UserError(f"--encoder {args.encoder!r}: {e}") from None
    if args.model == "gan":
        return cls(_sample_distance(args, data, out), n_samples=args.fid_samples,
                   noise_seed=args.seed, seed=args.seed, **common)
    if args.model == "vae":
        return cls(seed=args.seed, **common)
    return cls(**common)


def load_encoder(path: str):
    """The encoder in a CAE or encoder ``.keras`` file; one line (exit 2) if none."""
    from models.classifier import encoder_from_model
    from models.saving import load_keras_model
    from runtime.errors import UserError

    model = load_keras_model(path, "--encoder")
    try:
        return encoder_from_model(model)
    except ValueError as e:
        raise UserError(f"--encoder {path!r}: {e}") from None


def _pretrained_encoder(args, data, out: str):
    """The encoder of ``--encoder``, or of a CAE trained now into ``<out>/cae``."""
    from models.cae import CAEConfig, split_cae
    from models.saving import load_keras_model

    if args.encoder is not None:
        return load_encoder(args.encoder)
    path = os.path.join(out, "cae", "cae.keras")
    if os.path.isfile(path):  # a resumed search keeps the CAE its trials used
        print(f"reusing the CAE {path}", flush=True)
        return split_cae(load_keras_model(path, "CAE"))[0]
    from training.cae import CAETraining, train_cae

    os.makedirs(os.path.dirname(path), exist_ok=True)
    print(f"no --encoder: training a CAE for {args.cae_epochs} epochs into "
          f"{os.path.dirname(path)}", flush=True)
    model, _ = train_cae(data, CAEConfig(), os.path.dirname(path),
                         CAETraining(epochs=args.cae_epochs), verbose=0)
    return split_cae(model)[0]


def _sample_distance(args, data, out: str):
    """``distance(images, split, metric)``: FID or KID against a real split in
    the domain classifier's features (the classifier and split features cached)."""
    import warnings

    from scipy.linalg import LinAlgWarning

    from evaluation.sample_quality import (domain_classifier, featurize, fid, kid,
                                           reference_extractor)

    if args.domain_classifier or args.train_size:
        # A given file, or for a smoke run on a subset a small classifier kept in
        # the run folder (training the reference would read every training image).
        path = args.domain_classifier or os.path.join(out, "domain_classifier.keras")
        classifier = domain_classifier(data, path, epochs=args.classifier_epochs)
    else:  # the features `quality` reports in: its cached reference extractor
        classifier, _ = reference_extractor(args.dataset, args.data_dir, seed=0)
    references = {}

    def distance(images, split: str, metric: str) -> float:
        if split not in references:
            references[split] = featurize(classifier, getattr(data, f"x_{split}"))[0]
        features = featurize(classifier, images)[0]
        with warnings.catch_warnings():
            # A few samples (smoke runs) give a singular covariance; fid copes.
            warnings.simplefilter("ignore", LinAlgWarning)
            if metric == "fid":
                return fid(features, references[split])
            return kid(features, references[split], seed=args.seed)[0]
    return distance


def _run_local_workers(args) -> str:
    """``--local-workers N``: this process starts and watches the chief and workers."""
    import sys

    from runtime.errors import UserError
    from storage.run_folder import make_run_dir
    from tuning.local_workers import run_local, without_option

    for option, value in (("--distributed", args.distributed), ("--oracle", args.oracle),
                          ("--tuner-id", args.tuner_id)):
        if value is not None:
            raise UserError(f"--local-workers starts the chief and the workers itself; "
                            f"drop {option}")
    if args.distribute != "none" or args.cpu_devices:
        raise UserError("--local-workers gives each worker one device; drop --distribute "
                        "and --cpu-devices")
    out = make_run_dir("tune", args.out)
    argv = getattr(args, "_argv", sys.argv[1:])
    argv = without_option(without_option(argv, "--local-workers"), "--out")
    try:
        run_local(argv, out, args.local_workers)
    except RuntimeError as e:
        raise UserError(str(e)) from None
    return out


def run(args) -> str:
    from data.arguments import load_data
    from runtime.backend import backend_name, seed_everything
    from runtime.compute import describe
    from runtime.errors import UserError
    from storage.files import write_json
    from storage.run_folder import make_run_dir
    from tuning import dashboard, distributed, results
    from tuning.hypermodels import HYPERMODELS
    from tuning.kfold import KFoldTrialMixin
    from tuning.tuners import make_tuner

    if args.local_workers:
        return _run_local_workers(args)
    role = args.distributed
    if role and args.oracle is None:
        raise UserError(f"--distributed {role} needs --oracle HOST:PORT (the chief's address)")
    if args.oracle is not None and not role:
        raise UserError("--oracle is only for --distributed chief|worker")
    if args.tuner_id is not None and role != "worker":
        raise UserError("--tuner-id is only for --distributed worker")
    check_model_options(args)
    if args.encoder is not None:
        load_encoder(args.encoder)  # a file that is no encoder: fail before any work
    if role == "chief":
        distributed.check_port_free(*args.oracle)  # fail now, not after loading data
    if role == "worker":
        distributed.wait_for_chief(*args.oracle, args.oracle_timeout)
    out = make_run_dir("tune", args.out, overwrite=args.overwrite, resume=True)
    settings = {k: getattr(args, k) for k in _SEARCH_KEYS}
    settings["objective"] = args.objective or next(iter(HYPERMODELS[args.model].OBJECTIVES))
    if args.model != "gan":
        settings["fid_samples"] = None
    resumed = _check_search(out, settings)
    seed_everything(args.seed)
    data = load_data(args)
    if args.folds > len(data.x_train):
        raise UserError(f"--folds {args.folds} exceeds the {len(data.x_train)} training "
                        f"images; give fewer folds")
    hypermodel = make_hypermodel(args, data, out)
    objective = hypermodel.objective
    tuner_id = distributed.configure(role, args.oracle, args.tuner_id) if role else "tuner0"
    try:
        tuner = make_tuner(
            args.tuner, hypermodel, objective=kt_objective(objective, hypermodel.direction),
            max_trials=args.max_trials,
            directory=os.path.join(out, "tuner"), project_name=args.model, seed=args.seed,
            overwrite=False, max_epochs=args.epochs, tuner_class=KFoldTrialMixin,
            folds=args.folds, fold_seed=args.seed, patience=args.patience,
            tensorboard_dir=os.path.join(out, "tensorboard"),
            on_trial_done=_trial_printer(tuner_id, objective),
            fit_verbose=2 if args.verbose == 2 else 0)
    except RuntimeError as e:  # KerasTuner could not reload the saved state
        raise UserError(f"cannot resume the search in {out!r}: "
                        f"{str(e).strip().splitlines()[0]}") from None
    if resumed and role != "worker":
        done = sum(t.status == "COMPLETED" for t in tuner.oracle.trials.values())
        print(f"resuming the search in {out}: {done} trials finished", flush=True)
    if role != "worker":
        dashboard.write_experiment(os.path.join(out, "tensorboard"),
                                   tuner.oracle.get_space(), objective)

    start = time.perf_counter()
    fit_verbose = 2 if args.verbose == 2 else 0
    x, y, val = hypermodel.search_data(data)
    try:
        if role == "chief":
            distributed.serve(tuner)
        else:
            tuner.search(x, y, validation_data=val, epochs=args.epochs,
                         verbose=min(args.verbose, 1))
    except RuntimeError as e:
        if "consecutive failures" not in str(e):
            raise
        last = [line for line in str(e).strip().splitlines() if line.strip()][-1]
        raise UserError(f"the search stopped after repeated failed trials: {last}") from None
    search_s = time.perf_counter() - start
    del x, y, val
    if role == "worker":
        print(f"[{tuner_id}] no trials left; worker done", flush=True)
        return out

    title = f"{args.tuner} search, {args.model}, {args.folds}-fold" if args.folds > 1 \
        else f"{args.tuner} search, {args.model}, hold-out"
    rows, best = results.write_all(tuner.oracle, out, title)
    if best is None:
        raise UserError(f"no trial finished in {out!r}; see the messages in "
                        f"{os.path.join(out, 'tuner')}")
    print(f"best trial {best['trial_id']}: {objective} {best['objective']:.5f}; retraining it "
          f"on the full training split", flush=True)
    hp_names = results.tunable_names(tuner.oracle.get_space())
    final = retrain_best(hypermodel, {h: best[h] for h in hp_names}, data, out,
                         args.final_epochs, max(args.patience, 4), args.seed, fit_verbose)
    completed = [r for r in rows if r["status"] == "COMPLETED"]
    metrics = {
        "task": "tune", "model": args.model, "tuner": args.tuner, "folds": args.folds,
        "backend": backend_name(), "dataset": data.name, "data_source": data.source,
        "train_images": int(len(data.x_train)), "test_images": int(len(data.x_test)),
        "objective": objective, "direction": hypermodel.direction, "trials": len(rows),
        "completed_trials": len(completed),
        "best_trial": best["trial_id"], f"best_{objective}": best["objective"],
        f"best_{objective}_std": best["objective_std"],
        "best_hyperparameters": {h: best[h] for h in hp_names},
        "trial_epochs_total": float(sum((r["epochs"] or 0) * (r["folds"] or 1)
                                        for r in completed)),
        "trial_seconds_total": float(sum(r["seconds"] or 0 for r in completed)),
        "search_wall_s_this_run": search_s, "distributed": role or "none", **describe(),
        **({"fid_samples": args.fid_samples} if args.model == "gan" else {}),
        **final,
    }
    write_json(os.path.join(out, "metrics.json"), metrics)
    tests = ", ".join(f"{k} {v:.5g}" for k, v in final.items() if k.startswith("test_"))
    print(f"best configuration: {tests} after {final['retrain_epochs']} epochs "
          f"({len(completed)} trials, {backend_name()})")
    return out


def kt_objective(name: str, direction: str):
    import keras_tuner as kt

    return kt.Objective(name, direction)
