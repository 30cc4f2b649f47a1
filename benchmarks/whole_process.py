#!/usr/bin/env python3
"""Wall and CPU time of whole processes: each Keras backend against plain PyTorch.

A user waits for the whole process (imports, data, compilation, training,
evaluation, saving), so that is what is timed here, not only the fit loop:

- ``cae``: ``main.py cae --epochs E --patience 10 --verbose 0`` against
  ``benchmarks/plain_torch_cae.py --whole-process`` (the same CAE, batch 128,
  Adam 2e-3, MSE, the same training and validation images per epoch, test MSE at
  the end).
- ``vae``: ``main.py vae --epochs E --batch-size 128 --verbose 0`` (its other
  defaults: latent 16, dense layers of 512, the calibrated Gaussian likelihood, beta
  0.25) against ``benchmarks/plain_torch_vae.py``
  (the same networks and loss, batch 128, Adam 1e-3, a validation pass per epoch,
  the test ELBO, the model saved and the same four figures drawn).
- ``gan``: a process that runs ``--steps`` training steps of the GAN's custom
  ``train_step`` on real images (``train_step_speed.py``'s child, no warm-up:
  compilation counts) against the plain PyTorch loop of the same networks.

The plain loop is the peer a user would write: it runs on PyTorch's defaults.
Both sides start without the caller's OpenMP wait settings (``OMP_WAIT_POLICY``,
``GOMP_SPINCOUNT``): the toolkit's start-up applies its own, as it does for a
user, and nothing of it reaches the plain loop. ``--accel off`` times stock Keras
instead (``main.py --no-accel``; ``UNSUPERVISED28_ACCEL=0`` for the step child),
``--accel both`` times both beside the same plain loop.

The processes of a cell run in turn (Keras, [Keras without acceleration,]
PyTorch, Keras, ...) so a slow minute of a shared machine hits each; each figure
is the median over ``--rounds``. CPU time is user + system time of the child
process. Writes ``OUT.json`` and the table of ``OUT.md`` (default
``benchmarks/results/whole_process``); in an existing ``OUT.md`` only the part
between the table's two marker lines is replaced, the prose around it is kept.
``--merge`` replaces only the cells measured in ``OUT.json`` and keeps the others,
each row with its own command and machine.

    python3 benchmarks/whole_process.py --rounds 3 --accel both     # every cell
    python3 benchmarks/whole_process.py --models cae --backends torch --merge
    python3 benchmarks/whole_process.py --models cae --epochs 1 --dataset digits \\
        --train-size 200 --rounds 1 --out runs/wp_smoke          # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKENDS = ("tensorflow", "jax", "torch")
MODELS = ("cae", "vae", "gan")
ACCEL = ("on", "off", "both")
# Who runs in each pair (or triple): the key of its times in a row's "rounds".
KERAS, KERAS_OFF, PEER = "keras", "keras_accel_off", "pytorch"
LABELS = {KERAS: "keras", KERAS_OFF: "keras, accel off", PEER: "plain PyTorch"}
# OpenMP's wait settings: none of the caller's reach either side (see the docstring).
OPENMP_WAIT = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
ACCEL_ENV = "UNSUPERVISED28_ACCEL"
TABLE_BEGIN = "<!-- table: written by benchmarks/whole_process.py -->"
TABLE_END = "<!-- end of table -->"


def commands(model: str, backend: str, args, out: str, accel: bool = True) -> tuple:
    """The Keras command and its plain-PyTorch peer, as argument lists."""
    py = sys.executable
    if model in ("cae", "vae"):
        epochs = str(args.epochs if model == "cae" else args.vae_epochs)
        keras_cmd = [py, os.path.join(ROOT, "main.py"), "--backend", backend,
                     *([] if accel else ["--no-accel"]), model, "--epochs", epochs,
                     *(["--patience", "10"] if model == "cae" else []),
                     # the peers' batch (the VAE's default is 64)
                     *(["--batch-size", "128"] if model == "vae" else []),
                     "--verbose", "0", "--out", out]
        if model == "cae":
            torch_cmd = [py, os.path.join(ROOT, "benchmarks", "plain_torch_cae.py"),
                         "--whole-process", "--epochs", epochs, "--batch-size", "128",
                         "--lr", "2e-3"]
        else:  # main.py vae's defaults are the script's
            torch_cmd = [py, os.path.join(ROOT, "benchmarks", "plain_torch_vae.py"),
                         "--epochs", epochs, "--out", out]
        for option, value in (("--train-size", args.train_size), ("--dataset", args.dataset)):
            if value:
                keras_cmd += [option, str(value)]
                torch_cmd += [option, str(value)]
        return keras_cmd, torch_cmd
    step = [py, os.path.join(ROOT, "benchmarks", "train_step_speed.py"), "--model", model,
            "--steps", str(args.steps), "--warmup", "0", "--batch-size", "128",
            "--width", str(args.gan_width), "--child"]
    return step + [backend], step + ["pytorch"]


def child_env(who: str, backend: str, environ=None) -> dict:
    """The environment of one side: the caller's, less its OpenMP wait settings;
    the Keras sides get the backend and the acceleration switch."""
    env = {k: v for k, v in (os.environ if environ is None else environ).items()
           if k not in OPENMP_WAIT and k != ACCEL_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    if who != PEER:
        env["KERAS_BACKEND"] = backend
    if who == KERAS_OFF:
        env[ACCEL_ENV] = "0"
    return env


def timed(cmd: list, env: dict) -> dict:
    """Runs ``cmd`` to the end; its wall time and its CPU time (user + system)."""
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


def sides(accel: str) -> tuple:
    return {"on": (KERAS, PEER), "off": (KERAS_OFF, PEER),
            "both": (KERAS, KERAS_OFF, PEER)}[accel]


def measure(model: str, backend: str, args) -> dict:
    """``--rounds`` alternating runs of each side; medians and the ratios to PyTorch."""
    rounds = []
    for r in range(args.rounds):
        times = {}
        with tempfile.TemporaryDirectory() as out:
            for who in sides(args.accel):
                keras_cmd, torch_cmd = commands(model, backend, args,
                                                os.path.join(out, who), accel=who == KERAS)
                cmd = torch_cmd if who == PEER else keras_cmd
                times[who] = timed(cmd, child_env(who, backend))
        rounds.append(times)
        print(f"  {model} {backend} run {r + 1} of {args.rounds}: " + ", ".join(
            f"{LABELS[who]} {t['wall_s']:.1f} s (cpu {t['cpu_s']:.1f})"
            for who, t in times.items()), flush=True)
    row = {"model": model, "backend": backend, "rounds": rounds,
           "pytorch_wall_s": statistics.median(p[PEER]["wall_s"] for p in rounds),
           "pytorch_cpu_s": statistics.median(p[PEER]["cpu_s"] for p in rounds)}
    for who, prefix in ((KERAS, ""), (KERAS_OFF, "accel_off_")):
        if who not in rounds[0]:
            continue
        row[f"{prefix}keras_wall_s"] = statistics.median(p[who]["wall_s"] for p in rounds)
        row[f"{prefix}keras_cpu_s"] = statistics.median(p[who]["cpu_s"] for p in rounds)
        for key in ("wall", "cpu"):
            row[f"{prefix}{key}_ratio"] = statistics.median(
                p[who][f"{key}_s"] / p[PEER][f"{key}_s"] for p in rounds)
    return row


def machine() -> dict:
    """What the figures depend on besides the code: the CPU, its load, the versions."""
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), model)
    except OSError:
        pass
    versions = {}
    for package in ("keras", "torch", "jax", "tensorflow"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu": model, "cpu_count": os.cpu_count(), "system": platform.platform(),
            "python": platform.python_version(), "versions": versions,
            "load_average_at_start": [round(x, 2) for x in load] if load else None}


def cell(value, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def markdown(rows: list) -> str:
    """The table, then each command with its cells and its machine."""
    lines = ["Ratio = Keras / plain PyTorch, wall and CPU time (user + system) of whole "
             "processes, medians over alternating runs (goal: wall ratio <= 1.10 with "
             "acceleration on). \"accel off\": the same Keras process on stock Keras "
             "(`main.py --no-accel`, `UNSUPERVISED28_ACCEL=0`); - where not measured.", "",
             "| model | backend | PyTorch wall s | Keras wall s | wall ratio | CPU ratio "
             "| accel off wall s | accel off wall ratio | accel off CPU ratio | runs |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        get = r.get
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['pytorch_wall_s']:.1f} | "
            f"{cell(get('keras_wall_s'), '{:.1f}')} | {cell(get('wall_ratio'), '{:.2f}x')} | "
            f"{cell(get('cpu_ratio'), '{:.2f}x')} | {cell(get('accel_off_keras_wall_s'), '{:.1f}')} | "
            f"{cell(get('accel_off_wall_ratio'), '{:.2f}x')} | "
            f"{cell(get('accel_off_cpu_ratio'), '{:.2f}x')} | {len(r['rounds'])}"
            + (f" (off: {len(r['accel_off_rounds'])})" if "accel_off_rounds" in r else "")
            + " |")
    lines.append("")
    runs = {}
    for r in rows:
        for prefix, label in (("", ""), ("accel_off_", " (accel off)")):
            if prefix and f"{prefix}command" not in r:
                continue
            key = (r.get(f"{prefix}command", "?"),
                   json.dumps(r.get(f"{prefix}machine"), sort_keys=True), r.get("peer", ""))
            runs.setdefault(key, []).append(f"{r['model']} {r['backend']}{label}")
    for (command, machine_json, peer), cells in runs.items():
        m = json.loads(machine_json) or {}
        where = ", ".join(str(x) for x in (
            m.get("cpu"), m.get("cpu_count") and f"{m['cpu_count']} cores",
            m.get("load_average_at_start") and f"load {m['load_average_at_start'][0]}",
            m.get("versions") and " ".join(f"{k} {v}" for k, v in m["versions"].items()),
            m.get("date")) if x)
        lines.append(f"- {', '.join(cells)}: `{command}`" + (f" ({where})" if where else "")
                     + (f"; peer: {peer}" if peer else ""))
    return "\n".join(lines) + "\n"


def with_table(old: str | None, table: str) -> str:
    """``old`` with the part between the markers replaced by ``table``; a new file
    (a title and the table) where ``old`` is missing or has no markers."""
    block = f"{TABLE_BEGIN}\n{table}{TABLE_END}"
    if old and TABLE_BEGIN in old and TABLE_END in old:
        head, rest = old.split(TABLE_BEGIN, 1)
        return head + block + rest.split(TABLE_END, 1)[1]
    return "# Whole processes against plain PyTorch loops\n\n" + block + "\n"


def merged(old_rows: list, new_rows: list) -> list:
    """``old_rows`` with each cell measured again replaced, in place; new cells last.
    A cell measured again on one side only (``--accel on`` or ``off``) keeps the
    other side's figures, their rounds and their command from the old row."""
    new = {(r["model"], r["backend"]): r for r in new_rows}
    rows = []
    for r in old_rows:
        n = new.pop((r["model"], r["backend"]), None)
        rows.append(r if n is None else with_other_side(r, n))
    return rows + list(new.values())


def with_other_side(old: dict, new: dict) -> dict:
    """``new``, plus the side of ``old`` that ``new`` did not measure."""
    def side(row, off):
        keys = {k: v for k, v in row.items() if k.startswith("accel_off_") == off}
        if off and "accel_off_rounds" not in keys and "accel_off_keras_wall_s" in keys:
            keys.update(accel_off_rounds=row["rounds"], accel_off_command=row["command"],
                        accel_off_machine=row.get("machine"))
        return keys
    if "keras_wall_s" not in new and "keras_wall_s" in old:  # off only: old's "on"
        return {**side(old, off=False), **side(new, off=True)}
    if "accel_off_keras_wall_s" not in new and "accel_off_keras_wall_s" in old:
        return {**new, **side(old, off=True)}
    return new


def write_atomic(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def parse(argv: list):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Both sides start without the caller's OMP_WAIT_POLICY and GOMP_SPINCOUNT: "
               "the plain loop runs on PyTorch's defaults, main.py applies its own.")
    parser.add_argument("--models", default=",".join(MODELS),
                        help="comma-separated, from cae,vae,gan (default: all)")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="comma-separated Keras backends (default: all three)")
    parser.add_argument("--accel", default="on", choices=ACCEL,
                        help="Keras with the toolkit's acceleration (on, the default), "
                             "on stock Keras (off: main.py --no-accel, "
                             "UNSUPERVISED28_ACCEL=0 for the step child), or both, each "
                             "beside the same plain loop (the table's 'accel off' columns)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating runs of each side per cell; the figures are "
                             "their medians (default 3, at most 50)")
    parser.add_argument("--epochs", type=int, default=3, help="CAE epochs (default 3)")
    parser.add_argument("--vae-epochs", type=int, default=2, help="VAE epochs (default 2)")
    parser.add_argument("--train-size", type=int, default=None,
                        help="CAE and VAE training images (default: the full 48 000)")
    parser.add_argument("--dataset", default="fashion_mnist",
                        help="the CAE's and VAE's data set (digits for a smoke run)")
    parser.add_argument("--steps", type=int, default=200,
                        help="GAN training steps per process (default 200)")
    parser.add_argument("--gan-width", type=int, default=16,
                        help="filters of the GAN's first layer (default 16, main.py gan's)")
    parser.add_argument("--merge", action="store_true",
                        help="keep the cells of OUT.json not measured in this run "
                             "(default: OUT.json holds this run's cells only)")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results",
                                                      "whole_process"),
                        help="writes OUT.json and the table in OUT.md "
                             "(default benchmarks/results/whole_process)")
    args = parser.parse_args(argv)
    args.models, args.backends = args.models.split(","), args.backends.split(",")
    bad = ([m for m in args.models if m not in MODELS]
           + [b for b in args.backends if b not in BACKENDS])
    counts = {"--rounds": (args.rounds, 50), "--epochs": (args.epochs, 1000),
              "--steps": (args.steps, 100_000), "--gan-width": (args.gan_width, 256),
              "--vae-epochs": (args.vae_epochs, 1000)}
    bad += [f"{name} {value} (1 to {top})" for name, (value, top) in counts.items()
            if not 1 <= value <= top]
    if bad:
        parser.exit(2, f"whole_process.py: error: bad value(s) {', '.join(map(str, bad))}; "
                       f"models: {','.join(MODELS)}; backends: {','.join(BACKENDS)}\n")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    host = dict(machine(), date=time.strftime("%Y-%m-%d"))
    # Paths in the repository as relative ones: no machine's folders in a result.
    command = " ".join(["python3 benchmarks/whole_process.py", *argv]).replace(ROOT + os.sep, "")
    rows = []
    for model in args.models:
        for backend in args.backends:
            rows.append(dict(measure(model, backend, args), command=command, machine=host,
                             peer="plain PyTorch on its defaults"))
    settings = {"rounds": args.rounds, "accel": args.accel, "epochs": args.epochs,
                "vae_epochs": args.vae_epochs, "train_size": args.train_size,
                "dataset": args.dataset, "steps": args.steps,
                "cpu_count": os.cpu_count(), "argv": " ".join(argv)}
    old = read(args.out + ".json") if args.merge else None
    if old:
        rows = merged(json.loads(old)["results"], rows)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_atomic(args.out + ".json", json.dumps({"settings": settings, "results": rows},
                                                indent=2) + "\n")
    table = markdown(rows)
    write_atomic(args.out + ".md", with_table(read(args.out + ".md"), table))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
