"""Whose run a folder holds, and which of its files the toolkit wrote.

``make_run_dir`` marks every run folder with ``.run.json``::

    {"task": "cae", "files": [...], "folders": [...], "runs": [...]}

``files`` lists (relative to the folder) every file the toolkit wrote there
through its writers (``storage.files``: JSON, text, figures, models); ``folders``
the folders it handed whole to a writer it does not control (the training
backup, KerasTuner's state, TensorBoard logs, ``tune``'s worker logs); ``runs``
the run folders made inside it (``all``'s steps). Each path is recorded, under a
lock, in the marker of the nearest marked folder above it *before* it is written,
so a kill never leaves a written file unlisted. When a task ends well, each folder
listed whole is *sealed*: replaced in ``files`` by the files and sub-folders then
in it, so a note a user puts there afterwards is not taken for the toolkit's.

A folder that holds a run is refused unless ``--overwrite`` or a resume of the
same task. ``--overwrite`` deletes only what the marker lists (and the empty
sub-folders left by that), keeps everything else (a user's notes, a folder of
their own) and says so in one line. A folder without a marker is never emptied:
a non-empty one is refused, as is a run written before markers listed their
files. A failed run removes only the folder it created and the files it wrote
there, and only while nothing else is in it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import re
import shutil
import tempfile

from cli.errors import UserError
from cli.options import option

RUN_MARK = ".run.json"
KINDS = ("files", "folders", "runs")  # the marker's lists; see the module's docstring
# Written by storage.files._atomic and the backup writer: ".<stem>.tmp<pid>[.<ext>]".
_TEMPORARY = re.compile(r"^\..+\.tmp(\d+)(\.[\w.]+)?$")
_LEGACY_SIGNS = ("metrics.json", "config.json", "backup")
# What a run folder may hold and still count as empty: a failed run's mark and its
# architecture, nothing that took time to make.
_NOTHING_MADE = {RUN_MARK, "config.json"}
_LEVELS = 4  # how far above a written file its run folder may be

_created: list = []  # (folder, made by this process) marked fresh; see discard_unfinished()
_written_here: set = set()  # absolute paths this process recorded (and then wrote)
_markers: dict = {}  # run folder -> its marker as this process last read or wrote it
_marked: list = []  # every run folder this process marked (fresh or resumed); see seal_marked()


# ------------------------------------------------------------------ the marker


def read_marker(folder: str) -> dict | None:
    """The marker of ``folder``, or None where it has none (or an unreadable one)."""
    try:
        with open(os.path.join(folder, RUN_MARK)) as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _lists_files(marker: dict | None) -> bool:
    """Whether ``marker`` lists what its run wrote (markers before that held the task only)."""
    return marker is not None and all(isinstance(marker.get(k), list) for k in KINDS)


def _write_marker(folder: str, marker: dict) -> None:
    from storage.files import write_json

    write_json(os.path.join(folder, RUN_MARK), marker)
    _markers[os.path.abspath(folder)] = marker


@contextlib.contextmanager
def _locked(folder: str):
    """An exclusive lock on ``folder`` (``flock`` on the folder itself): the
    chief and a launcher of ``tune`` record into the same marker."""
    try:
        import fcntl
        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        yield  # no flock here: one process per folder is the common case anyway
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _enclosing_run(path: str) -> str | None:
    """The nearest folder above ``path`` that carries a marker, within
    :data:`_LEVELS` folders (the deepest the toolkit writes: a classify step of
    ``all``, its CAE, that CAE's backup), or None."""
    folder = os.path.dirname(os.path.abspath(path))
    for _ in range(_LEVELS):
        if os.path.isfile(os.path.join(folder, RUN_MARK)):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent
    return None


def _covered(marker: dict, rel: str, kind: str) -> bool:
    """Whether ``rel`` is listed already, or lies inside a folder or run listed whole."""
    if rel in marker.get(kind, ()):
        return True
    return any(rel.startswith(f + os.sep) for k in ("folders", "runs")
               for f in marker.get(k, ()))


def record(path: str, kind: str = "files") -> None:
    """Lists ``path`` (about to be written) in the marker of the run folder that
    holds it, as one of ``kind`` (see :data:`KINDS`); nothing outside a run folder.

    ``storage.files`` records every file it writes; call it for a folder before
    handing it to a writer that is not the toolkit's (KerasTuner, TensorBoard).
    """
    if os.path.basename(path) == RUN_MARK:
        return
    absolute = os.path.abspath(path)
    run = _enclosing_run(absolute)
    if run is None:
        return
    _written_here.add(absolute)
    rel = os.path.relpath(absolute, run)
    known = _markers.get(run)
    if known is not None and _covered(known, rel, kind):
        return
    with _locked(run):
        marker = read_marker(run)
        if marker is None:
            return
        for k in KINDS:
            marker.setdefault(k, [])
        if not _covered(marker, rel, kind):
            marker[kind].append(rel)
            _write_marker(run, marker)
        _markers[run] = marker


# --------------------------------------------------------- claiming a folder


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
    """Checks that ``task`` may write into ``folder``; with ``overwrite``, removes
    what the earlier run (of any task: two are never mixed) wrote there. Raises
    UserError naming the conflict."""
    previous = task_of(folder)
    if previous is None:
        others = _entries(folder)
        if others:
            also = (" (--overwrite deletes only files a run of this toolkit wrote)"
                    if overwrite else "")
            raise UserError(f"--out {folder!r} is a folder this toolkit did not make (no "
                            f"{RUN_MARK}) and holds {_names(others)}; give a new or empty "
                            f"folder{also}")
        return
    if resume and previous == task:
        return
    marker = read_marker(folder)
    listed = _lists_files(marker)
    if not overwrite or not listed:
        what = f"an earlier {task}" if previous == task else _a(previous)
        also = "" if previous in (task, "an earlier") else "; one folder holds one task's run"
        if listed:
            hint = "give another --out, or --overwrite to delete that run first"
        else:
            why = (f"it was written before run folders listed their files in {RUN_MARK}"
                   if marker else f"it has no {RUN_MARK} (a run of an older version, or "
                                  f"a folder of your own)")
            hint = (f"give another --out; {why}, so --overwrite cannot tell its files "
                    f"from anyone else's")
        raise UserError(f"--out {folder!r} holds {what} run{also}: {hint}")
    kept = remove_written(folder)
    if kept:
        print(f"--overwrite kept what no run of this toolkit wrote in {folder}: "
              f"{_names(kept)}", flush=True)


def _a(task: str) -> str:
    return task if task.startswith("an ") else f"a {task}"


def _entries(folder: str) -> list:
    """The names in ``folder`` besides the toolkit's temporary files."""
    if not os.path.isdir(folder):
        return []
    return sorted(n for n in os.listdir(folder)
                  if not _TEMPORARY.match(n) and not n.startswith(".write-test-"))


def _names(names: list, most: int = 3) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _inside(folder: str, rel) -> str | None:
    """``folder/rel`` where ``rel`` is a plain relative path that stays inside
    ``folder`` (no ``..``, no absolute path, no link on the way out); else None."""
    if not isinstance(rel, str) or not rel or os.path.isabs(rel):
        return None
    rel = os.path.normpath(rel)
    if rel == "." or rel.startswith(os.pardir):
        return None
    path = os.path.join(folder, rel)
    parent = os.path.realpath(os.path.dirname(path))
    root = os.path.realpath(folder)
    if parent != root and not parent.startswith(root + os.sep):
        return None
    return path


def remove_written(folder: str) -> list:
    """Deletes what the marker of ``folder`` lists (nested runs by their own
    markers), the toolkit's stale temporary files and the sub-folders that this
    leaves empty; returns the names of what is left besides the marker."""
    marker = read_marker(folder) or {}
    parents = set()
    for rel in marker.get("runs", []):
        path = _inside(folder, rel)
        if path and os.path.isdir(path) and not os.path.islink(path) \
                and _lists_files(read_marker(path)):
            remove_written(path)
            with contextlib.suppress(OSError):
                os.remove(os.path.join(path, RUN_MARK))
            parents.add(path)
    for rel in marker.get("folders", []):
        path = _inside(folder, rel)
        if path and os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif path and os.path.lexists(path) and not os.path.isdir(path):
            os.remove(path)
        if path:
            parents.add(os.path.dirname(path))
    for rel in marker.get("files", []):
        path = _inside(folder, rel)
        if path and os.path.isdir(path) and not os.path.islink(path):
            parents.add(path)  # a sealed folder's sub-folder: removed if left empty
        elif path and os.path.lexists(path):
            os.remove(path)
        if path:
            parents.add(os.path.dirname(path))
    remove_stale_temporaries(folder)
    _remove_empty_folders(folder, parents)
    _markers.pop(os.path.abspath(folder), None)
    return [n for n in _entries(folder) if n != RUN_MARK]


def remove_written_folder(path: str, strict: bool = True) -> None:
    """Deletes the folder ``path`` (a training backup, a trial's logs) if the
    toolkit wrote it: its run folder's marker lists it, a folder above it, or
    every file in it; then unlists it, so a folder a user puts there later is
    not taken for the toolkit's. Anything else there raises UserError naming it
    (``strict``) or is left as it is: nothing the toolkit did not write is
    deleted."""
    if not os.path.isdir(path) or os.path.islink(path):
        if strict and os.path.lexists(path):
            raise UserError(f"{path!r} is in the way of a folder this toolkit writes and "
                            f"was not written by it; move it away or give another --out")
        return
    run = _enclosing_run(path)
    marker = read_marker(run) if run else None
    if marker is not None:
        rel = os.path.relpath(os.path.abspath(path), run)
        if _covered(marker, rel, "folders") or _all_files_listed(path, run, marker):
            shutil.rmtree(path)
            _unlist(run, rel)
            return
    if strict:
        raise UserError(f"{path!r} holds files this toolkit did not write; move them away "
                        f"or give another --out")


def seal(folder: str, only: set | None = None) -> None:
    """Replaces each folder that the marker of the run ``folder`` lists whole (or
    those of them named in ``only``) by what it holds now: its files and
    sub-folders, under ``files``. Called when the task that handed it to another
    writer (KerasTuner, TensorBoard, Keras's export) is done with it; from then on
    --overwrite deletes those and keeps anything added later. A task killed before
    it ends leaves the folder listed whole."""
    with _locked(folder):
        marker = read_marker(folder)
        if not _lists_files(marker) or not marker["folders"]:
            return
        found, kept = [], []
        for rel in marker["folders"]:
            if only is not None and rel not in only:
                kept.append(rel)
                continue
            path = _inside(folder, rel)
            if not path or not os.path.lexists(path):
                continue  # gone already, or never made: nothing of it to list
            if os.path.islink(path) or not os.path.isdir(path):
                found.append(rel)
                continue
            for root, dirs, names in os.walk(path):
                found += [os.path.relpath(os.path.join(root, n), folder)
                          for n in sorted(dirs) + sorted(names)]
        marker["folders"] = kept
        listed = set(marker["files"])  # a set: a search's logs can hold thousands of files
        runs = tuple(r + os.sep for r in marker["runs"])  # they list their own files
        marker["files"] += [r for r in found if r not in listed and not r.startswith(runs)]
        _write_marker(folder, marker)


def seal_written(path: str) -> None:
    """Seals (see :func:`seal`) the one folder ``path``, written whole by another
    writer and complete now, in the marker of the run folder that holds it, if any."""
    absolute = os.path.abspath(path)
    run = _enclosing_run(absolute)
    if run is not None:
        seal(run, only={os.path.relpath(absolute, run)})


def seal_marked() -> None:
    """Seals (see :func:`seal`) every run folder this process marked: called once a
    task has ended well."""
    while _marked:
        seal(_marked.pop())


def _unlist(run: str, rel: str) -> None:
    """Takes ``rel`` (a folder just deleted) and what lay in it off ``run``'s marker."""
    with _locked(run):
        marker = read_marker(run)
        if marker is None:
            return
        inside = rel + os.sep
        for kind in ("files", "folders"):
            marker[kind] = [r for r in marker.get(kind, [])
                            if r != rel and not r.startswith(inside)]
        _write_marker(run, marker)


def _all_files_listed(path: str, run: str, marker: dict) -> bool:
    """Whether every file under ``path`` is one the marker of ``run`` lists
    (an empty folder: yes)."""
    for root, _, names in os.walk(path):
        for name in names:
            rel = os.path.relpath(os.path.join(root, name), run)
            if not (_covered(marker, rel, "files") or _TEMPORARY.match(name)):
                return False
    return True


def _remove_empty_folders(folder: str, candidates: set) -> None:
    """Removes each candidate folder below ``folder`` (and its parents below
    ``folder``) that is empty, deepest first."""
    root = os.path.abspath(folder)
    chain = set()
    for path in candidates:
        path = os.path.abspath(path)
        while path.startswith(root + os.sep):
            chain.add(path)
            path = os.path.dirname(path)
    for path in sorted(chain, key=len, reverse=True):
        if os.path.isdir(path) and not os.path.islink(path):
            with contextlib.suppress(OSError):
                os.rmdir(path)  # only an empty folder goes


def mark(folder: str, task: str, created: bool, fresh: bool = True) -> None:
    """Writes ``folder``'s marker for ``task``: an empty listing when ``fresh``,
    else (a resumed run) the earlier listing kept; ``created``: this process
    made the folder."""
    remove_stale_temporaries(folder)
    with _locked(folder):
        marker = None if fresh else read_marker(folder)
        if marker is None:
            marker = {}
        marker["task"] = task
        for k in KINDS:
            marker.setdefault(k, [])
        _write_marker(folder, marker)
    _marked.append(folder)
    if fresh:
        _created.append((folder, created))


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
    """Undoes the run folders this process marked afresh that hold nothing made
    yet (called when a run fails): removes the files this process wrote there and
    the marker, then the folder if this process created it and nothing else is
    left in it. None of this process's runs is sealed (see :func:`seal`)."""
    _marked.clear()
    while _created:
        folder, made = _created.pop()
        try:
            names = set(os.listdir(folder))
        except OSError:
            continue
        if names - _NOTHING_MADE:
            continue
        for name in names - {RUN_MARK}:
            path = os.path.abspath(os.path.join(folder, name))
            if path in _written_here and os.path.isfile(path):
                os.remove(path)
        with contextlib.suppress(OSError):
            os.remove(os.path.join(folder, RUN_MARK))
            if made:
                os.rmdir(folder)
        _markers.pop(os.path.abspath(folder), None)


def created_runs() -> list:
    """The run folders this process marked afresh (for the Ctrl-C message)."""
    return [folder for folder, _ in _created]


@dataclasses.dataclass
class OutputConfig:
    """Where a task writes its run."""

    out: str | None = option(
        None, metavar="DIR", default_help="runs/{task}/<timestamp>",
        help="run folder for models, metrics and figures")
    overwrite: bool = option(
        False, action="store_true",
        help="let --out name a folder that holds an earlier run: the files that run "
             "wrote are deleted first, anything else in the folder is kept (without "
             "it such a folder is refused)")


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
    previous = task_of(out)
    claim(out, task, overwrite=overwrite, resume=resume)
    kept = resume and previous == task
    created = not os.path.exists(out)
    try:
        if created:
            record(out, "runs")  # a run inside a run (all's steps): listed there first
        os.makedirs(out, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as e:
        raise UserError(f"--out {out!r} is not writable ({e.strerror}); "
                        f"give a folder you can write to") from None
    mark(out, task, created, fresh=not kept)
    return out
