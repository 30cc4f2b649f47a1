"""`python main.py tune`: hyperparameter search with KerasTuner (random, Bayesian,
Hyperband), optional k-fold cross-validation, TensorBoard HParams, resume, and
KerasTuner's chief/worker distribution."""

from __future__ import annotations

import argparse
import os
import time

from tasks.common import add_data_arguments, add_output_arguments, positive_int

HELP = ("search the CAE's hyperparameters with KerasTuner (random, bayesian, hyperband; "
        "k-fold; distributed)")

MODELS = ("cae",)
TUNERS = ("random", "bayesian", "hyperband")
#: Settings that define a search: resuming with other values would mix two searches.
_SEARCH_KEYS = ("model", "tuner", "folds", "space", "epochs", "patience", "seed", "dataset",
                "train_size")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from tuning.distributed import ROLES, parse_address

    from tasks.compute import add_compute_arguments

    add_data_arguments(parser)
    add_compute_arguments(parser)
    group = parser.add_argument_group("search")
    group.add_argument("--model", choices=MODELS, default="cae",
                       help="what to tune (default cae)")
    group.add_argument("--tuner", choices=TUNERS, default="random",
                       help="random search, Bayesian optimisation (Gaussian process), or "
                            "Hyperband (successive halving: the pruning tuner) (default random)")
    group.add_argument("--max-trials", type=positive_int, default=20, metavar="N",
                       help="trials to run, for every tuner (default 20); a resumed search "
                            "runs up to N in all")
    group.add_argument("--folds", type=positive_int, default=1, metavar="K",
                       help="K >= 2: each trial trains K models on seeded folds of the "
                            "training split and reports their mean validation MSE; "
                            "1: plain hold-out on the validation split (default 1)")
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
    from tasks.common import read_json, write_json
    from tasks.errors import UserError

    path = os.path.join(out, "search.json")
    if not os.path.isfile(path):
        write_json(path, settings)
        return False
    saved = read_json(path)
    diff = [f"--{k.replace('_', '-')} {saved.get(k)} (not {settings[k]})"
            for k in _SEARCH_KEYS if saved.get(k) != settings[k]]
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

    from tasks.common import backend_name, save_model
    from tasks.figures import loss_curves
    from tasks.metrics import mse

    hp = kt.HyperParameters()
    hypermodel.build(hp)  # declares the space; the values below replace the defaults
    hp.values.update(best_values)
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = hypermodel.build(hp)
    start = time.perf_counter()
    history = hypermodel.fit(
        hp, model, data.x_train, data.x_train, validation_data=(data.x_val, data.x_val),
        epochs=epochs, verbose=verbose,
        callbacks=[keras.callbacks.EarlyStopping(monitor=hypermodel.objective,
                                                 patience=patience,
                                                 restore_best_weights=True),
                   keras.callbacks.TerminateOnNaN()])
    wall = time.perf_counter() - start
    save_model(model, os.path.join(out, "best.keras"))
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    loss_curves({k: v for k, v in hist.items() if k.endswith("mse")},
                os.path.join(out, "best_training.png"),
                f"best configuration retrained on {len(data.x_train)} images "
                f"({backend_name()})", "MSE")
    recon = model.predict(data.x_test, batch_size=512, verbose=0)
    return {"test_mse": mse(recon, data.x_test),
            "retrain_best_val_mse": float(min(hist[hypermodel.objective])),
            "retrain_epochs": len(hist["loss"]), "retrain_seconds": wall,
            "parameters": int(model.count_params())}


def _run_local_workers(args) -> str:
    """``--local-workers N``: this process starts and watches the chief and workers."""
    import sys

    from tasks.common import make_run_dir
    from tasks.errors import UserError
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
    from tasks.common import (backend_name, load_data, make_run_dir, seed_everything,
                              write_json)
    from tasks.compute import describe
    from tasks.errors import UserError
    from tuning import dashboard, distributed, results
    from tuning.cae_hypermodel import CAEHyperModel
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
    if role == "chief":
        distributed.check_port_free(*args.oracle)  # fail now, not after loading data
    out = make_run_dir("tune", args.out)
    settings = {k: getattr(args, k) for k in _SEARCH_KEYS}
    resumed = _check_search(out, settings)
    tuner_id = distributed.configure(role, args.oracle, args.tuner_id) if role else "tuner0"

    seed_everything(args.seed)
    data = load_data(args)
    if args.folds > len(data.x_train):
        raise UserError(f"--folds {args.folds} exceeds the {len(data.x_train)} training "
                        f"images; give fewer folds")
    hypermodel = CAEHyperModel(args.space)
    objective = hypermodel.objective
    try:
        tuner = make_tuner(
            args.tuner, hypermodel, objective=objective, max_trials=args.max_trials,
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
    try:
        if role == "chief":
            distributed.serve(tuner)
        else:
            tuner.search(data.x_train, data.x_train, validation_data=(data.x_val, data.x_val),
                         epochs=args.epochs, verbose=min(args.verbose, 1))
    except RuntimeError as e:
        if "consecutive failures" not in str(e):
            raise
        last = [line for line in str(e).strip().splitlines() if line.strip()][-1]
        raise UserError(f"the search stopped after repeated failed trials: {last}") from None
    search_s = time.perf_counter() - start
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
        "objective": objective, "trials": len(rows), "completed_trials": len(completed),
        "best_trial": best["trial_id"], f"best_{objective}": best["objective"],
        f"best_{objective}_std": best["objective_std"],
        "best_hyperparameters": {h: best[h] for h in hp_names},
        "trial_epochs_total": float(sum((r["epochs"] or 0) * (r["folds"] or 1)
                                        for r in completed)),
        "trial_seconds_total": float(sum(r["seconds"] or 0 for r in completed)),
        "search_wall_s_this_run": search_s, "distributed": role or "none", **describe(),
        **final,
    }
    write_json(os.path.join(out, "metrics.json"), metrics)
    print(f"best configuration: test MSE {final['test_mse']:.5f} after "
          f"{final['retrain_epochs']} epochs ({len(completed)} trials, {backend_name()})")
    return out
