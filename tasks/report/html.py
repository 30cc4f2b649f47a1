"""Renders discovered runs as one self-contained HTML page (no scripts, figures inline).

Every piece of text from a run folder goes through ``html.escape``: run folders are
data, and a caption or a metric name must never become markup.
"""

from __future__ import annotations

import base64
import datetime
import html
import itertools
import math
import os
import re

from tasks.report.discovery import Run, Table, task_sort_key

LIST_PREVIEW = 20   # longer lists of numbers are cut to this many items

CSS = """
:root { --ink:#1d2330; --muted:#5c6578; --line:#d8dde6; --band:#f4f6fa; --accent:#2458b3; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color:var(--ink); background:#fff; }
header { background:#1d2330; color:#fff; padding:18px 32px; }
header h1 { margin:0 0 4px; font-size:24px; }
header p { margin:0; color:#c9d1e0; }
header code { color:#fff; }
main { max-width:1280px; margin:0 auto; padding:8px 32px 48px; }
nav.toc { background:var(--band); border:1px solid var(--line); border-radius:6px;
          padding:8px 20px; margin:16px 0; }
nav.toc h2 { margin:6px 0; font-size:17px; border:0; }
nav.toc ul { margin:4px 0; padding-left:20px; }
nav.toc li { margin:1px 0; }
a { color:var(--accent); text-decoration:none; } a:hover { text-decoration:underline; }
h2 { font-size:22px; border-bottom:2px solid var(--ink); padding-bottom:4px; margin-top:36px; }
h3 { font-size:18px; margin:28px 0 6px; padding:6px 10px; background:var(--band);
     border-left:4px solid var(--accent); }
h4 { font-size:15px; margin:16px 0 6px; color:var(--muted); text-transform:uppercase;
     letter-spacing:.04em; }
.path { color:var(--muted); font-size:13px; }
table { border-collapse:collapse; margin:4px 0 10px; font-size:14px; }
th, td { border:1px solid var(--line); padding:3px 9px; text-align:left; vertical-align:top; }
th { background:var(--band); font-weight:600; }
td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
table table { margin:0; font-size:13px; }
.cols { display:flex; flex-wrap:wrap; gap:24px; align-items:flex-start; }
.scroll { max-width:100%; overflow-x:auto; }
figure { margin:8px 0 16px; max-width:100%; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); display:block; }
figcaption { font-size:14px; color:var(--muted); margin-top:4px; }
.figures { display:flex; flex-wrap:wrap; gap:12px 28px; align-items:flex-start; }
.side-by-side { display:grid; gap:16px; align-items:start; }
.side-by-side figure { margin:0; }
.side-by-side img { width:auto; max-width:100%; }
tr.differs > td { background:#fff8dc; }
.note { color:var(--muted); font-size:13px; }
.problem { background:#fff4e5; border:1px solid #f0b35b; padding:6px 10px; border-radius:4px; }
pre.prose { white-space:pre-wrap; background:var(--band); padding:8px 10px; font-size:13px; }
"""


# ------------------------------------------------------------------ values

def esc(value) -> str:
    return html.escape(str(value), quote=True)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_number(value) -> str:
    """Integers as they are, floats to 4 significant digits (scientific when tiny/huge)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) < 1e15:
        return format_number(int(value))
    if abs(value) >= 1e6 or abs(value) < 1e-3:
        return f"{value:.3e}"
    if abs(value) >= 1000:
        return f"{value:,.1f}"
    return f"{value:.4g}"


def render_value(value) -> str:
    """A metric or config value as HTML: scalars formatted, dicts/lists as small tables."""
    if value is None:
        return '<span class="note">none</span>'
    if is_number(value) or isinstance(value, bool):
        return esc(format_number(value))
    if isinstance(value, str):
        return esc(value)
    if isinstance(value, dict):
        if value and all(isinstance(v, dict) for v in value.values()):
            return _matrix_from_dicts(list(value.keys()), list(value.values()), row_label=True)
        return key_value_table(value)
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        if all(isinstance(v, dict) for v in value):
            return _matrix_from_dicts(None, value)
        if all(isinstance(v, (list, tuple)) for v in value):
            return _grid(value)
        if all(not isinstance(v, (dict, list, tuple)) for v in value):
            shown = ", ".join(format_number(v) if is_number(v) else str(v)
                              for v in value[:LIST_PREVIEW])
            more = f" … ({len(value)} items)" if len(value) > LIST_PREVIEW else ""
            return esc(f"[{shown}{more}]")
        return "<br>".join(render_value(v) for v in value)
    return esc(value)


def _cell(value) -> str:
    cls = ' class="num"' if is_number(value) else ""
    return f"<td{cls}>{render_value(value)}</td>"


def key_value_table(mapping: dict, cls: str = "kv") -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th>{_cell(v)}</tr>" for k, v in mapping.items())
    return f'<table class="{cls}">{rows}</table>'


def _matrix_from_dicts(labels, dicts, row_label=False) -> str:
    """Rows of dicts (e.g. per-class scores) as one table with the union of their keys."""
    columns = list(dict.fromkeys(itertools.chain.from_iterable(d.keys() for d in dicts)))
    head = ("<th></th>" if row_label else "") + "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for i, d in enumerate(dicts):
        first = f"<th>{esc(labels[i])}</th>" if row_label else ""
        body.append("<tr>" + first + "".join(_cell(d.get(c, "")) for c in columns) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _grid(rows) -> str:
    """A list of lists (e.g. a confusion matrix) as a plain grid."""
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f'<div class="scroll"><table>{body}</table></div>'


def _maybe_number(text: str) -> str:
    """CSV cells hold text; long floats are shortened, everything else kept."""
    if re.fullmatch(r"-?\d+\.\d{5,}(e-?\d+)?|-?\d+(\.\d+)?e-?\d+", text.strip()):
        return esc(format_number(float(text)))
    return esc(text)


def render_table(table: Table) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in table.header)
    body = "".join("<tr>" + "".join(f"<td>{_maybe_number(c)}</td>" for c in row) + "</tr>"
                   for row in table.rows)
    note = ""
    if table.total_rows > len(table.rows):
        note = (f'<p class="note">first {len(table.rows)} of {table.total_rows} rows; '
                f'the full table is in {esc(table.source)}</p>')
    return (f'<p class="path">{esc(table.source)}</p><div class="scroll"><table>'
            f"<tr>{head}</tr>{body}</table></div>{note}")


def history_table(history: dict) -> str:
    """Per-epoch curves summarised: epochs, first, last and best (min) value."""
    rows = []
    for name, values in history.items():
        numbers = [v for v in values if is_number(v)] if isinstance(values, list) else []
        if not numbers:
            continue
        rows.append(f"<tr><th>{esc(name)}</th><td class=num>{len(numbers)}</td>"
                    f"<td class=num>{esc(format_number(numbers[0]))}</td>"
                    f"<td class=num>{esc(format_number(numbers[-1]))}</td>"
                    f"<td class=num>{esc(format_number(min(numbers)))}</td></tr>")
    if not rows:
        return ""
    return ("<table><tr><th>curve</th><th>epochs</th><th>first</th><th>last</th>"
            f"<th>min</th></tr>{''.join(rows)}</table>")


# ----------------------------------------------------------------- figures

def image_tag(path: str, alt: str) -> str:
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">'


def figure_html(run: Run, figure, caption: str | None = None) -> str:
    caption = figure.caption if caption is None else caption
    try:
        img = image_tag(os.path.join(run.path, figure.path), caption)
    except OSError as e:
        return f'<p class="problem">{esc(figure.path)}: cannot read ({esc(e)})</p>'
    return (f"<figure>{img}<figcaption>{esc(caption)} "
            f'<span class="path">({esc(figure.path)})</span></figcaption></figure>')


# ------------------------------------------------------------- comparisons

def flatten_numbers(mapping: dict, prefix: str = "") -> dict:
    """Numeric leaves of nested dicts, keyed by dotted path (``fid.mean``)."""
    flat = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if is_number(value):
            flat[name] = value
        elif isinstance(value, dict):
            flat.update(flatten_numbers(value, name + "."))
    return flat


def comparison_html(runs: list) -> str:
    """One column per run, one row per numeric metric; then shared figures side by side."""
    labels = [r.label for r in runs]
    heads = "".join(f'<th><a href="#{r.anchor}">{esc(label)}</a></th>'
                    for r, label in zip(runs, labels))
    rows = []
    for key in ("dataset",):
        values = [r.metrics.get(key) for r in runs]
        if any(v is not None for v in values):
            rows.append(f"<tr><th>{esc(key)}</th>"
                        + "".join(f"<td>{esc('' if v is None else v)}</td>" for v in values)
                        + "</tr>")
    flats = [flatten_numbers(r.metrics) for r in runs]
    keys = list(dict.fromkeys(itertools.chain.from_iterable(f.keys() for f in flats)))
    for key in keys:
        cells = "".join(f'<td class="num">{esc(format_number(f[key]))}</td>' if key in f
                        else '<td class="num note">–</td>' for f in flats)
        # Shade rows whose shown values differ, so the eye goes to what changed.
        differs = len({format_number(f[key]) if key in f else None for f in flats}) > 1
        attr = ' class="differs"' if differs else ""
        rows.append(f"<tr{attr}><th>{esc(key)}</th>{cells}</tr>")
    parts = ['<h4>Metrics side by side</h4><p class="note">one column per run; shaded '
             'rows differ between runs</p><div class="scroll"><table class="compare">'
             f"<tr><th>metric</th>{heads}</tr>{''.join(rows)}</table></div>"]

    # Figures that several runs share, in a row of equal columns.
    by_name = {}
    for run in runs:
        for fig in run.figures:
            by_name.setdefault(fig.path, []).append((run, fig))
    shared = {name: pairs for name, pairs in by_name.items() if len(pairs) > 1}
    if shared:
        parts.append("<h4>Figures side by side</h4>")
    for name, pairs in shared.items():
        columns = f"repeat({len(pairs)}, minmax(0, 1fr))"
        figs = "".join(figure_html(run, fig, f"{run.label}: {fig.caption}") for run, fig in pairs)
        parts.append(f'<p><b>{esc(pairs[0][1].caption)}</b></p>'
                     f'<div class="side-by-side" style="grid-template-columns:{columns}">'
                     f"{figs}</div>")
    return "".join(parts)


# -------------------------------------------------------------------- page

def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "run"


def assign_anchors(runs: list) -> None:
    seen = set()
    for run in runs:
        base = "run-" + _slug(f"{run.task}-{run.rel}")
        anchor, n = base, 2
        while anchor in seen:
            anchor, n = f"{base}-{n}", n + 1
        seen.add(anchor)
        run.anchor = anchor


def run_html(run: Run) -> str:
    parts = [f'<article class="run" id="{run.anchor}">',
             f"<h3>{esc(run.label)}</h3>",
             f'<p class="path">folder: {esc(run.rel)}</p>']
    for problem in run.problems:
        parts.append(f'<p class="problem">{esc(problem)}</p>')
    blocks = []
    if run.config:
        blocks.append(f"<div><h4>Configuration</h4>{key_value_table(run.config)}</div>")
    blocks.append("<div><h4>Metrics</h4>"
                  + (key_value_table(run.metrics, "metrics") if run.metrics
                     else '<p class="note">no metrics</p>') + "</div>")
    if run.history:
        table = history_table(run.history)
        if table:
            blocks.append(f"<div><h4>Training history</h4>{table}</div>")
    parts.append(f'<div class="cols">{"".join(blocks)}</div>')
    if run.tables:
        parts.append("<h4>Tables</h4>" + "".join(render_table(t) for t in run.tables))
    for name, prose in run.texts:
        parts.append(f'<p class="path">{esc(name)}</p><pre class="prose">'
                     f"{esc(chr(10).join(prose))}</pre>")
    if run.figures:
        parts.append('<h4>Figures</h4><div class="figures">'
                     + "".join(figure_html(run, f) for f in run.figures) + "</div>")
    parts.append("</article>")
    return "\n".join(parts)


def overview_table(runs: list) -> str:
    rows = []
    for r in runs:
        wall = r.metrics.get("wall_time_s")
        wall = esc(format_number(wall)) if is_number(wall) else ""
        rows.append(f"<tr><td>{esc(r.task)}</td><td><a href=\"#{r.anchor}\">{esc(r.stamp)}</a>"
                    f"</td><td>{esc(r.backend)}</td><td>{esc(r.metrics.get('dataset', ''))}</td>"
                    f'<td class="num">{wall}</td><td class="num">{len(r.figures)}</td></tr>')
    return ("<table><tr><th>task</th><th>run</th><th>backend</th><th>dataset</th>"
            f"<th>wall time (s)</th><th>figures</th></tr>{''.join(rows)}</table>")


def headlines_table(runs: list) -> str:
    """Each run's headline figure (``evaluation.headlines``), the first thing the page shows."""
    from evaluation.headlines import headline

    rows = []
    for r in runs:
        found = headline(r.task, r.metrics)
        if found:
            label, value = found
            rows.append(f"<tr><td>{esc(r.task)}</td><td><a href=\"#{r.anchor}\">{esc(r.stamp)}"
                        f"</a></td><td>{esc(r.backend)}</td><td>{esc(label)}</td>"
                        f'<td class="num">{render_value(value)}</td></tr>')
    if not rows:
        return ""
    return ('<section id="headlines"><h2>Headline figures</h2><table><tr><th>task</th>'
            "<th>run</th><th>backend</th><th>figure</th><th>value</th></tr>"
            f"{''.join(rows)}</table></section>")


def render_report(runs: list, runs_dir: str, now: datetime.datetime | None = None) -> str:
    """The whole page as a string.

    Args:
        runs: ``Run`` objects from ``discover_runs`` (already sorted).
        runs_dir: shown in the header as given on the command line.
        now: the generation time shown in the header (default: now).
    """
    now = now or datetime.datetime.now()
    assign_anchors(runs)
    tasks = sorted({r.task for r in runs}, key=task_sort_key)
    by_task = {t: [r for r in runs if r.task == t] for t in tasks}

    toc = ['<nav class="toc"><h2>Contents</h2><ul><li><a href="#overview">Overview</a></li>']
    for task in tasks:
        items = "".join(f'<li><a href="#{r.anchor}">{esc(r.label)}</a></li>' for r in by_task[task])
        compare = (f'<li><a href="#compare-{_slug(task)}">comparison</a></li>'
                   if len(by_task[task]) > 1 else "")
        toc.append(f'<li><a href="#task-{_slug(task)}">{esc(task)}</a> '
                   f"({len(by_task[task])} run{'s' if len(by_task[task]) > 1 else ''})"
                   f"<ul>{compare}{items}</ul></li>")
    toc.append("</ul></nav>")

    sections = []
    for task in tasks:
        task_runs = by_task[task]
        body = [f'<section class="task" id="task-{_slug(task)}" data-task="{esc(task)}">',
                f"<h2>{esc(task)}</h2>"]
        if len(task_runs) > 1:
            body.append(f'<div class="comparison" id="compare-{_slug(task)}">'
                        f"<h3>Comparison of {len(task_runs)} runs</h3>"
                        f"{comparison_html(task_runs)}</div>")
        body.extend(run_html(r) for r in task_runs)
        body.append("</section>")
        sections.append("\n".join(body))

    n_tasks = len(tasks)
    stamp = esc(now.strftime("%Y-%m-%d %H:%M"))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>unsupervised28 report: {esc(runs_dir)}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>unsupervised28 study report</h1>
<p>runs from <code>{esc(runs_dir)}</code> · {len(runs)} run{'s' if len(runs) != 1 else ''}
in {n_tasks} task{'s' if n_tasks != 1 else ''} · generated {stamp}</p>
</header>
<main>
{headlines_table(runs)}
{''.join(toc)}
<section id="overview"><h2>Overview</h2>{overview_table(runs)}</section>
{''.join(sections)}
</main>
</body>
</html>
"""
