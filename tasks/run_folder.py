"""Whose run a folder holds: one task per folder, no silent overwrite, no litter.

``make_run_dir`` (tasks/common.py) marks every run folder with ``.run.json``
(``{"task": ...}``). A folder that holds a run (that mark, or, for folders written
before it, a ``metrics.json``, ``config.json``, ``.keras`` file or ``backup/``) is
refused unless ``--overwrite`` (the old run's files are removed first, so two
runs never mix) or it is a resume of the same task. A failed run leaves no folder
that holds nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil

from tasks.errors import UserError

RUN_MARK = ".run.json"
# Written by tasks.common._atomic and the backup writer: ".<stem>.tmp<pid>[.<ext>]".
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
    from tasks.common import write_json

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
