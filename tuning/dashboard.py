"""TensorBoard HParams for every trial, on every Keras backend.

KerasTuner writes HParams only on the TensorFlow backend and puts all trials
in one folder. Here each trial gets ``<tensorboard>/<trial_id>`` (its folds'
curves below it) with an HParams session summary and the trial's results as
scalars, written with ``tf.summary`` (TensorFlow is installed on every backend),
and the root gets the experiment's search space, so
``tensorboard --logdir <run>/tensorboard`` shows the HParams dashboard.
"""

from __future__ import annotations

from runtime.quiet import import_tensorflow_quietly

#: Trial results shown as HParams metrics (besides the objective and its spread).
RESULT_METRICS = ("epochs", "seconds")


def _hparam(hp_module, p):
    """A tensorboard ``HParam`` with the domain of KerasTuner hyperparameter ``p``."""
    import keras_tuner as kt

    if isinstance(p, kt.engine.hyperparameters.Choice):
        return hp_module.HParam(p.name, hp_module.Discrete(list(p.values)))
    if isinstance(p, kt.engine.hyperparameters.Boolean):
        return hp_module.HParam(p.name, hp_module.Discrete([True, False]))
    if isinstance(p, kt.engine.hyperparameters.Int):
        return hp_module.HParam(p.name, hp_module.IntInterval(int(p.min_value),
                                                              int(p.max_value)))
    if isinstance(p, kt.engine.hyperparameters.Float):
        return hp_module.HParam(p.name, hp_module.RealInterval(float(p.min_value),
                                                               float(p.max_value)))
    return hp_module.HParam(p.name)


def _tunable(hyperparameters):
    return [p for p in hyperparameters.space if not p.name.startswith("tuner/")]


def write_experiment(logdir: str, hyperparameters, objective: str) -> None:
    """The search space and metric names at the root of the logs."""
    import_tensorflow_quietly()
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp_api

    metrics = [hp_api.Metric(objective, display_name=f"{objective} (mean over folds)"),
               hp_api.Metric(f"{objective}_std", display_name=f"{objective} fold std"),
               *(hp_api.Metric(m) for m in RESULT_METRICS)]
    with tf.summary.create_file_writer(logdir).as_default():
        hp_api.hparams_config(hparams=[_hparam(hp_api, p) for p in _tunable(hyperparameters)],
                              metrics=metrics)


def write_trial_hparams(logdir: str, trial, metrics: dict) -> None:
    """One HParams session: the trial's values and results, in ``logdir``."""
    import_tensorflow_quietly()
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp_api

    hps = trial.hyperparameters
    values = {_hparam(hp_api, p): hps.values[p.name] for p in _tunable(hps)
              if p.name in hps.values}
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        hp_api.hparams(values, trial_id=str(trial.trial_id))
        for name, value in metrics.items():
            if name != "folds":
                tf.summary.scalar(name, value, step=0)
    writer.close()
