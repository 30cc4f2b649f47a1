"""`python main.py all`: the whole study in one command.

Runs cae -> tune -> latent -> denoise -> classify -> vae -> gan -> quality, each
step reusing the saved `.keras` models of the steps before it instead of
retraining. A step that fails is reported and the steps that do not depend on it
still run. Ends with a summary table and an HTML report of the whole run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
import traceback

from data.arguments import DataConfig
from runtime.options import add_config, from_args, option, same_option, section
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
                       "--min-steps", "20", "--label-fractions", "0.1,1"],
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
    output: OutputConfig = section(OutputConfig, "output")


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
    from runtime.errors import UserError

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


def run_study(config: AllConfig) -> str:
    """Runs the study's steps into its folder, which it returns; each step is
    parsed and run as ``main.py <step> ...`` would run it."""
    from runtime.errors import UserError
    from storage.run_folder import make_run_dir

    steps = select_steps(config.steps)
    root = make_run_dir("all", config.output.out, overwrite=config.output.overwrite)
    from tasks.registry import build_parser

    parser = build_parser()
    results = []
    failed = set()
    for i, step in enumerate(steps, start=1):
        left = [s.name for s in steps[i:]]
        print(f"\n=== step {i}/{len(steps)}: {step.name}"
              f" (then: {', '.join(left) if left else 'done'})", flush=True)
        start = time.perf_counter()
        out = os.path.join(root, step.name)
        missing = [n for n in step.needs if n in failed]
        if missing:
            failed.add(step.name)
            results.append(dict(step=step.name, status="skipped",
                                reason=f"needs {', '.join(missing)}, which failed",
                                seconds=0.0, out=out))
            print(f"skipped: needs {', '.join(missing)}", flush=True)
            continue
        argv = step_argv(step, root, config)
        print("main.py " + step.name + " " + " ".join(argv), flush=True)
        try:
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
        results.append(dict(step=step.name, status=status, reason=reason, seconds=seconds,
                            out=out, headline=label, value=value if status == "ok" else None))
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
