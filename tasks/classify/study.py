"""The semi-supervised classifier as a phase of ``classify``, and the label-efficiency
study: every model at each label count and fraction, over several seeds of the
labelled subset (the same seeded, class-balanced subsets for every model), as the
mean and standard deviation of the test accuracy."""

from __future__ import annotations

import dataclasses
import os
import time

#: The file of the semi-supervised classifier trained on all labels.
SAVED = "classifier_semi_supervised.keras"


def check_label_counts(counts: list, labels) -> list:
    """The label counts the study can draw, checked before any training: a count
    below the classes is refused; one of all the training labels or more is the run
    on all labels, so it is left out with one note line.

    Raises:
        UserError: a count below the number of classes.
    """
    import numpy as np

    from cli.errors import UserError

    classes = len(np.unique(labels))
    kept = []
    for count in counts:
        if count < classes:
            raise UserError(f"--label-counts {count}: fewer labels than the {classes} classes; "
                            f"give at least {classes} (one of each class)")
        if count >= len(labels):
            print(f"note: --label-counts {count}: the training split has {len(labels)} "
                  f"labels; the study's point on all of them stands for it", flush=True)
        else:
            kept.append(count)
    return kept


def train_semi(run, encoder, split: tuple, x_unlabelled, test: tuple, settings, semi,
               label: str = "", save_to: str | None = None) -> dict:
    """The semi-supervised classifier of one labelled subset as the phase
    ``semi_supervised<label>`` of ``run`` (reused on ``--resume`` once finished).

    Args:
        split: ``(x, y, x_val, y_val)`` of the labelled subset.
        x_unlabelled: the images used without labels (all training images).
        test: ``(x_test, y_test)``.
        semi: its :class:`training.semi_supervised_config.SemiSupervisedSettings`.
        save_to: write the classifier there (:data:`SAVED`).

    Returns:
        The phase's record, without the model.
    """
    import numpy as np

    from models.saving import save_model
    from training.semi_supervised import train_semi_supervised

    name = "semi_supervised" + label
    if run.finished(name):
        record = run.record(name)
        record["predictions"] = np.asarray(record["predictions"])
        print(f"reusing the finished semi-supervised classifier{' ' + label if label else ''}",
              flush=True)
        return record
    x, y, x_val, y_val = split
    record = train_semi_supervised(encoder, x, y, x_unlabelled, x_val, y_val, *test, settings,
                                   semi, backup_dir=run.start(name))
    if save_to is not None:
        save_model(record["model"], os.path.join(save_to, SAVED))
    record = {k: v for k, v in record.items() if k != "model"}
    run.finish(name, record)
    return record


def _points(counts: list, fractions: list, n_train: int) -> list:
    """``(labels, fraction, kind, value)`` of every study point, fewest labels first."""
    import math

    points = {}
    for count in counts:
        points[count] = (count, count / n_train, "count", count)
    for frac in fractions:
        # As data.label_subsets.class_balanced_subset rounds, near enough to order them.
        n = n_train if frac == 1.0 else max(1, math.floor(frac * n_train + 0.5))
        points.setdefault(n, (n, frac, "fraction", frac))
    return [points[n] for n in sorted(points)]


def _subset(data, kind: str, value, seed: int) -> tuple:
    """``(x, y, x_val, y_val)``: a class-balanced subset of the training labels and
    a validation subset as scarce (the same fraction of the validation split)."""
    from data.label_subsets import class_balanced_count, class_balanced_subset

    if kind == "count":
        idx = class_balanced_count(data.y_train, value, seed)
        frac = value / len(data.y_train)
    else:
        idx = class_balanced_subset(data.y_train, value, seed)
        frac = value
    val = class_balanced_subset(data.y_val, frac, seed)
    return data.x_train[idx], data.y_train[idx], data.x_val[val], data.y_val[val]


def _summary(runs: list, models: tuple, n: int, frac: float) -> dict:
    """One study row: each model's mean test accuracy, its standard deviation over
    the seeds (None with one), every run's accuracy, mean epochs and seconds."""
    import numpy as np

    row = {"labels": int(n), "fraction": float(frac), "seeds": len(runs)}
    for key in models:
        acc = np.array([r[key]["test_accuracy"] for r in runs])
        row[key] = float(acc.mean())
        row[f"{key}_std"] = float(acc.std(ddof=1)) if len(acc) > 1 else None
        row[f"{key}_runs"] = [float(a) for a in acc]
        row[f"{key}_epochs"] = float(np.mean([r[key]["epochs"] for r in runs]))
        row[f"{key}_seconds"] = float(np.mean([r[key]["wall_time_s"] for r in runs]))
    return row


def label_efficiency(config, data, encoder, settings, full: dict, run, models: tuple,
                     counts: list) -> list:
    """Test accuracy of ``models`` at each of ``counts`` (checked by
    :func:`check_label_counts`) and ``config.label_fractions``, ``config.label_seeds``
    seeded subsets each (all labels: the one run in ``full``)."""
    from tasks.classify.phases import suffix, train_three

    rows = []
    for n, frac, kind, value in _points(counts, config.label_fractions, len(data.y_train)):
        start = time.perf_counter()
        if kind == "fraction" and value == 1.0:
            runs = [full]
        else:
            n = None  # the subset's own size (a fraction is rounded per class)
            runs = []
            for k in range(config.label_seeds):
                seed = settings.seed + k
                subset_settings = dataclasses.replace(settings, seed=seed)
                split = _subset(data, kind, value, seed)
                n = len(split[1])
                label = (suffix(frac) if kind == "fraction" else f"@{value}labels") \
                    + (f"-seed{k}" if k else "")
                results = train_three(run, encoder, split, (data.x_test, data.y_test),
                                      subset_settings, fraction=frac, label=label)
                if "semi_supervised" in models:
                    results["semi_supervised"] = train_semi(
                        run, encoder, split, data.x_train, (data.x_test, data.y_test),
                        subset_settings, config.semi, label=label)
                runs.append(results)
        row = _summary(runs, models, n, frac)
        rows.append(row)
        print(f"labels {row['labels']} ({100 * frac:.3g}%, {len(runs)} seed(s)): " + ", ".join(
            f"{k} {100 * row[k]:.2f}%" + (f" ± {100 * row[k + '_std']:.2f}"
                                          if row[k + "_std"] is not None else "")
            for k in models) + f" [{time.perf_counter() - start:.0f} s]", flush=True)
    return rows


def tables(rows: list, models: tuple, labels: dict) -> str:
    """label_efficiency.md: accuracy (mean ± standard deviation over the seeds) and
    training seconds (mean per seed) of each model at each point."""
    def table(header, body):
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in body]) + "\n"

    def accuracy(row, key):
        std = row[f"{key}_std"]
        return f"{100 * row[key]:.2f}%" + ("" if std is None else f" ± {100 * std:.2f}")

    head = ["labels", "fraction", "seeds"]
    acc = table(head + [labels[k] for k in models],
                [[f"{r['labels']:,}", f"{100 * r['fraction']:.3g}%", r["seeds"],
                  *[accuracy(r, k) for k in models]] for r in rows])
    secs = table(head + [labels[k] for k in models],
                 [[f"{r['labels']:,}", f"{100 * r['fraction']:.3g}%", r["seeds"],
                   *[f"{r[k + '_seconds']:.0f}" for k in models]] for r in rows])
    return ("## Test accuracy (mean ± standard deviation over the seeds of the labelled "
            "subset)\n\n" + acc + "\n## Training time (seconds of one run, mean over the "
            "seeds)\n\n" + secs)
