"""What every resumable training shares: its backup is started (or continued)
before ``fit`` and checked after it (see :mod:`storage.training_backup`)."""

from __future__ import annotations

import math
import os


def start_backup(model, feed, out: str, resume: bool, epochs: int, settings: dict,
                 watched=(), backup_dir: str | None = None):
    """The :class:`storage.training_backup.TrainingBackup` of a run in ``out``
    (in ``backup_dir``, default ``out/backup``), restored into ``model``
    (compiled) when ``resume`` finds a saved epoch.

    Without ``resume`` a backup an earlier run left is removed. With it, a run
    stopped before its first epoch was saved trains from the start; a backup of
    other ``settings`` is refused in one line. Give ``fit`` the backup's
    ``initial_epoch``, and skip ``fit`` when it is ``finished``.
    """
    from storage.run_folder import remove_written_folder
    from storage.training_backup import TrainingBackup, check_same_settings

    backup_dir = backup_dir or os.path.join(out, "backup")
    if not resume:
        remove_written_folder(backup_dir)  # stale state of another run
    backup = TrainingBackup(backup_dir, feed, watched=watched, settings=settings)
    if resume:
        check_same_settings(backup_dir, settings)
    backup.initial_epoch = backup.restore(model) if resume else 0
    if backup.stopped:
        backup.initial_epoch = epochs  # early stopping had ended it: train no further epoch
    if backup.finished:
        backup.on_train_begin()  # fit will not run: the callbacks' states are restored now
    if backup.initial_epoch:
        print(f"resuming from {backup_dir}: " + (
            "training had finished, writing its files" if backup.finished
            else f"epoch {backup.initial_epoch} of {epochs} done"), flush=True)
    return backup


def end_backup(backup, seconds: float, lr: float) -> dict:
    """Adds ``fit``'s ``seconds`` to the run's wall time and returns the whole
    history (every epoch, the resumed ones too). A history that diverged is one
    line (``UserError``) and leaves no backup: nothing worth resuming."""
    from cli.errors import check_losses_finite

    backup.add_wall_time(seconds)
    hist = backup.history
    if any(not math.isfinite(v) for k, vals in hist.items() if "loss" in k for v in vals):
        backup.discard()
    check_losses_finite(hist, f"try a lower --lr than {lr:g}")
    return hist


def run_folder(task: str, out: str | None, resume: bool, overwrite: bool) -> str:
    """The run folder of a resumable training, made by
    :func:`storage.run_folder.make_run_dir`.

    With ``resume``: ``out``, an existing folder (``--resume`` needs ``--out``)
    that must not hold a finished run; without a saved epoch there, training starts from the
    beginning (one line says so). Without ``resume``, a folder where a run of
    ``task`` stopped before it saved an epoch is trained in again from the start
    (one line says so): nothing there took time to make.
    """
    from storage.run_folder import make_run_dir, task_of
    from storage.training_backup import (check_not_finished, has_backup, never_saved,
                                         resume_folder)

    if resume:
        out = resume_folder(task, out)
        check_not_finished(task, out)
        if not has_backup(os.path.join(out, "backup")):
            print(f"{out} holds no saved epoch of a {task} run: training from the start",
                  flush=True)
    elif not overwrite and out is not None and task_of(out) == task and never_saved(out):
        print(f"{out} holds a {task} run stopped before it saved an epoch: training there "
              f"from the start", flush=True)
        resume = True  # the folder is this task's to reuse
    return make_run_dir(task, out, overwrite=overwrite, resume=resume)
