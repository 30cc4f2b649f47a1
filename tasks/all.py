"""`python main.py all`: the whole study in one command.

Runs cae -> tune -> latent -> denoise -> classify -> vae -> gan -> quality, each
step reusing the saved `.keras` models of the steps before it instead of
retraining. A step that fails is reported and the steps that do not depend on it
still run. Ends with a summary table and an HTML report of the whole run.

``summary.json`` is written after every step: ``all --resume --out DIR`` keeps
the steps it lists as done, continues the interrupted one from its backup
(``--resume``, or ``--overwrite`` where nothing of it is worth keeping) and runs
the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
import traceback

from data.arguments import DataConfig
from runtime.compute import ComputeConfig
from cli.options import add_config, from_args, option, same_option, section, to_dict
from storage.files import write_json, write_text
from storage.run_folder import OutputConfig

HELP = "run the whole study (cae, tune, latent, denoise, classify, vae, gan, quality) in order"


@dataclasses.dataclass
class Step:
    """One step of the study.

    Attributes:
        name: the task run by this step (a key of ``tasks.registry.TASKS``).
        args: its command-line arguments; ``{root}`` is the study's folder.
        quick: extra arguments under ``--quick``.
        needs: steps whose outputs this one reads; if one failed, it is skipped.

    The summary shows each step's headline figure (``evaluation.headlines``).
    """

    name: str
    args: list
    quick: list
    needs: tuple = ()


# Subsets under --quick: small enough for the whole chain to finish in minutes
# on 2 CPU cores, large enough that every number is computed on real images.
QUICK_DATA = ["--train-size", "4000", "--test-size", "2000"]

CAE = "{root}/cae/cae.keras"

STEPS = [
    Step("cae", ["--out", "{root}/cae"], QUICK_DATA + ["--epochs", "8"]),
    # A small search: the full one is `main.py tune` with its own budget.
    Step("tune", ["--out", "{root}/tune", "--tuner", "bayesian", "--max-trials", "4",
                  "--epochs", "3", "--final-epochs", "10"],
         QUICK_DATA + ["--max-trials", "2", "--epochs", "1", "--final-epochs", "1",
                       "--space", "small"]),
    Step("latent", ["--out", "{root}/latent", "--model", CAE],
         QUICK_DATA + ["--tsne-samples", "500"], needs=("cae",)),
    Step("denoise", ["--out", "{root}/denoise", "--model", CAE],
         QUICK_DATA + ["--epochs", "3"], needs=("cae",)),
    Step("classify", ["--out", "{root}/classify", "--encoder", CAE],
         QUICK_DATA + ["--max-trials", "2", "--tuning-epochs", "2", "--epochs", "10",
                       "--fine-tune-epochs", "2", "--baseline-epochs", "5",
                       "--min-steps", "20", "--label-fractions", "0.1,1", "--label-seeds", "1",
                       "--semi-supervised-epochs", "2"],
         needs=("cae",)),
    Step("vae", ["--out", "{root}/vae"], QUICK_DATA + ["--epochs", "5"]),
    Step("gan", ["--out", "{root}/gan"], QUICK_DATA + ["--epochs", "4"]),
    Step("quality", ["--out", "{root}/quality", "--gan", "{root}/gan/generator.keras",
                     "--vae", "{root}/vae/vae.keras", "--cae", CAE],
         # Quick: a one-epoch classifier on the subset, not the reference extractor
         # (trained once on the full training split).
         QUICK_DATA + ["--n", "1000", "--classifier", "{root}/quality/domain_classifier.keras",
                       "--classifier-epochs", "1"],
         needs=("cae", "vae", "gan")),
]


@dataclasses.dataclass
class AllConfig:
    """One ``all`` run: which steps, on which data, into which folder."""

    quick: bool = option(
        False, action="store_true",
        help="shrink every step (data subsets, few epochs, tiny searches) so the whole "
             "chain finishes in about 10 minutes on 2 CPU cores")
    dataset: str = same_option(DataConfig, "dataset", help="dataset for every step")
    data_dir: str | None = same_option(
        DataConfig, "data_dir", help="folder with the four IDX .gz files, passed to every step")
    seed: int = same_option(DataConfig, "seed", help="seed for every step")
    steps: str | None = option(
        None, metavar="LIST", default_help=f"all ({', '.join(s.name for s in STEPS)})",
        help="comma-separated subset of steps to run, in the study's order")
    compute: ComputeConfig = section(ComputeConfig, "compute (passed to every training step)")
    output: OutputConfig = section(OutputConfig, "output")
    resume: bool = option(
        False, action="store_true",
        help="continue the study in --out: the steps it finished are kept, the interrupted "
             "one continues from its last finished epoch, the rest run (give the same "
             "options; --steps may differ)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser, AllConfig, task="all")


def step_argv(step: Step, root: str, config: AllConfig) -> list:
    """The command line of ``step`` in the study's folder ``root``."""
    argv = [a.format(root=root) for a in step.args]
    if config.quick:
        argv += [a.format(root=root) for a in step.quick]
    argv += ["--dataset", config.dataset, "--seed", str(config.seed)]
    if config.data_dir:
        argv += ["--data-dir", config.data_dir]
    return argv


def select_steps(spec: str | None) -> list:
    from cli.errors import UserError

    if spec is None:
        return list(STEPS)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    known = {s.name for s in STEPS}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise UserError(f"--steps {spec!r}: unknown step(s) {', '.join(unknown) or '(none)'}; "
                        f"valid: {', '.join(s.name for s in STEPS)}")
    return [s for s in STEPS if s.name in names]


def headline_value(out: str, task: str):
    """(label, value) of the step's headline figure; the value None where the run
    wrote no readable metrics.json or no such figure."""
    from evaluation.headlines import headline, HEADLINES
    from storage.files import read_json

    label = HEADLINES.get(task, ("", ""))[1]
    try:
        found = headline(task, read_json(os.path.join(out, "metrics.json")))
    except (OSError, ValueError):
        found = None
    return label, (found[1] if found else None)


CONFIG = AllConfig


def run(args) -> str:
    return run_study(from_args(AllConfig, args))


def compute_argv(config: AllConfig) -> list:
    """``--precision``, ``--distribute`` and ``--cpu-devices`` for a training step."""
    compute = config.compute
    argv = ["--precision", compute.precision, "--distribute", compute.distribute]
    return argv + (["--cpu-devices", str(compute.cpu_devices)] if compute.cpu_devices else [])


def continue_argv(out: str) -> list:
    """How a step whose folder an earlier study left unfinished is run again:
    ``--resume`` where it kept something worth keeping (a training backup, finished
    phases, a search's trials), else ``--overwrite`` (its few files are remade)."""
    from storage.training_backup import has_backup

    kept = has_backup(os.path.join(out, "backup")) or any(
        os.path.isdir(os.path.join(out, name)) for name in ("phases", "tuner"))
    return ["--resume"] if kept else ["--overwrite"]


def earlier_results(root: str) -> dict:
    """The steps an earlier study in ``root`` finished: ``{step: its summary row}``."""
    from storage.files import read_json

    try:
        rows = read_json(os.path.join(root, "summary.json"))
    except (OSError, ValueError):
        return {}
    kept = {}
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and row.get("status") == "ok" and isinstance(row.get("step"), str):
            out = os.path.join(root, row["step"])
            if os.path.isfile(os.path.join(out, "metrics.json")):
                kept[row["step"]] = {**row, "out": out}
    return kept


def resume_command(root: str) -> str:
    import keras

    return f"python3 main.py --backend {keras.backend.backend()} all --resume --out {root}"


def run_study(config: AllConfig) -> str:
    """Runs the study's steps into its folder, which it returns; each step is
    parsed and run as ``main.py <step> ...`` would run it."""
    import sys

    import keras

    from cli.errors import UserError
    from storage.run_folder import make_run_dir, task_of
    from training.phases import PhasedRun, resume_folder

    steps = select_steps(config.steps)
    if not config.resume and config.output.out and task_of(config.output.out) == "all" \
            and not config.output.overwrite:
        raise UserError(f"--out {config.output.out!r} holds an earlier study: continue it (and "
                        f"keep its finished steps) with --resume, or give another --out")
    root = resume_folder("all", config.output.out, config.resume)
    root = make_run_dir("all", root, overwrite=config.output.overwrite, resume=config.resume)
    study = PhasedRun(root, config.resume)
    options = {k: v for k, v in to_dict(config).items() if k != "steps"}
    study.check_options({**options, "backend": keras.backend.backend()})
    study.record_options()
    earlier = earlier_results(root) if config.resume else {}
    from tasks.registry import build_parser

    parser = build_parser()
    results = []
    failed = set()
    try:
        for i, step in enumerate(steps, start=1):
            left = [s.name for s in steps[i:]]
            print(f"\n=== step {i}/{len(steps)}: {step.name}"
                  f" (then: {', '.join(left) if left else 'done'})", flush=True)
            if step.name in earlier:
                print(f"kept: {step.name} finished in {earlier[step.name]['out']} earlier",
                      flush=True)
                results.append(earlier[step.name])
                continue
            results.append(run_step(step, root, config, parser, failed))
            write_json(os.path.join(root, "summary.json"), results)  # what --resume keeps
    except KeyboardInterrupt:
        print(f"\nmain.py all: interrupted; continue the study with: {resume_command(root)} "
              f"(and the same options)", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    write_json(os.path.join(root, "summary.json"), results)
    table = summary_table(results)
    write_text(os.path.join(root, "summary.md"), table)
    print("\n" + table)
    try:
        report_args = parser.parse_args(["report", root])
        report_args.task_module.run(report_args)
    except (UserError, SystemExit, Exception) as e:  # the study's results stand without it
        print(f"report not written: {e}")
    if failed:
        print(f"failed or skipped: {', '.join(sorted(failed))}")
    return root


def run_step(step: Step, root: str, config: AllConfig, parser, failed: set) -> dict:
    """Runs one step (adding its name to ``failed`` if it fails); its summary row."""
    from cli.errors import UserError
    from storage.run_folder import task_of

    start = time.perf_counter()
    out = os.path.join(root, step.name)
    missing = [n for n in step.needs if n in failed]
    if missing:
        failed.add(step.name)
        print(f"skipped: needs {', '.join(missing)}", flush=True)
        return dict(step=step.name, status="skipped",
                    reason=f"needs {', '.join(missing)}, which failed", seconds=0.0, out=out)
    argv = step_argv(step, root, config)
    try:
        step_args = parser.parse_args([step.name, *argv])
        if hasattr(step_args, "precision"):  # a training step
            argv += compute_argv(config)
        if task_of(out) == step.name:  # left unfinished by an earlier study
            argv += continue_argv(out) if hasattr(step_args, "resume") else ["--overwrite"]
        print("main.py " + step.name + " " + " ".join(argv), flush=True)
        step_args = parser.parse_args([step.name, *argv])
        step_args.task_module.run(step_args)
        status, reason = "ok", ""
    except UserError as e:
        status, reason = "failed", str(e)
    except SystemExit as e:  # argparse rejected the arguments
        status, reason = "failed", f"bad arguments (exit {e.code})"
    except Exception as e:  # keep going: later independent steps still run
        status, reason = "failed", f"{type(e).__name__}: {e}"
        traceback.print_exc()
    finally:
        import keras
        keras.backend.clear_session()
    seconds = time.perf_counter() - start
    if status != "ok":
        failed.add(step.name)
        print(f"step {step.name} failed: {reason}", flush=True)
    label, value = headline_value(out, step.name)
    return dict(step=step.name, status=status, reason=reason, seconds=seconds,
                out=out, headline=label, value=value if status == "ok" else None)


def summary_table(results: list) -> str:
    def fmt(value):
        if isinstance(value, float):
            return f"{value:.4g}"
        return "" if value is None else str(value)

    lines = ["| step | status | headline metric | value | wall time | output |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in results:
        status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r['reason'][:80]}"
        lines.append(f"| {r['step']} | {status} | {r.get('headline') or ''} | "
                     f"{fmt(r.get('value'))} | {r['seconds']:.0f} s | {r['out']} |")
    return "\n".join(lines) + "\n"
