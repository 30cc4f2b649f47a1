"""Building a KerasTuner tuner by name: random search, Bayesian optimisation, Hyperband."""

from __future__ import annotations

from cli.errors import UserError

TUNERS = ("random", "bayesian", "hyperband")


def make_tuner(name: str, hypermodel, objective: str, max_trials: int, directory: str,
               project_name: str, seed: int = 0, overwrite: bool = False,
               max_epochs: int = 10, tuner_class=None, **kwargs):
    """A KerasTuner tuner of the named kind.

    Args:
        name: ``random``, ``bayesian`` or ``hyperband``.
        hypermodel: a ``keras_tuner.HyperModel``.
        objective: metric to minimise, e.g. ``"val_loss"``.
        max_trials: trials for every tuner. Hyperband sizes its brackets from
            ``max_epochs`` and also stops after ``max_trials`` trials (the
            Oracle's bound), so equal ``max_trials`` is an equal trial budget.
        directory, project_name: where the tuner keeps its state (resumable).
        seed: seeds the search.
        overwrite: start afresh instead of resuming.
        max_epochs: Hyperband's largest epoch budget per trial.
        tuner_class: a mixin class whose ``run_trial`` overrides the tuner's,
            combined with the chosen tuner class, e.g.
            ``tuning.kfold.KFoldTrialMixin`` (k-fold cross-validation, per-trial
            TensorBoard HParams; its options ``folds``, ``fold_seed``,
            ``patience``, ``tensorboard_dir``, ``on_trial_done`` go in
            ``**kwargs``).
        **kwargs: passed to the tuner. Bayesian search starts from
            ``num_initial_points`` random trials, by default
            ``max(3, max_trials // 4)``.
    """
    import keras_tuner as kt

    from storage.run_folder import record

    if name not in TUNERS:
        raise UserError(f"unknown tuner {name!r}; valid: {', '.join(TUNERS)}")
    if max_trials < 1:
        raise UserError(f"max trials must be >= 1, got {max_trials}")
    # KerasTuner's state and TensorBoard's logs: listed whole in the run folder's
    # marker, so that --overwrite deletes them and nothing else.
    for folder in (directory, kwargs.get("tensorboard_dir")):
        if folder:
            record(folder, "folders")
    base = {"random": kt.RandomSearch, "bayesian": kt.BayesianOptimization,
            "hyperband": kt.Hyperband}[name]
    cls = type(f"{tuner_class.__name__}{base.__name__}", (tuner_class, base), {}) \
        if tuner_class is not None else base
    common = dict(hypermodel=hypermodel, objective=kt.Objective(objective, "min")
                  if isinstance(objective, str) else objective,
                  directory=directory, project_name=project_name, seed=seed,
                  overwrite=overwrite, **kwargs)
    if name == "hyperband":
        if _hyperband_takes_max_trials():
            return cls(max_epochs=max_epochs, factor=3, max_trials=max_trials, **common)
        tuner = cls(max_epochs=max_epochs, factor=3, **common)
        # KerasTuner 1.4's HyperbandOracle takes no max_trials, but the Oracle
        # base class stops at ``max_trials`` trials (and pads trial ids to its
        # width): set it so all three tuners get the same trial budget. Not part
        # of the saved state, so it is set again on every resume.
        tuner.oracle.max_trials = max_trials
        return tuner
    if name == "bayesian" and "num_initial_points" not in common:
        # KerasTuner's default (3 per hyperparameter: 30 for the CAE) would make
        # a 20-trial Bayesian search pure random search.
        common["num_initial_points"] = max(3, max_trials // 4)
    if name == "bayesian":
        # The oracle's Gaussian process warns whenever a fitted length scale
        # sits at its bound (a flat direction: a hyperparameter that does not
        # matter); a warning per trial, nothing to act on.
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        warnings.filterwarnings("ignore", category=ConvergenceWarning,
                                module="sklearn.gaussian_process")
    return cls(max_trials=max_trials, **common)


def _hyperband_takes_max_trials() -> bool:
    import inspect

    import keras_tuner as kt
    return "max_trials" in inspect.signature(kt.oracles.HyperbandOracle.__init__).parameters
