#!/usr/bin/env python3
"""Levers for Keras-on-torch speed, each a whole child process.

Fits the CAE's layers (models/cae.py's default widths) on real Fashion-MNIST
images with ``KERAS_BACKEND=torch`` in one of these variants, and reports the
wall and CPU seconds of the timed fit (after one untimed warm-up epoch, which
holds ``torch.compile``'s compilation when ``--jit`` is on):

- ``base``: channels-last (Keras's default), eager, ``OMP_WAIT_POLICY=PASSIVE``;
- ``channels_first``: the same layers built with
  ``keras.config.set_image_data_format("channels_first")``, so Keras's torch
  convolutions skip their NHWC <-> NCHW transposes;
- ``jit``: ``compile(jit_compile=True)``, which is ``torch.compile`` on torch;
- ``omp_active``: base without ``OMP_WAIT_POLICY`` (libgomp's threads spin while
  they wait: faster on an idle machine, 10-25x slower beside another busy process);
- ``omp_spin_short``: no ``OMP_WAIT_POLICY`` but ``GOMP_SPINCOUNT=--spin-count``
  (default 10000): threads spin that many times, not libgomp's 300 000, before
  they sleep.

Variants run in turn (base, v1, v2, ..., base, v1, ...) so a busy minute of a
shared machine hits all; medians over ``--rounds``. Writes ``--out`` (default
``runs/torch_levers.json``); the runs kept as the benchmark's result, each with its
command and machine, are in ``benchmarks/results/torch_levers.{json,md}``.

    python3 benchmarks/torch_levers.py --rounds 3 --images 7680 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ("base", "channels_first", "jit", "omp_active", "omp_spin_short")


def child(variant: str, images: int, epochs: int) -> dict:
    sys.path.insert(0, ROOT)
    import keras
    import numpy as np

    from data.datasets import load_dataset

    first = variant == "channels_first"
    keras.config.set_image_data_format("channels_first" if first else "channels_last")
    x = load_dataset("fashion_mnist", train_limit=images).x_train
    if first:
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    layers = keras.layers
    inputs = keras.Input(x.shape[1:])
    h = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(inputs)
    h = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(h)
    h = layers.Conv2D(128, 3, strides=2, padding="valid", activation="relu")(h)
    h = layers.Dense(10)(layers.Dense(256, activation="relu")(layers.Flatten()(h)))
    h = layers.Dense(3 * 3 * 128, activation="relu")(layers.Dense(256, activation="relu")(h))
    h = layers.Reshape((128, 3, 3) if first else (3, 3, 128))(h)
    h = layers.Conv2DTranspose(64, 3, strides=2, padding="valid", activation="relu")(h)
    h = layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu")(h)
    outputs = layers.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid")(h)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(2e-3), "mse", jit_compile=variant == "jit")
    start = time.perf_counter()
    model.fit(x, x, batch_size=128, epochs=1, verbose=0)
    warmup = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(x, x, batch_size=128, epochs=epochs, verbose=0)
    return {"warmup_s": warmup, "wall_s": time.perf_counter() - start,
            "cpu_s": time.process_time() - cpu}


def run(variant: str, args) -> dict:
    env = dict(os.environ, KERAS_BACKEND="torch", OMP_WAIT_POLICY="PASSIVE")
    if variant in ("omp_active", "omp_spin_short"):
        env.pop("OMP_WAIT_POLICY")
    if variant == "omp_spin_short":
        env["GOMP_SPINCOUNT"] = str(args.spin_count)
    cmd = [sys.executable, __file__, "--child", variant, "--images", str(args.images),
           "--epochs", str(args.epochs)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, of {', '.join(VARIANTS)} (default all)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--images", type=int, default=7680,
                        help="training images per epoch (default 7680: 60 steps)")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (default 2)")
    parser.add_argument("--spin-count", type=int, default=10000,
                        help="GOMP_SPINCOUNT of the omp_spin_short variant (default 10000)")
    parser.add_argument("--out", default=os.path.join("runs", "torch_levers.json"),
                        help="the JSON written (default runs/torch_levers.json)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.images, args.epochs)))
        return
    variants = args.variants.split(",")
    for v in variants:
        if v not in VARIANTS:
            parser.error(f"--variants: unknown {v!r}; valid: {', '.join(VARIANTS)}")
    runs = {v: [] for v in variants}
    for r in range(args.rounds):
        for v in variants:
            runs[v].append(run(v, args))
            print(f"run {r + 1} {v:15s} " + " ".join(
                f"{k} {val:7.2f}" for k, val in runs[v][-1].items()), flush=True)
    load = os.getloadavg()
    summary = {v: {k: statistics.median(x[k] for x in rs) for k in rs[0]}
               for v, rs in runs.items()}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"settings": dict(vars(args), out=os.path.relpath(args.out, ROOT)), "load_average_at_end": load,
                   "median": summary, "runs": runs}, f, indent=2)
    os.replace(tmp, args.out)
    print(f"median over {args.rounds} rounds (load average at the end {load[0]:.1f}):")
    for v, m in summary.items():
        print(f"  {v:15s} wall {m['wall_s']:7.2f} s  cpu {m['cpu_s']:7.2f} s  "
              f"warm-up {m['warmup_s']:7.2f} s")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
