#!/usr/bin/env python3
"""Wall and CPU time of whole processes: each Keras backend against plain PyTorch.

A user waits for the whole process (imports, data, compilation, training,
evaluation, saving), so that is what is timed here, not only the fit loop:

- ``cae``: ``main.py cae --epochs E --patience 10 --verbose 0`` against
  ``benchmarks/plain_torch_cae.py --whole-process`` (the same CAE, batch 128,
  Adam 2e-3, MSE, the same training and validation images per epoch, test MSE at
  the end).
- ``vae``, ``gan``: a process that runs ``--steps`` training steps of the model's
  custom ``train_step`` on real images (``train_step_speed.py``'s child, no
  warm-up: compilation counts) against the plain PyTorch loop of the same networks.

The pairs run in turn (Keras, PyTorch, Keras, PyTorch, ...) so a slow minute of a
shared machine hits both; each figure is the median over ``--rounds``. CPU time is
user + system time of the child process. Writes
``benchmarks/results/whole_process.{json,md}``.

    python3 benchmarks/whole_process.py --rounds 3            # the issue's setting
    python3 benchmarks/whole_process.py --models cae --epochs 1 --train-size 6000 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKENDS = ("tensorflow", "jax", "torch")
MODELS = ("cae", "vae", "gan")


def commands(model: str, backend: str, args, out: str) -> tuple:
    """The Keras command and its plain-PyTorch reference, as argument lists."""
    py = sys.executable
    if model == "cae":
        keras_cmd = [py, os.path.join(ROOT, "main.py"), "--backend", backend, "cae",
                     "--epochs", str(args.epochs), "--patience", "10", "--verbose", "0",
                     "--out", out]
        torch_cmd = [py, os.path.join(ROOT, "benchmarks", "plain_torch_cae.py"),
                     "--whole-process", "--epochs", str(args.epochs), "--batch-size", "128",
                     "--lr", "2e-3"]
        for option, value in (("--train-size", args.train_size), ("--dataset", args.dataset)):
            if value:
                keras_cmd += [option, str(value)]
                torch_cmd += [option, str(value)]
        return keras_cmd, torch_cmd
    width = args.gan_width if model == "gan" else args.vae_width
    step = [py, os.path.join(ROOT, "benchmarks", "train_step_speed.py"), "--model", model,
            "--steps", str(args.steps), "--warmup", "0", "--batch-size", "128",
            "--width", str(width), "--child"]
    return step + [backend], step + ["pytorch"]


def timed(cmd: list, backend: str) -> dict:
    """Runs ``cmd`` to the end; its wall time and its CPU time (user + system)."""
    # PASSIVE for both sides: spinning OpenMP threads slow PyTorch 10x or more
    # beside any other busy process (main.py sets the same for its own runs).
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONUNBUFFERED="1",
               OMP_WAIT_POLICY="PASSIVE")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}): {' '.join(cmd)}\n"
                         f"{result.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu}


def measure(model: str, backend: str, args) -> dict:
    """``--rounds`` alternating pairs; medians and the ratios Keras / PyTorch."""
    pairs = []
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory() as out:
            keras_cmd, torch_cmd = commands(model, backend, args, os.path.join(out, "run"))
            keras_t = timed(keras_cmd, backend)
            torch_t = timed(torch_cmd, backend)
        pairs.append({"keras": keras_t, "pytorch": torch_t})
        print(f"  {model} {backend} round {r + 1}: keras {keras_t['wall_s']:.1f} s "
              f"(cpu {keras_t['cpu_s']:.1f}), plain PyTorch {torch_t['wall_s']:.1f} s "
              f"(cpu {torch_t['cpu_s']:.1f})", flush=True)
    med = lambda who, key: statistics.median(p[who][key] for p in pairs)  # noqa: E731
    return {"model": model, "backend": backend, "rounds": pairs,
            "keras_wall_s": med("keras", "wall_s"), "pytorch_wall_s": med("pytorch", "wall_s"),
            "keras_cpu_s": med("keras", "cpu_s"), "pytorch_cpu_s": med("pytorch", "cpu_s"),
            "wall_ratio": statistics.median(p["keras"]["wall_s"] / p["pytorch"]["wall_s"]
                                            for p in pairs),
            "cpu_ratio": statistics.median(p["keras"]["cpu_s"] / p["pytorch"]["cpu_s"]
                                           for p in pairs)}


def markdown(rows: list, settings: dict) -> str:
    lines = [f"Whole processes, median of {settings['rounds']} alternating pairs "
             f"(`python3 benchmarks/whole_process.py {settings['argv']}`), "
             f"{settings['cpu_count']} CPU cores. Ratio = Keras / plain PyTorch "
             "(goal: wall-time ratio <= 1.10).", "",
             "| model | backend | Keras wall s | PyTorch wall s | wall ratio | CPU ratio |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['backend']} | {r['keras_wall_s']:.1f} | "
                     f"{r['pytorch_wall_s']:.1f} | {r['wall_ratio']:.2f}x | "
                     f"{r['cpu_ratio']:.2f}x |")
    return "\n".join(lines) + "\n"


def write_atomic(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help="comma-separated, from cae,vae,gan (default: all)")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="comma-separated Keras backends (default: all three)")
    parser.add_argument("--rounds", type=int, default=3, help="pairs per cell (default 3)")
    parser.add_argument("--epochs", type=int, default=3, help="CAE epochs (default 3)")
    parser.add_argument("--train-size", type=int, default=None,
                        help="CAE training images (default: the full 48 000)")
    parser.add_argument("--dataset", default="fashion_mnist",
                        help="the CAE's data set (digits for a smoke run)")
    parser.add_argument("--steps", type=int, default=200,
                        help="VAE and GAN training steps per process (default 200)")
    parser.add_argument("--gan-width", type=int, default=16)
    parser.add_argument("--vae-width", type=int, default=32)
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results",
                                                      "whole_process"),
                        help="writes OUT.json and OUT.md")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    models = args.models.split(",")
    backends = args.backends.split(",")
    bad = [m for m in models if m not in MODELS] + [b for b in backends if b not in BACKENDS]
    if bad or args.rounds < 1 or args.epochs < 1 or args.steps < 1:
        parser.exit(2, f"whole_process.py: error: bad value(s) {bad or 'non-positive count'}; "
                       f"models: {','.join(MODELS)}; backends: {','.join(BACKENDS)}\n")
    rows = [measure(m, b, args) for m in models for b in backends]
    settings = {"rounds": args.rounds, "epochs": args.epochs, "train_size": args.train_size,
                "dataset": args.dataset,
                "steps": args.steps, "cpu_count": os.cpu_count(), "argv": " ".join(argv)}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    write_atomic(args.out + ".json", json.dumps({"settings": settings, "results": rows},
                                                indent=2) + "\n")
    table = markdown(rows, settings)
    write_atomic(args.out + ".md", table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
