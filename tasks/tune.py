"""`python main.py tune`: hyperparameter search with KerasTuner (random, Bayesian,
Hyperband) of the CAE, the classifier on a pretrained encoder, the VAE or the
GAN; optional k-fold cross-validation (CAE, classifier), TensorBoard HParams,
resume, and KerasTuner's chief/worker distribution.

Each model is a hypermodel in ``tuning/`` with its objectives: the CAE's
validation MSE, the classifier's validation accuracy, the VAE's validation
negative ELBO, the GAN's FID (or KID) of generated samples."""

from __future__ import annotations

import dataclasses
import os
import sys
import time

from data.arguments import DataConfig
from cli.args import positive_float, positive_int
from runtime.compute import ComputeConfig
from cli.options import add_config, from_args, option, section, to_dict
from storage.run_folder import OutputConfig
from tuning.distributed import ROLES, parse_address

HELP = ("search the hyperparameters of the CAE, classifier, VAE or GAN with KerasTuner "
        "(random, bayesian, hyperband; k-fold; distributed)")

MODELS = ("cae", "classifier", "vae", "gan")
TUNERS = ("random", "bayesian", "hyperband")
#: Settings that define a search: resuming with other values would mix two searches.
_SEARCH_KEYS = ("model", "tuner", "folds", "space", "epochs", "patience", "seed", "dataset",
                "train_size", "objective", "fid_samples", "encoder")


@dataclasses.dataclass
class SearchConfig:
    """What is tuned, by which tuner, and each trial's budget."""

    model: str = option(
        "cae", choices=MODELS,
        help="what to tune: the CAE, the classifier on a pretrained encoder, the VAE or "
             "the GAN")
    objective: str | None = option(
        None, metavar="NAME", default_help="the first named for the model",
        help="what the search optimises; cae: val_mse or val_loss; classifier: "
             "val_accuracy or val_loss; vae: val_neg_elbo (nats) or "
             "val_reconstruction_loss; gan: fid or kid of generated samples")
    tuner: str = option(
        "random", choices=TUNERS,
        help="random search, Bayesian optimisation (Gaussian process), or Hyperband "
             "(successive halving: the pruning tuner)")
    max_trials: int = option(
        20, type=positive_int, metavar="N",
        help="trials to run, for every tuner; a resumed search runs up to N in all")
    folds: int = option(
        1, type=positive_int, metavar="K",
        help="K >= 2: each trial trains K models on seeded folds of the training split "
             "and reports their mean objective (cae, classifier); 1: plain hold-out on "
             "the validation split")
    epochs: int = option(
        5, type=positive_int, metavar="E",
        help="most epochs per model in a trial (Hyperband's max_epochs)")
    patience: int = option(
        2, type=positive_int,
        help="early stopping inside each trial: epochs without validation improvement")
    space: str = option(
        "default", choices=("default", "small", "semi_supervised"),
        help="search space: default, small (tiny models, for smoke runs), or, with "
             "--model classifier, semi_supervised: the semi-supervised classifier's "
             "weights of its terms (reconstruction, consistency, pseudo-label "
             "threshold), head and AdamW, trained on 480 labels and every training "
             "image unlabelled")
    final_epochs: int = option(
        30, type=positive_int, metavar="E",
        help="most epochs when retraining the best configuration on the full training "
             "split")


@dataclasses.dataclass
class ModelInputs:
    """What the classifier and the GAN need besides the data."""

    encoder: str | None = option(
        None, metavar="FILE.keras", default_help="train a CAE for --cae-epochs first",
        help="classifier: the pretrained CAE or encoder")
    # Fewer than the cae task's epochs (training.cae.CAETraining): this CAE only
    # gives the searched classifiers an encoder.
    cae_epochs: int = option(
        10, type=positive_int, metavar="E",
        help="classifier without --encoder: epochs of the CAE trained first")
    fid_samples: int = option(
        5000, type=positive_int, metavar="N",
        help="gan: images generated from a fixed noise seed to score each trial against "
             "the validation split")
    domain_classifier: str | None = option(
        None, metavar="FILE.keras",
        default_help="`quality`'s cached reference extractor; with --train-size, a small "
                     "classifier in --out",
        help="gan: a feature extractor to use, or to train and save there")
    classifier_epochs: int = option(
        4, type=positive_int, metavar="E",
        help="gan: epochs when a --domain-classifier or subset classifier is trained")


@dataclasses.dataclass
class ClusterConfig:
    """KerasTuner's chief/worker distribution of the trials."""

    distributed: str | None = option(
        None, choices=ROLES,
        help="chief: serve the oracle and write the results; worker: run trials from the "
             "chief's oracle")
    oracle: tuple | None = option(
        None, type=parse_address, metavar="HOST:PORT",
        help="the chief's address, e.g. 10.0.0.1:8000 (the chief listens there)")
    oracle_timeout: float = option(
        60.0, type=positive_float, metavar="S",
        help="a worker gives up when no chief answers at --oracle within S seconds")
    tuner_id: str | None = option(
        None, metavar="ID", default_help="worker-<host>-<pid>",
        help="a worker's unique id; a restarted worker with the same id resumes its "
             "unfinished trial")
    local_workers: int | None = option(
        None, type=positive_int, metavar="N",
        help="run the chief and N workers on this machine, each worker on one GPU "
             "(CUDA_VISIBLE_DEVICES) or on the CPU; logs in <out>/workers")


@dataclasses.dataclass
class TuneConfig:
    """One ``tune`` run."""

    data: DataConfig = section(DataConfig, "data")
    compute: ComputeConfig = section(ComputeConfig, "compute")
    search: SearchConfig = section(SearchConfig, "search")
    inputs: ModelInputs = section(ModelInputs, "classifier and GAN")
    output: OutputConfig = section(OutputConfig, "output")
    resume: bool = option(
        False, action="store_true",
        help="continue the interrupted search in --out: its finished trials are kept, and "
             "the best configuration's retraining continues from its last finished epoch "
             "(running the same command again does the same)")
    verbose: int = option(
        1, type=int, choices=(0, 1, 2),
        help="0: one line per trial; 1: also KerasTuner's trial tables; 2: also one line "
             "per epoch")
    cluster: ClusterConfig = section(ClusterConfig, "distributed (KerasTuner chief/worker)")


def add_arguments(parser) -> None:
    add_config(parser, TuneConfig, task="tune")


def _check_search(out: str, settings: dict) -> bool:
    """Records the search's settings; refuses to resume a different search.

    Returns:
        True when ``out`` already held this search (a resume).
    """
    from cli.errors import UserError
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
    """Trains the best configuration on the full training split; saves best.keras.

    A phase of the run (``training.phases``): its state is saved after every
    epoch, a rerun continues it, and a finished retraining of the same
    configuration is reused.
    """
    import types

    import keras
    import keras_tuner as kt

    from models.saving import save_model
    from plots.figures import loss_curves
    from runtime.backend import backend_name
    from storage.training_backup import TrainingBackup
    from training.phases import PhasedRun, epoch_feed

    run = PhasedRun(out, resume=True)  # a rerun of tune continues its search
    tag = {"hyperparameters": best_values, "epochs": epochs}
    if run.finished("retrain", tag=tag) and os.path.isfile(os.path.join(out, "best.keras")):
        print("reusing the finished retraining of this configuration", flush=True)
        return run.record("retrain")["final"]
    backup_dir = run.start("retrain", tag=tag)
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
    feed = epoch_feed(x, y, hp.get("batch_size"), seed)
    backup = TrainingBackup(backup_dir, feed, watched=callbacks[:-1])
    initial_epoch = backup.restore(model)
    if backup.stopped:
        initial_epoch = epochs  # early stopping had ended it: no further epoch
    if initial_epoch:
        print(f"resuming the retraining from {backup_dir}: " + (
            "it had finished" if backup.finished else f"epoch {initial_epoch} of {epochs} done"),
            flush=True)
    start = time.perf_counter()
    if not backup.finished:
        # shuffle=False: the feed shuffles; the backup last (see TrainingBackup).
        hypermodel.fit(hp, model, feed, validation_data=val, epochs=epochs,
                       initial_epoch=initial_epoch, verbose=verbose, shuffle=False,
                       callbacks=[*callbacks, backup])
    backup.add_wall_time(time.perf_counter() - start)
    hist = backup.history  # every epoch, those of an interrupted process too
    retrain_score = hypermodel.trial_score(model, types.SimpleNamespace(history=hist))
    save_model(hypermodel.inference_model(model), os.path.join(out, "best.keras"))
    base = objective.removeprefix("val_")
    curves = {k: v for k, v in hist.items() if k.endswith(base)} or hist
    loss_curves(curves, os.path.join(out, "best_training.png"),
                f"best configuration retrained on {len(data.x_train)} images "
                f"({backend_name()})", base if curves is not hist else "loss")
    final = {**hypermodel.test_metrics(model, data),
             f"retrain_{objective}": retrain_score,
             "retrain_epochs": len(hist["loss"] if "loss" in hist else next(iter(hist.values()))),
             "retrain_seconds": backup.wall_s, "parameters": int(model.count_params())}
    run.finish("retrain", {"final": final}, tag=tag)
    return final


def check_model_options(search: SearchConfig, inputs: ModelInputs) -> None:
    """One-line errors for options that do not fit ``--model`` (before any work)."""
    from cli.errors import UserError
    from tuning.hypermodels import HYPERMODELS

    model = search.model
    cls = HYPERMODELS[model]
    if search.objective is not None and search.objective not in cls.OBJECTIVES:
        raise UserError(f"--objective {search.objective!r} does not fit --model {model}; "
                        f"valid: {', '.join(cls.OBJECTIVES)}")
    if search.folds > 1 and not cls.supports_folds:
        raise UserError(f"--folds {search.folds}: --model {model} is not cross-validated "
                        f"(k-fold is for cae and classifier); give --folds 1")
    if inputs.encoder is not None and model != "classifier":
        raise UserError(f"--encoder is only for --model classifier, not {model}")
    if search.space == "semi_supervised" and model != "classifier":
        raise UserError(f"--space semi_supervised is only for --model classifier, not {model}")


def make_hypermodel(config: TuneConfig, data, out: str):
    """The hypermodel of ``--model``, with what it needs (an encoder, a domain classifier)."""
    from cli.errors import UserError
    from tuning.hypermodels import HYPERMODELS

    search, inputs, seed = config.search, config.inputs, config.data.seed
    cls = HYPERMODELS[search.model]
    common = {"space": search.space, "objective": search.objective}
    if search.model == "classifier":
        encoder = _pretrained_encoder(inputs, data, out)
        try:
            return cls(encoder, num_classes=len(data.class_names), **common)
        except ValueError as e:
            raise UserError(f"--encoder {inputs.encoder!r}: {e}") from None
    if search.model == "gan":
        return cls(_sample_distance(inputs, config.data, data, out),
                   n_samples=inputs.fid_samples, noise_seed=seed, seed=seed, **common)
    if search.model == "vae":
        return cls(seed=seed, **common)
    return cls(**common)


def load_encoder(path: str):
    """The encoder in a CAE or encoder ``.keras`` file; one line (exit 2) if none."""
    from models.classifier import encoder_from_model
    from models.saving import load_keras_model
    from cli.errors import UserError

    model = load_keras_model(path, "--encoder")
    try:
        return encoder_from_model(model)
    except ValueError as e:
        raise UserError(f"--encoder {path!r}: {e}") from None


def _pretrained_encoder(inputs: ModelInputs, data, out: str):
    """The encoder of ``--encoder``, or of a CAE trained now into ``<out>/cae``."""
    from models.cae import CAEConfig, split_cae
    from models.saving import load_keras_model

    if inputs.encoder is not None:
        return load_encoder(inputs.encoder)
    path = os.path.join(out, "cae", "cae.keras")
    if os.path.isfile(path):  # a resumed search keeps the CAE its trials used
        print(f"reusing the CAE {path}", flush=True)
        return split_cae(load_keras_model(path, "CAE"))[0]
    from training.cae import CAETraining, train_cae

    os.makedirs(os.path.dirname(path), exist_ok=True)
    print(f"no --encoder: training a CAE for {inputs.cae_epochs} epochs into "
          f"{os.path.dirname(path)}", flush=True)
    model, _ = train_cae(data, CAEConfig(), os.path.dirname(path),
                         CAETraining(epochs=inputs.cae_epochs), verbose=0)
    return split_cae(model)[0]


def _sample_distance(inputs: ModelInputs, data_config: DataConfig, data, out: str):
    """``distance(images, split, metric)``: FID or KID against a real split in
    the domain classifier's features (the classifier and split features cached)."""
    import warnings

    from scipy.linalg import LinAlgWarning

    from evaluation.sample_quality import (domain_classifier, featurize, fid, kid,
                                           reference_extractor)

    if inputs.domain_classifier or data_config.train_size:
        # A given file, or for a smoke run on a subset a small classifier kept in
        # the run folder (training the reference would read every training image).
        path = inputs.domain_classifier or os.path.join(out, "domain_classifier.keras")
        classifier = domain_classifier(data, path, epochs=inputs.classifier_epochs)
    else:  # the features `quality` reports in: its cached reference extractor
        classifier, _ = reference_extractor(data_config.dataset, data_config.data_dir, seed=0)
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
            return kid(features, references[split], seed=data_config.seed)[0]
    return distance


def _run_local_workers(config: TuneConfig, argv: list) -> str:
    """``--local-workers N``: this process starts and watches the chief and workers,
    each a ``main.py`` process given ``argv`` (this one's command line) without
    ``--local-workers`` and ``--out``."""
    from cli.errors import UserError
    from storage.run_folder import make_run_dir
    from tuning.local_workers import run_local, without_option

    cluster = config.cluster
    for name, value in (("--distributed", cluster.distributed), ("--oracle", cluster.oracle),
                        ("--tuner-id", cluster.tuner_id)):
        if value is not None:
            raise UserError(f"--local-workers starts the chief and the workers itself; "
                            f"drop {name}")
    if config.compute.distribute != "none" or config.compute.cpu_devices:
        raise UserError("--local-workers gives each worker one device; drop --distribute "
                        "and --cpu-devices")
    out = make_run_dir("tune", config.output.out)
    argv = without_option(without_option(argv, "--local-workers"), "--out")
    try:
        run_local(argv, out, cluster.local_workers)
    except RuntimeError as e:
        raise UserError(str(e)) from None
    return out


def search_settings(config: TuneConfig) -> dict:
    """The values of :data:`_SEARCH_KEYS`: what a resumed search must repeat."""
    from tuning.hypermodels import HYPERMODELS

    values = {**dataclasses.asdict(config.data), **dataclasses.asdict(config.inputs),
              **dataclasses.asdict(config.search)}
    settings = {k: values[k] for k in _SEARCH_KEYS}
    settings["objective"] = (config.search.objective
                             or next(iter(HYPERMODELS[config.search.model].OBJECTIVES)))
    if config.search.model != "gan":
        settings["fid_samples"] = None
    return settings


CONFIG = TuneConfig


def run(args) -> str:
    # main.py keeps the command line for --local-workers, which restarts main.py.
    return tune(from_args(TuneConfig, args), argv=getattr(args, "main_argv", sys.argv[1:]))


def tune(config: TuneConfig, argv: list | None = None) -> str:
    """Runs the search of ``config`` (as chief, worker, or alone) into its run
    folder, which it returns; ``argv``: the command line, for ``--local-workers``."""
    from data.arguments import load_data
    from runtime.backend import backend_name, seed_everything
    from runtime.compute import describe
    from cli.errors import UserError
    from storage.files import write_json
    from storage.run_folder import make_run_dir
    from tuning import dashboard, distributed, results
    from training.phases import resume_folder
    from tuning.kfold import KFoldTrialMixin
    from tuning.tuners import make_tuner

    search, inputs, cluster, seed = config.search, config.inputs, config.cluster, config.data.seed
    if cluster.local_workers:
        return _run_local_workers(config, sys.argv[1:] if argv is None else argv)
    role = cluster.distributed
    if role and cluster.oracle is None:
        raise UserError(f"--distributed {role} needs --oracle HOST:PORT (the chief's address)")
    if cluster.oracle is not None and not role:
        raise UserError("--oracle is only for --distributed chief|worker")
    if cluster.tuner_id is not None and role != "worker":
        raise UserError("--tuner-id is only for --distributed worker")
    check_model_options(search, inputs)
    if inputs.encoder is not None:
        load_encoder(inputs.encoder)  # a file that is no encoder: fail before any work
    if role == "chief":
        distributed.check_port_free(*cluster.oracle)  # fail now, not after loading data
    if role == "worker":
        distributed.wait_for_chief(*cluster.oracle, cluster.oracle_timeout)
    out = make_run_dir("tune", resume_folder("tune", config.output.out, config.resume),
                       overwrite=config.output.overwrite, resume=True)
    resumed = _check_search(out, search_settings(config))
    seed_everything(seed)
    data = load_data(config.data)
    if search.folds > len(data.x_train):
        raise UserError(f"--folds {search.folds} exceeds the {len(data.x_train)} training "
                        f"images; give fewer folds")
    hypermodel = make_hypermodel(config, data, out)
    objective = hypermodel.objective
    tuner_id = distributed.configure(role, cluster.oracle, cluster.tuner_id) if role \
        else "tuner0"
    fit_verbose = 2 if config.verbose == 2 else 0
    try:
        tuner = make_tuner(
            search.tuner, hypermodel,
            objective=kt_objective(objective, hypermodel.direction),
            max_trials=search.max_trials,
            directory=os.path.join(out, "tuner"), project_name=search.model, seed=seed,
            overwrite=False, max_epochs=search.epochs, tuner_class=KFoldTrialMixin,
            folds=search.folds, fold_seed=seed, patience=search.patience,
            tensorboard_dir=os.path.join(out, "tensorboard"),
            on_trial_done=_trial_printer(tuner_id, objective), fit_verbose=fit_verbose)
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
    x, y, val = hypermodel.search_data(data)
    try:
        if role == "chief":
            distributed.serve(tuner)
        else:
            tuner.search(x, y, validation_data=val, epochs=search.epochs,
                         verbose=min(config.verbose, 1))
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

    title = f"{search.tuner} search, {search.model}, {search.folds}-fold" if search.folds > 1 \
        else f"{search.tuner} search, {search.model}, hold-out"
    rows, best = results.write_all(tuner.oracle, out, title)
    if best is None:
        raise UserError(f"no trial finished in {out!r}; see the messages in "
                        f"{os.path.join(out, 'tuner')}")
    print(f"best trial {best['trial_id']}: {objective} {best['objective']:.5f}; retraining it "
          f"on the full training split", flush=True)
    hp_names = results.tunable_names(tuner.oracle.get_space())
    final = retrain_best(hypermodel, {h: best[h] for h in hp_names}, data, out,
                         search.final_epochs, max(search.patience, 4), seed, fit_verbose)
    completed = [r for r in rows if r["status"] == "COMPLETED"]
    metrics = {
        "task": "tune", "config": to_dict(config), "model": search.model,
        "tuner": search.tuner, "folds": search.folds,
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
        **({"fid_samples": inputs.fid_samples} if search.model == "gan" else {}),
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
