"""The three classifiers of one label fraction as phases of the run
(``training.phases``): each is trained with a per-epoch backup, and on
``--resume`` one that finished is read back from its record instead of trained.

A phase's record is its public result (accuracies, curves, the test predictions
for the confusion matrix), in ``phases/<model><fraction>.json``. The fine-tuned
classifier starts from the frozen one's head, kept for that in
``phases/frozen_head<fraction>.keras``.
"""

from __future__ import annotations

import os

MODELS = ("frozen", "fine_tuned", "baseline")
#: The model files of the classifiers trained on all labels.
SAVED = {"frozen": "classifier_frozen.keras", "fine_tuned": "classifier_fine_tuned.keras",
         "baseline": "baseline.keras"}


def suffix(fraction: float) -> str:
    """The phase names' suffix of a label fraction: none for all labels."""
    return "" if fraction == 1.0 else f"@{fraction:g}"


def _public(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "model"}


def train_three(run, encoder, split: tuple, test: tuple, settings, fraction: float = 1.0,
                save_to: str | None = None, label: str | None = None) -> dict:
    """The frozen, fine-tuned and supervised classifiers on one label fraction.

    Args:
        run: the run's :class:`training.phases.PhasedRun`.
        encoder: the pretrained encoder.
        split: ``(x, y, x_val, y_val)`` of this fraction.
        test: ``(x_test, y_test)``.
        settings: the classifiers' :class:`training.classifier_config.Settings`.
        fraction: the label fraction (names the phases; below 1, small training
            sets get more epochs).
        save_to: write the three models there (:data:`SAVED`).
        label: the phases' suffix (default: :func:`suffix` of ``fraction``); one per
            labelled subset.

    Returns:
        ``{model: record}`` for :data:`MODELS`, without the models themselves.
    """
    import numpy as np

    from models.saving import load_keras_model, save_model
    from training.classifier import (pretrained_parts, train_baseline, train_fine_tuned,
                                     train_frozen)

    label, scale = suffix(fraction) if label is None else label, fraction != 1.0
    head_file = run.file(f"frozen_head{label}.keras")
    results, parts = {}, None

    def done(name):
        if not run.finished(name + label):
            return False
        results[name] = run.record(name + label)
        results[name]["predictions"] = np.asarray(results[name]["predictions"])
        print(f"reusing the finished {name.replace('_', '-')} classifier"
              f"{' on ' + label[1:] + ' of the labels' if label else ''}", flush=True)
        return True

    def finish(name, record):
        if save_to is not None:
            save_model(record["model"], os.path.join(save_to, SAVED[name]))
        results[name] = _public(record)
        run.finish(name + label, results[name])

    if not done("frozen"):
        record, parts = train_frozen(encoder, *split, *test, settings, epoch_scale=scale,
                                     backup_dir=run.start("frozen" + label))
        save_model(parts[1], head_file)  # what fine-tuning starts from
        finish("frozen", {**record, "model": parts[2]})
    if not done("fine_tuned"):
        backup = run.start("fine_tuned" + label)
        if parts is None:  # the frozen classifier was trained by an earlier process
            extractor, head = pretrained_parts(encoder, settings)
            head.set_weights(load_keras_model(head_file, "the frozen classifier's head")
                             .get_weights())
            parts = (extractor, head)
        finish("fine_tuned", train_fine_tuned(parts[0], parts[1], results["frozen"], *split,
                                              *test, settings, epoch_scale=scale,
                                              backup_dir=backup))
    if not done("baseline"):
        finish("baseline", train_baseline(encoder, *split, *test, settings, epoch_scale=scale,
                                          backup_dir=run.start("baseline" + label)))
    return results
