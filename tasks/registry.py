"""Every task of ``main.py``, in one place: add a job with one line; and the
command-line parser made from them (used by ``main.py`` and by ``all``).

Each entry maps the task's name to its module; the module defines ``HELP`` (one
line for ``main.py --help``), ``add_arguments(parser)`` and ``run(args)``, which
returns the run folder. Modules import Keras lazily so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib

BACKENDS = ("tensorflow", "jax", "torch")

TASKS = {
    "cae": "tasks.cae",
    "tune": "tasks.tune",
    "latent": "tasks.latent",
    "denoise": "tasks.denoise",
    "classify": "tasks.classify",
    "vae": "tasks.vae",
    "gan": "tasks.gan",
    "generate": "tasks.generate",
    "quality": "tasks.quality",
    "all": "tasks.all",
    "report": "tasks.report",
    "export": "tasks.export",
    "doctor": "tasks.doctor",
}


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse that reports bad input as one line (exit 2) instead of usage + error."""

    def error(self, message):
        if message.startswith("unrecognized arguments") and "--backend" in message:
            message += "; --backend goes before the task, e.g. main.py --backend torch cae"
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="main.py",
        description="Keras 3 toolkit for unsupervised deep learning on 28x28 images "
                    "(Fashion-MNIST, MNIST). Each task writes its .keras models, "
                    "metrics.json and PNG figures into a run folder and prints where.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `python main.py <task> --help` for the options of a task.")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="Keras backend for this run (default: $KERAS_BACKEND, "
                             "else tensorflow)")
    parser.add_argument("--no-accel", action="store_true",
                        help="run stock Keras: none of the toolkit's backend speed paths "
                             "or process-wide speed settings (the same as "
                             "UNSUPERVISED28_ACCEL=0; saved files are the same either way)")
    sub = parser.add_subparsers(dest="task", metavar="<task>", parser_class=OneLineErrorParser)
    sub.required = True
    for name, module_name in TASKS.items():
        module = importlib.import_module(module_name)
        task_parser = sub.add_parser(name, help=module.HELP, description=module.HELP[0].upper()
                                     + module.HELP[1:] + ".",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter
                                     if getattr(module, "SHOW_DEFAULTS", False)
                                     else argparse.HelpFormatter)
        module.add_arguments(task_parser)
        task_parser.set_defaults(task_module=module)
    return parser
