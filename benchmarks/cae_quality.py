#!/usr/bin/env python3
"""Test MSE the default ``main.py cae`` reaches within a wall-clock budget.

Trains the CAE exactly as ``main.py cae`` does (``training.cae.train_cae`` with the
task's default options, full Fashion-MNIST, latent 10) on the current backend
(``KERAS_BACKEND``), stops training when the budget is spent (checked after every
batch; the epoch then ends with its validation, and EarlyStopping restores the
best epoch's weights as usual), and reports the test MSE against the target.

    python benchmarks/cae_quality.py                         # budget 600 s, target 0.012
    python benchmarks/cae_quality.py --budget-s 120 -- --train-size 6000 --epochs 5

Options after ``--`` are ``main.py cae`` options. Writes
``benchmarks/results/cae_quality_<backend>.json`` (or ``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def budget_callback(seconds: float):
    """A Keras callback that ends ``fit`` once ``seconds`` have passed since it began."""
    import keras

    class WallClockBudget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start, self.stopped_at_s = time.perf_counter(), None

        def on_train_batch_end(self, batch, logs=None):
            elapsed = time.perf_counter() - self.start
            if elapsed >= seconds and not self.model.stop_training:
                self.model.stop_training, self.stopped_at_s = True, elapsed

    return WallClockBudget()


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cae_argv = argv[argv.index("--") + 1:] if "--" in argv else []
    own_argv = argv[:argv.index("--")] if "--" in argv else argv

    from cli.args import positive_float

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=positive_float, default=600.0,
                        help="training wall-clock budget in seconds (default 600)")
    parser.add_argument("--target-mse", type=positive_float, default=0.012,
                        help="test MSE to reach (default 0.012)")
    parser.add_argument("--out", default=None,
                        help="JSON file (default benchmarks/results/cae_quality_<backend>.json)")
    args = parser.parse_args(own_argv)

    from runtime.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from data.arguments import load_data
    from runtime.backend import seed_everything
    from cli.options import from_args
    from storage.files import write_json
    from tasks import cae
    from training.cae import train_cae

    cae_parser = argparse.ArgumentParser(prog="main.py cae")
    cae.add_arguments(cae_parser)
    config = from_args(cae.CaeTaskConfig, cae_parser.parse_args(cae_argv))
    seed_everything(config.data.seed)
    data = load_data(config.data)
    budget = budget_callback(args.budget_s)
    run_dir = config.output.out or tempfile.mkdtemp(prefix="cae_quality_")
    os.makedirs(run_dir, exist_ok=True)
    start = time.perf_counter()
    _, metrics = train_cae(data, config.cae, run_dir, config.training, verbose=config.verbose,
                           extra_callbacks=[budget], seed=config.data.seed)
    total = time.perf_counter() - start
    report = {
        "benchmark": "cae_quality",
        "backend": metrics["backend"],
        "main_py_cae_options": cae_argv,
        "budget_s": args.budget_s,
        "stopped_by_budget": budget.stopped_at_s is not None,
        "target_test_mse": args.target_mse,
        "met_target": metrics["test_mse"] <= args.target_mse,  # training is capped by the budget
        "test_mse": metrics["test_mse"],
        "train_wall_s": metrics["wall_time_s"],
        "total_wall_s_with_evaluation": total,
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "run_dir": os.path.relpath(run_dir, ROOT) if config.output.out else None,
        "metrics": metrics,
    }
    out = args.out or os.path.join(ROOT, "benchmarks", "results",
                                   f"cae_quality_{metrics['backend']}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    write_json(out, report)
    print(f"\n{'backend':<12}{'epochs':>7}{'train s':>9}{'test MSE':>10}{'target':>8}  met")
    print(f"{metrics['backend']:<12}{metrics['epochs']:>7}{metrics['wall_time_s']:>9.0f}"
          f"{metrics['test_mse']:>10.5f}{args.target_mse:>8}  {'yes' if report['met_target'] else 'NO'}")
    print(f"\nwritten to {os.path.relpath(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
