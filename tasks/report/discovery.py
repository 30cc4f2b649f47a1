"""Finds every run under a folder and reads what it left: metrics, config, tables, figures.

A run is any folder holding a ``metrics.json``, at any depth (sub-runs such as
``<run>/cae/metrics.json`` are runs of their own). Each run owns the files in its
folder and in sub-folders that are not runs themselves. Nothing here renders HTML.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re

# Sections appear in the order of the study; tasks not listed follow alphabetically.
TASK_ORDER = ("cae", "tune", "latent", "denoise", "classify", "vae", "gan", "quality")
CSV_MAX_ROWS = 20
_STAMP = re.compile(r"^\d{8}-\d{6}")


@dataclasses.dataclass
class Table:
    """A parsed markdown or CSV table: header cells, body rows, where it came from."""

    source: str
    header: list
    rows: list
    total_rows: int = 0  # rows in the file; more than len(rows) when truncated


@dataclasses.dataclass
class Figure:
    path: str       # relative to the run folder
    caption: str


@dataclasses.dataclass
class Run:
    """Everything one run folder holds that the report shows."""

    path: str                       # the folder
    rel: str                        # relative to the runs dir ("." for the dir itself)
    task: str
    metrics: dict
    config: dict | None = None
    history: dict | None = None
    tables: list = dataclasses.field(default_factory=list)      # Table, from *.md and *.csv
    texts: list = dataclasses.field(default_factory=list)       # (file, markdown prose lines)
    figures: list = dataclasses.field(default_factory=list)     # Figure
    problems: list = dataclasses.field(default_factory=list)    # unreadable files, one line each
    anchor: str = ""                # HTML id, set by the renderer

    @property
    def backend(self) -> str:
        return str(self.metrics.get("backend", "?"))

    @property
    def stamp(self) -> str:
        """The run's name within its task: its path, less a leading task folder."""
        parts = [] if self.rel == "." else self.rel.split(os.sep)
        if parts and parts[0] == self.task and len(parts) > 1:
            parts = parts[1:]
        return "/".join(parts) or os.path.basename(os.path.abspath(self.path))

    @property
    def label(self) -> str:
        """Column heading for comparisons: backend and timestamp (or folder name)."""
        return f"{self.backend} · {self.stamp}"

    @property
    def sort_key(self):
        """Oldest first: by the innermost timestamped folder on the path (a sub-run
        sorts with its parent run), then by path."""
        stamps = [m.group(0) for m in map(_STAMP.match, self.rel.split(os.sep)) if m]
        return (stamps[-1] if stamps else "", self.rel)


def task_sort_key(task: str):
    return (TASK_ORDER.index(task), "") if task in TASK_ORDER else (len(TASK_ORDER), task)


def discover_runs(runs_dir: str) -> list:
    """Every run under ``runs_dir`` (itself included), sorted by task, then time.

    Args:
        runs_dir: folder to search recursively.

    Returns:
        list of ``Run``; empty when no folder holds a ``metrics.json``.
    """
    run_dirs = []
    for folder, dirs, files in os.walk(runs_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if "metrics.json" in files:
            run_dirs.append(folder)
    runs = [read_run(folder, runs_dir, set(run_dirs)) for folder in run_dirs]
    return sorted(runs, key=lambda r: (task_sort_key(r.task), r.sort_key))


def read_run(folder: str, runs_dir: str, all_run_dirs: set) -> Run:
    """Reads one run folder; unreadable files become ``problems``, never exceptions."""
    rel = os.path.relpath(folder, runs_dir)
    problems = []
    metrics = _read_json(os.path.join(folder, "metrics.json"), problems)
    if not isinstance(metrics, dict):
        if metrics is not None:
            problems.append("metrics.json is not a JSON object")
        metrics = {}
    # The task is the "task" key, else the parent folder (runs/<task>/<timestamp>/);
    # a sub-run (<timestamp>/cae/) without the key is named by its own folder.
    parent = os.path.basename(os.path.dirname(os.path.abspath(folder)))
    if _STAMP.match(parent):
        parent = os.path.basename(os.path.abspath(folder))
    task = str(metrics.get("task") or parent or "unknown")
    run = Run(path=folder, rel=rel, task=task, metrics=metrics, problems=problems)

    files = _owned_files(folder, all_run_dirs)
    if "config.json" in files:
        config = _read_json(os.path.join(folder, "config.json"), problems)
        run.config = config if isinstance(config, dict) else None
    if "history.json" in files:
        history = _read_json(os.path.join(folder, "history.json"), problems)
        run.history = history if isinstance(history, dict) else None

    captions = {}
    if "captions.json" in files:
        loaded = _read_json(os.path.join(folder, "captions.json"), problems)
        if isinstance(loaded, dict):
            captions = {str(k): str(v) for k, v in loaded.items()}
        elif loaded is not None:
            problems.append("captions.json is not a JSON object of file name -> caption")

    for name in files:
        full = os.path.join(folder, name)
        lower = name.lower()
        if lower.endswith(".png"):
            caption = captions.get(name) or captions.get(os.path.basename(name)) \
                or caption_from_name(name)
            run.figures.append(Figure(path=name, caption=caption))
        elif lower.endswith(".md"):
            try:
                with open(full, encoding="utf-8") as f:
                    tables, prose = parse_markdown(f.read(), name)
            except (OSError, UnicodeDecodeError) as e:
                problems.append(f"{name}: cannot read ({e})")
                continue
            run.tables.extend(tables)
            if prose:
                run.texts.append((name, prose))
        elif lower.endswith(".csv"):
            try:
                run.tables.append(read_csv(full, name))
            except (OSError, UnicodeDecodeError, csv.Error) as e:
                problems.append(f"{name}: cannot read ({e})")
    return run


def _owned_files(folder: str, all_run_dirs: set) -> list:
    """Files of this run: its folder and sub-folders that are not runs (relative paths)."""
    owned = []
    for sub, dirs, files in os.walk(folder):
        if sub != folder and sub in all_run_dirs:
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = os.path.relpath(sub, folder)
        owned.extend(name if rel == "." else os.path.join(rel, name)
                     for name in sorted(files) if not name.startswith("."))
    return owned


def _read_json(path: str, problems: list):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        problems.append(f"{os.path.basename(path)}: not readable JSON ({e})")
        return None


def caption_from_name(name: str) -> str:
    """``latent/tsne_by_class.png`` -> ``Latent: tsne by class``."""
    folder, base = os.path.split(name)
    words = re.sub(r"[_\-]+", " ", os.path.splitext(base)[0]).strip()
    words = words[:1].upper() + words[1:]
    return f"{folder}: {words}" if folder else words


# ------------------------------------------------------------------ tables

_SEPARATOR = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")


def _cells(line: str) -> list:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    # An escaped pipe (\|) belongs to the cell.
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)]


def parse_markdown(text: str, source: str):
    """Splits markdown into pipe tables and the remaining lines of prose.

    Returns:
        (tables, prose): a list of ``Table`` and a list of non-empty other lines
        (headings keep their ``#``); code fences and everything else stay plain text.
    """
    lines = text.splitlines()
    tables, prose = [], []
    i = 0
    while i < len(lines):
        line = lines[i]
        if ("|" in line and i + 1 < len(lines) and _SEPARATOR.match(lines[i + 1])):
            header = _cells(line)
            rows = []
            i += 2
            while i < len(lines) and "|" in lines[i] and lines[i].strip():
                row = _cells(lines[i])
                rows.append((row + [""] * len(header))[:len(header)])
                i += 1
            tables.append(Table(source=source, header=header, rows=rows, total_rows=len(rows)))
            continue
        if line.strip():
            prose.append(line.rstrip())
        i += 1
    return tables, prose


def read_csv(path: str, source: str, max_rows: int = CSV_MAX_ROWS) -> Table:
    """The first ``max_rows`` rows of a CSV file with a header line."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        rows, total = [], 0
        for row in reader:
            total += 1
            if len(rows) < max_rows:
                rows.append(row)
    return Table(source=source, header=header, rows=rows, total_rows=total)
