"""Whose run a folder holds: one task per folder, no silent overwrite, no litter.

``make_run_dir`` marks every run folder with ``.run.json``
(``{"task": ...}``). A folder that holds a run (that mark, or, for folders written
before it, a ``metrics.json``, ``config.json``, ``.keras`` file or ``backup/``) is
refused unless ``--overwrite`` (the old run's files are removed first, so two
runs never mix) or it is a resume of the same task. A failed run leaves no folder
that holds nothing.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import shutil
import tempfile

from runtime.errors import UserError
from runtime.options import option

RUN_MARK = ".run.json"
# Written by storage.files._atomic and the backup writer: ".<stem>.tmp<pid>[.<ext>]".
_TEMPORARY = re.compile(r"^\..+\.tmp(\d+)(\.[\w.]+)?$")
_LEGACY_SIGNS = ("metrics.json", "config.json", "backup")
# What a run folder may hold and still count as empty: a failed run's mark and its
# architecture, nothing that took time to make.
_NOTHING_MADE = {RUN_MARK, "config.json"}

_created: list = []  # folders this process created; see discard_unfinished()


def task_of(folder: str) -> str | None:
    """The task whose run ``folder`` holds; "an earlier" for an unmarked run; None
    for a missing folder or one that holds no run."""
    if not os.path.isdir(folder):
        return None
    for name in (RUN_MARK, "metrics.json"):
        try:
            with open(os.path.join(folder, name)) as f:
                task = json.load(f).get("task")
            if isinstance(task, str):
                return task
        except (OSError, ValueError, AttributeError):
            pass
    names = os.listdir(folder)
    if any(n in _LEGACY_SIGNS or n.endswith(".keras") for n in names):
        return "an earlier"
    return None


def claim(folder: str, task: str, overwrite: bool = False, resume: bool = False) -> None:
    """Checks that ``task`` may write into ``folder``; with ``overwrite``, removes the
    earlier run (of any task: two are never mixed). Raises UserError naming the
    conflict."""
    previous = task_of(folder)
    if previous is None or (resume and previous == task):
        return
    if not overwrite:
        what = f"an earlier {task}" if previous == task else _a(previous)
        also = "" if previous == task else "; one folder holds one task's run"
        raise UserError(f"--out {folder!r} holds {what} run{also}: give another --out, "
                        f"or --overwrite to delete that run first")
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) \
            else os.remove(path)


def _a(task: str) -> str:
    return task if task.startswith("an ") else f"a {task}"


def mark(folder: str, task: str, created: bool) -> None:
    from storage.files import write_json

    remove_stale_temporaries(folder)
    write_json(os.path.join(folder, RUN_MARK), {"task": task})
    if created:
        _created.append(folder)


def remove_stale_temporaries(folder: str) -> None:
    """Deletes temporary files a killed process left in ``folder`` and its
    ``backup/`` (those of a process still running are kept)."""
    for sub in (folder, os.path.join(folder, "backup")):
        if not os.path.isdir(sub):
            continue
        for name in os.listdir(sub):
            match = _TEMPORARY.match(name)
            if match and not _alive(int(match.group(1))):
                os.remove(os.path.join(sub, name))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a leftover of an earlier process that had this pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def discard_unfinished() -> None:
    """Removes the run folders this process created that hold nothing made yet
    (called when a run fails)."""
    while _created:
        folder = _created.pop()
        try:
            names = set(os.listdir(folder))
        except OSError:
            continue
        if not names - _NOTHING_MADE:
            shutil.rmtree(folder, ignore_errors=True)


def created_runs() -> list:
    return list(_created)


@dataclasses.dataclass
class OutputConfig:
    """Where a task writes its run."""

    out: str | None = option(
        None, metavar="DIR", default_help="runs/{task}/<timestamp>",
        help="run folder for models, metrics and figures")
    overwrite: bool = option(
        False, action="store_true",
        help="let --out name a folder that holds an earlier run: its files are deleted "
             "first (without it such a folder is refused)")


def verbose_option(default: int = 1) -> dataclasses.Field:
    """``--verbose``: how much Keras prints while it trains."""
    return option(default, type=int, choices=(0, 1, 2),
                  help="Keras progress: 0 silent, 1 progress bar, 2 one line per epoch")


def make_run_dir(task: str, out: str | None, overwrite: bool = False,
                 resume: bool = False) -> str:
    """Creates (or, for ``resume`` or ``overwrite``, reuses) the run folder, checks
    it is writable and marks it as ``task``'s (see the module's docstring)."""
    if out is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = base = os.path.join("runs", task, stamp)
        n = 1
        while os.path.exists(out):  # two runs started in the same second
            n += 1
            out = f"{base}-{n}"
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out!r} is a file, not a folder; give a folder path")
    claim(out, task, overwrite=overwrite, resume=resume)
    created = not os.path.exists(out)
    try:
        os.makedirs(out, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as e:
        raise UserError(f"--out {out!r} is not writable ({e.strerror}); "
                        f"give a folder you can write to") from None
    mark(out, task, created)
    return out
