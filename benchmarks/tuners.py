"""Equal-budget comparison of the three tuners on real Fashion-MNIST, and the
cost of k-fold cross-validation.

Runs ``main.py tune`` once per tuner with the same trial and epoch budget
(hold-out objective), then once more with ``--folds K`` (random search) to
measure the k-fold overhead in wall time. Writes ``tuners.json`` and prints a
table. The full benchmark (20 trials x 5 epochs on 48 000 images):

    python benchmarks/tuners.py --max-trials 20 --epochs 5

A reduced one that fits a shared 2-core machine:

    nice -n 5 python benchmarks/tuners.py --train-size 12000 --max-trials 8 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def run_tune(out: str, tuner: str, args, folds: int = 1) -> dict:
    cmd = [sys.executable, os.path.join(ROOT, "main.py"), "tune", "--tuner", tuner,
           "--max-trials", str(args.max_trials), "--epochs", str(args.epochs),
           "--folds", str(folds), "--final-epochs", str(args.final_epochs),
           "--seed", str(args.seed), "--verbose", "0", "--out", out]
    if args.train_size:
        cmd += ["--train-size", str(args.train_size)]
    print("$", " ".join(cmd[1:]), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    wall = time.perf_counter() - start
    with open(os.path.join(out, "metrics.json")) as f:
        m = json.load(f)
    return {"tuner": tuner, "folds": folds, "best_val_mse": m["best_val_mse"],
            "best_val_mse_std": m["best_val_mse_std"], "best_trial": m["best_trial"],
            "trials": m["completed_trials"], "trial_epochs_total": m["trial_epochs_total"],
            "search_wall_s": m["search_wall_s_this_run"], "total_wall_s": wall,
            "test_mse_retrained": m["test_mse"], "backend": m["backend"],
            "train_images": m["train_images"], "best_hyperparameters": m["best_hyperparameters"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-size", type=int, default=None,
                        help="training images (default all 48 000)")
    parser.add_argument("--max-trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--folds", type=int, default=3, help="k for the overhead run; 1 skips")
    parser.add_argument("--final-epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tuners", default="random,bayesian,hyperband")
    parser.add_argument("--out", default=os.path.join("runs", "benchmarks", "tuners"))
    args = parser.parse_args()

    rows = []
    for tuner in args.tuners.split(","):
        rows.append(run_tune(os.path.join(args.out, tuner), tuner, args))
    if args.folds > 1:
        rows.append(run_tune(os.path.join(args.out, f"random_{args.folds}fold"), "random",
                             args, folds=args.folds))
    holdout = next((r for r in rows if r["tuner"] == "random" and r["folds"] == 1), None)
    kfold = next((r for r in rows if r["folds"] > 1), None)
    result = {"settings": vars(args), "runs": rows}
    if holdout and kfold:
        result["kfold_overhead"] = kfold["search_wall_s"] / holdout["search_wall_s"]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "tuners.json"), "w") as f:
        json.dump(result, f, indent=2)

    print(f"\n{'tuner':<10} {'folds':>5} {'best val MSE':>13} {'trials':>6} "
          f"{'epochs':>7} {'search s':>9}")
    for r in rows:
        print(f"{r['tuner']:<10} {r['folds']:>5} {r['best_val_mse']:>13.5f} {r['trials']:>6} "
              f"{r['trial_epochs_total']:>7.0f} {r['search_wall_s']:>9.0f}")
    if "kfold_overhead" in result:
        print(f"{args.folds}-fold search took {result['kfold_overhead']:.2f}x the hold-out "
              f"search's wall time")
    print(f"written to {os.path.join(args.out, 'tuners.json')}")


if __name__ == "__main__":
    main()
