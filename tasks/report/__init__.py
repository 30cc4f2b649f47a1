"""``main.py report``: one self-contained HTML page with every run under a folder."""

from __future__ import annotations

import argparse
import dataclasses
import os

from cli.options import add_config, from_args, option

HELP = "one self-contained HTML page (figures inline) with every run under a folder"


@dataclasses.dataclass
class ReportConfig:
    """Which runs go into the page, and where it is written."""

    runs_dir: str = option(
        metavar="RUNS_DIR", positional=True,
        help="folder to search, recursively, for run folders (any folder holding a "
             "metrics.json), e.g. runs")
    out: str | None = option(
        None, metavar="FILE", default_help="RUNS_DIR/report.html",
        help="where to write the page")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser, ReportConfig, task="report")


def build_report(runs_dir: str, out: str | None = None) -> str:
    """Finds every run under ``runs_dir`` and writes the report; returns its path.

    Raises:
        UserError: ``runs_dir`` is not a folder, holds no run, or ``out`` is not writable.
    """
    from cli.errors import UserError
    from storage.files import write_text
    from tasks.report.discovery import discover_runs
    from tasks.report.html import render_report

    if not os.path.isdir(runs_dir):
        raise UserError(f"runs dir {runs_dir!r} is not a folder; give the folder the tasks "
                        f"wrote into, e.g. runs")
    runs = discover_runs(runs_dir)
    if not runs:
        raise UserError(f"runs dir {runs_dir!r} holds no run (no metrics.json at any depth); "
                        f"give a folder with run folders, e.g. runs")
    out = out or os.path.join(runs_dir, "report.html")
    if os.path.isdir(out):
        raise UserError(f"--out {out!r} is a folder; give a file path such as report.html")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise UserError(f"--out {out!r}: folder {os.path.dirname(out) or '.'!r} does not "
                        f"exist; give a path in an existing folder")
    try:
        write_text(out, render_report(runs, runs_dir))
    except OSError as e:
        raise UserError(f"--out {out!r} is not writable ({e.strerror}); "
                        f"give a file path you can write to") from None
    tasks = sorted({r.task for r in runs})
    print(f"{len(runs)} run{'s' * (len(runs) != 1)} in {len(tasks)} "
          f"task{'s' * (len(tasks) != 1)} ({', '.join(tasks)})", flush=True)
    return out


CONFIG = ReportConfig


def run(args) -> str:
    config = from_args(ReportConfig, args)
    return build_report(config.runs_dir, config.out)
