"""A finished (or interrupted) search as files: best hyperparameters (JSON), a
table of every trial (CSV) and two figures.

Everything is read from the oracle's trials, so the chief of a distributed
search lists the trials its workers ran.
"""

from __future__ import annotations

import csv
import io
import math
import os

import numpy as np

from storage.files import save_figure, write_json, write_text

#: Hyperband's bookkeeping values, shown as two columns of their own.
_HYPERBAND = {"tuner/epochs": "budget_epochs", "tuner/trial_id": "continues_trial"}


def trial_rows(oracle, hp_names: list) -> list:
    """One dict per trial, in trial-id order.

    Keys: ``trial_id``, ``status``, the hyperparameters ``hp_names``,
    ``objective``, ``objective_std`` (spread over folds), ``folds``,
    ``epochs`` (mean epochs per fold), ``seconds``, ``budget_epochs`` and
    ``continues_trial`` (Hyperband only, else empty).
    """
    name = oracle.objective.name
    rows = []
    for trial_id in sorted(oracle.trials):
        trial = oracle.trials[trial_id]
        values = trial.hyperparameters.values

        def metric(key):
            m = trial.metrics
            return float(m.get_last_value(key)) if m.exists(key) else None

        row = {"trial_id": trial_id, "status": trial.status}
        row.update({h: values.get(h) for h in hp_names})
        row.update({"objective": metric(name), "objective_std": metric(f"{name}_std"),
                    "folds": metric("folds"), "epochs": metric("epochs"),
                    "seconds": metric("seconds")})
        row.update({col: values.get(key, "") for key, col in _HYPERBAND.items()})
        if row["folds"] is not None:
            row["folds"] = int(row["folds"])
        rows.append(row)
    return rows


def tunable_names(hyperparameters) -> list:
    return [p.name for p in hyperparameters.space if not p.name.startswith("tuner/")]


def write_trials_csv(rows: list, path: str) -> str:
    if not rows:
        return write_text(path, "")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return write_text(path, buf.getvalue())


def best_row(rows: list, direction: str = "min"):
    done = [r for r in rows if r["status"] == "COMPLETED" and r["objective"] is not None
            and math.isfinite(r["objective"])]
    pick = min if direction == "min" else max
    return pick(done, key=lambda r: r["objective"]) if done else None


def write_best(row: dict, hp_names: list, objective: str, path: str) -> str:
    return write_json(path, {
        "trial_id": row["trial_id"],
        objective: row["objective"],
        f"{objective}_std": row["objective_std"],
        "folds": row["folds"],
        "hyperparameters": {h: row[h] for h in hp_names},
    })


def _completed(rows):
    return [r for r in rows if r["status"] == "COMPLETED" and r["objective"] is not None]


def plot_objective_per_trial(rows: list, path: str, title: str, ylabel: str,
                             direction: str = "min") -> str:
    """Objective of each trial (with its fold spread) and the best so far."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = _completed(rows)
    fig, ax = plt.subplots(figsize=(7, 4))
    if done:
        x = np.arange(1, len(done) + 1)
        y = np.array([r["objective"] for r in done])
        err = np.array([r["objective_std"] or 0.0 for r in done])
        ax.errorbar(x, y, yerr=err if err.any() else None, fmt="o", ms=5, capsize=3,
                    label="trial (± fold std)" if err.any() else "trial")
        best_so_far = (np.minimum if direction == "min" else np.maximum).accumulate(y)
        ax.step(x, best_so_far, where="post", color="C3", lw=2,
                label="best so far")
        ax.set_xticks(x)
        ax.set_xticklabels([r["trial_id"] for r in done], rotation=90, fontsize=7)
        if (y > 0).all():  # KID can be negative
            ax.set_yscale("log")
        ax.legend()
    ax.set_xlabel("trial id (in order)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_hparams_vs_objective(rows: list, hp_names: list, path: str, title: str,
                              ylabel: str, direction: str = "min") -> str:
    """One panel per hyperparameter: its value in each trial against the objective."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = _completed(rows)
    n_cols = 4
    n_rows = max(1, math.ceil(len(hp_names) / n_cols))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.2 * n_cols, 2.8 * n_rows),
                             squeeze=False, sharey=True)
    y = np.array([r["objective"] for r in done])
    best = None if not len(y) else int(np.argmin(y) if direction == "min" else np.argmax(y))
    for ax, name in zip(axes.flat, hp_names):
        values = [r[name] for r in done]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric and len(set(values)) > 4:
            xs = np.array(values, dtype=float)
            if xs.min() > 0 and xs.max() / xs.min() > 20:
                ax.set_xscale("log")
        else:  # categorical: one column per distinct value, in sorted order
            levels = sorted(set(values), key=lambda v: (str(type(v)), v))
            xs = np.array([levels.index(v) for v in values], dtype=float)
            ax.set_xticks(range(len(levels)))
            ax.set_xticklabels([str(v) for v in levels], fontsize=8)
            ax.set_xlim(-0.5, len(levels) - 0.5)
        ax.scatter(xs, y, s=18, alpha=0.8, label="trial")
        if best is not None:
            ax.scatter([xs[best]], [y[best]], s=60, marker="*", color="C3", label="best")
        ax.set_xlabel(name)
        if len(y) and (y > 0).all():  # KID can be negative
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    for ax in list(axes.flat)[len(hp_names):]:
        ax.axis("off")
    if best is not None:
        axes[0, 0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def write_all(oracle, out: str, title: str) -> tuple:
    """Writes trials.csv, best_hyperparameters.json, trials.png, hyperparameters.png.

    Returns:
        (rows, best_row or None)
    """
    objective = oracle.objective.name
    hp_names = tunable_names(oracle.get_space())
    rows = trial_rows(oracle, hp_names)
    write_trials_csv(rows, os.path.join(out, "trials.csv"))
    direction = oracle.objective.direction
    best = best_row(rows, direction)
    if best is not None:
        write_best(best, hp_names, objective, os.path.join(out, "best_hyperparameters.json"))
    ylabel = f"{objective} ({'lower' if direction == 'min' else 'higher'} is better)"
    plot_objective_per_trial(rows, os.path.join(out, "trials.png"),
                             f"{title}: objective per trial", ylabel, direction)
    plot_hparams_vs_objective(rows, hp_names, os.path.join(out, "hyperparameters.png"),
                              f"{title}: each hyperparameter against {objective}", ylabel,
                              direction)
    return rows, best
