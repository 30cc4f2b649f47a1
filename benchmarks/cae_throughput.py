#!/usr/bin/env python3
"""Training throughput of the CAE on each Keras backend against a plain PyTorch loop.

One fresh process per backend (``KERAS_BACKEND=...``) trains ``build_cae(CAEConfig())``
with ``model.fit`` on the same real images (Keras's default compile options, as
``main.py cae`` uses; ``--compile-json`` to try others), and one process runs the same architecture as a plain PyTorch loop
(``benchmarks/plain_torch_cae.py``). Same data, batch size, optimizer (Adam) and
loss (MSE); no validation. Throughput is the median images/s over the epochs after
the first (the first compiles). ``--rounds 2`` repeats the whole round of processes
so that a busy machine shows up as disagreement between rounds; ratios to the plain
loop are taken within each round.

    python benchmarks/cae_throughput.py                       # full 48 000 images, 4 epochs
    python benchmarks/cae_throughput.py --train-size 6000 --epochs 3 --rounds 2

Writes ``benchmarks/results/cae_throughput.json`` (or ``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

KERAS_BACKENDS = ("tensorflow", "jax", "torch")
PLAIN = "plain_torch"
RUNNERS = (*KERAS_BACKENDS, PLAIN)
DEFAULT_OUT = os.path.join(ROOT, "benchmarks", "results", "cae_throughput.json")
RESULT_TAG = "CAE_THROUGHPUT_RESULT "  # the worker's one line of JSON on stdout


# ------------------------------------------------------------------ worker


def _keras_epoch_times(data, args) -> tuple:
    """Trains the CAE with Keras fit; returns (wall s per epoch, CPU s per epoch, info)."""
    from startup import start

    start([], os.environ.get("KERAS_BACKEND", "tensorflow"))  # as main.py
    import keras

    from accel import accelerate
    from models.cae import CAEConfig, build_cae

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.wall, self.cpu = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = (time.perf_counter(), time.process_time())

        def on_epoch_end(self, epoch, logs=None):  # logs hold the loss: the epoch is done
            self.wall.append(time.perf_counter() - self._start[0])
            self.cpu.append(time.process_time() - self._start[1])

    keras.utils.set_random_seed(args.seed)
    options = json.loads(args.compile_json)
    model = build_cae(CAEConfig())
    model.compile(optimizer=keras.optimizers.Adam(args.lr), loss="mse", **options)
    accelerate(model)  # as the training code
    timer = EpochTimer()
    model.fit(data.x_train, data.x_train, epochs=args.epochs, batch_size=args.batch_size,
              shuffle=True, verbose=0, callbacks=[timer])
    info = {"keras": keras.__version__, "compile_options": options}
    return timer.wall, timer.cpu, info


def _plain_epoch_times(data, args) -> tuple:
    import torch

    from benchmarks.plain_torch_cae import train_plain

    cpu = []
    wall = train_plain(data.x_train, args.epochs, args.batch_size, args.lr, args.seed,
                       cpu_times=cpu)
    return wall, cpu, {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def run_worker(args) -> int:
    """Measures one runner in this process and prints its result as one JSON line."""
    from data.datasets import load_dataset

    data = load_dataset(args.dataset, seed=args.seed, train_limit=args.train_size)
    measure = _plain_epoch_times if args.worker == PLAIN else _keras_epoch_times
    wall, cpu, info = measure(data, args)
    n = len(data.x_train)
    steady = wall[1:]
    result = {
        "runner": args.worker,
        "images": n,
        "epoch_wall_s": wall,
        "epoch_cpu_s": cpu,
        "images_per_s": n / statistics.median(steady),
        # Process CPU time over all threads: less sensitive to other processes on a
        # shared machine, but it counts threads spinning while they wait as work.
        "images_per_cpu_s": n / statistics.median(cpu[1:]),
        **info,
    }
    print(RESULT_TAG + json.dumps(result), flush=True)
    return 0


# ------------------------------------------------------------------ driver


def spawn(runner: str, args) -> dict:
    """Runs one worker process; returns its result or an ``error`` entry."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", runner,
           "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
           "--lr", str(args.lr), "--dataset", args.dataset, "--seed", str(args.seed)]
    if args.train_size:
        cmd += ["--train-size", str(args.train_size)]
    cmd += ["--compile-json", args.compile_json]
    env = dict(os.environ)
    if runner in KERAS_BACKENDS:
        env["KERAS_BACKEND"] = runner
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT,
                              timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"runner": runner, "error": f"timed out after {args.timeout} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"runner": runner, "error": f"exit {proc.returncode}: {tail[0][:300]}"}
    result = json.loads(lines[-1][len(RESULT_TAG):])
    result["process_s"] = time.perf_counter() - start
    return result


def environment() -> dict:
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
    }


def table(rounds: list) -> str:
    """One row per runner: images/s and ratio to the plain loop per round; images per
    CPU-second of the last round."""
    header = f"{'runner':<12}" + "".join(
        f"{'round ' + str(i + 1) + ' img/s':>17}{'x plain':>9}" for i in range(len(rounds)))
    header += f"{'img/CPU-s':>11}"
    lines = [header, "-" * len(header)]
    for runner in rounds[0]:
        row = f"{runner:<12}"
        for r in rounds:
            res = r[runner]
            if "error" in res:
                row += f"{'failed':>17}{'':>9}"
            else:
                ratio = res.get("ratio_to_plain_torch")
                row += f"{res['images_per_s']:>17.0f}" + (f"{ratio:>8.2f}x" if ratio else f"{'-':>9}")
        last = rounds[-1][runner]
        row += f"{last['images_per_cpu_s']:>11.0f}" if "images_per_cpu_s" in last else f"{'':>11}"
        lines.append(row)
    return "\n".join(lines)


def run_driver(args) -> int:
    from storage.files import write_json

    runners = args.backends
    if PLAIN not in runners:
        runners = [*runners, PLAIN]  # the reference every ratio needs
    rounds = []
    for i in range(args.rounds):
        measured = {}
        for runner in runners:
            print(f"round {i + 1}/{args.rounds}: {runner} ...", flush=True)
            measured[runner] = spawn(runner, args)
            if "error" in measured[runner]:
                print(f"  {runner} failed: {measured[runner]['error']}", flush=True)
        plain = measured[PLAIN].get("images_per_s")
        for res in measured.values():
            if plain and "images_per_s" in res:
                res["ratio_to_plain_torch"] = res["images_per_s"] / plain
        rounds.append(measured)

    summary = {}
    for runner in runners:
        ratios = [r[runner]["ratio_to_plain_torch"] for r in rounds
                  if "ratio_to_plain_torch" in r[runner]]
        speeds = [r[runner]["images_per_s"] for r in rounds if "images_per_s" in r[runner]]
        summary[runner] = {
            "images_per_s_median": statistics.median(speeds) if speeds else None,
            "ratio_to_plain_torch_median": statistics.median(ratios) if ratios else None,
        }
    report = {
        "benchmark": "cae_throughput",
        "settings": {"dataset": args.dataset, "train_size": args.train_size,
                     "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                     "rounds": args.rounds, "compile_options": json.loads(args.compile_json),
                     "throughput": "median images/s over epochs after the first"},
        "environment": environment(),
        "summary": summary,
        "rounds": rounds,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_json(args.out, report)
    print()
    print(table(rounds))
    print(f"\nwritten to {os.path.relpath(args.out)}")
    failed = [r for rnd in rounds for r, res in rnd.items() if "error" in res]
    return 1 if failed else 0


# -------------------------------------------------------------------- CLI


def runner_list(text: str) -> list:
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in RUNNERS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown runner(s) {bad or text!r}; valid: {', '.join(RUNNERS)} (comma-separated)")
    return list(dict.fromkeys(names))


def json_object(text: str) -> str:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a JSON object, e.g. '{{\"steps_per_execution\": 8}}'")
    return text


def build_parser() -> argparse.ArgumentParser:
    from data.datasets import DATASETS
    from cli.args import positive_float, positive_int

    class OneLineErrorParser(argparse.ArgumentParser):
        def error(self, message):  # one line, exit 2, as main.py does
            self.exit(2, f"{self.prog}: error: {message}\n")

    parser = OneLineErrorParser(
        prog="cae_throughput.py",
        description="CAE training throughput per Keras backend vs a plain PyTorch loop.")
    parser.add_argument("--backends", type=runner_list, default=list(RUNNERS),
                        help=f"comma-separated runners (default {','.join(RUNNERS)}); "
                             f"{PLAIN} is always added as the reference")
    parser.add_argument("--epochs", type=positive_int, default=4,
                        help="epochs per run, >= 2: the first is dropped (default 4)")
    parser.add_argument("--train-size", type=positive_int, default=None,
                        help="train on a seeded subset of N images (default all 48 000)")
    parser.add_argument("--batch-size", type=positive_int, default=256, help="(default 256)")
    parser.add_argument("--lr", type=positive_float, default=1e-3,
                        help="Adam learning rate (default 1e-3)")
    parser.add_argument("--dataset", default="fashion_mnist", choices=DATASETS,
                        help="(default fashion_mnist; digits for smoke runs only)")
    parser.add_argument("--seed", type=int, default=0, help="(default 0)")
    parser.add_argument("--rounds", type=positive_int, default=1,
                        help="repeat the round of processes, interleaved (default 1)")
    parser.add_argument("--timeout", type=positive_int, default=3600,
                        help="seconds allowed per process (default 3600)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="JSON file to write "
                        "(default benchmarks/results/cae_throughput.json)")
    parser.add_argument("--compile-json", type=json_object, default="{}",
                        help="extra Model.compile arguments as JSON, for experiments, "
                             "e.g. '{\"steps_per_execution\": 8}' (default none)")
    parser.add_argument("--worker", choices=RUNNERS, default=None, help=argparse.SUPPRESS)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.epochs < 2:
        print("cae_throughput.py: error: --epochs must be >= 2 (the first epoch compiles "
              "and is not counted)", file=sys.stderr)
        return 2
    return run_worker(args) if args.worker else run_driver(args)


if __name__ == "__main__":
    sys.exit(main())
