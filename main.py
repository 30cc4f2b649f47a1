#!/usr/bin/env python3
"""Unsupervised deep learning on 28x28 images, one job per command.

    python main.py <task> [options]      python main.py <task> --help

The Keras backend comes from KERAS_BACKEND (tensorflow, jax or torch) or --backend.
"""

from __future__ import annotations

import os
import sys

from tasks.registry import BACKENDS, build_parser


def interrupted_hint(args, folders) -> str:
    """How to continue an interrupted run, for the Ctrl-C message (called once the
    unfinished folders are discarded): a task with ``--resume`` whose run folder
    is still there continues with ``--resume --out`` it; otherwise nothing was
    kept, and the same command starts again."""
    if not hasattr(args, "resume"):
        return ""
    from storage.run_folder import task_of

    for folder in folders:
        if folder and task_of(folder) == args.task:
            return (f"; continue it with: python3 main.py {args.task} --resume --out {folder} "
                    f"(and the same options)")
    return "; nothing was saved: run the same command again to start over"


def main(argv=None) -> int:
    # The backend must be chosen before Keras is imported anywhere.
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--backend" in argv:
        i = argv.index("--backend")
        if i + 1 < len(argv) and argv[i + 1] in BACKENDS:
            os.environ["KERAS_BACKEND"] = argv[i + 1]
    if not os.environ.get("KERAS_BACKEND", "x").strip():
        del os.environ["KERAS_BACKEND"]  # an empty KERAS_BACKEND= means unset
    backend = os.environ.get("KERAS_BACKEND")
    if backend is not None and backend not in BACKENDS:
        print(f"main.py: error: KERAS_BACKEND={backend!r} is not a backend; valid: "
              f"{', '.join(BACKENDS)}", file=sys.stderr)
        return 2
    from cli.errors import UserError

    from runtime.acceleration import turn_off
    from startup import start

    args = build_parser().parse_args(argv)
    args.main_argv = argv  # for tasks that start more main.py processes (tune --local-workers)
    # Process-wide settings and Keras's import, before the task: TensorFlow's
    # start-up chatter cannot bury an error, and the speed settings are made
    # where acceleration is on (see startup/__init__.py).
    if args.no_accel:
        turn_off()  # for this process and every process it starts
    start(argv, backend or "tensorflow")
    from runtime.compute import ComputeConfig, configure, task_scope
    from cli.options import from_args
    from storage import run_folder
    try:
        if hasattr(args, "precision"):  # a training task: dtype policy, devices
            configure(from_args(ComputeConfig, args))
        with task_scope():
            out = args.task_module.run(args)
    except UserError as e:
        run_folder.discard_unfinished()
        print(f"main.py {args.task}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        folders = run_folder.created_runs() or [getattr(args, "out", None)]
        run_folder.discard_unfinished()  # first: a folder left holds what can be resumed
        hint = interrupted_hint(args, folders)
        print(f"\nmain.py {args.task}: interrupted{hint}", file=sys.stderr)
        return 130
    except BaseException:
        run_folder.discard_unfinished()
        raise
    run_folder.seal_marked()  # what other writers put in the run is listed file by file
    if out:
        print(f"outputs written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
