"""Memory across the trials of a `tune` search: the resident set size after each
trial and the process's peak, to check that each trial frees its models.

Runs the search in this process (the same hypermodel, tuner and trial loop as
``main.py tune``), reading the RSS from ``/proc/self/status`` (Linux) after every
trial and the peak from ``resource.getrusage``. Writes its cell (model and
backend) into ``benchmarks/results/tune_memory.json``, keeping the other cells:

    KERAS_BACKEND=jax python3 benchmarks/tune_memory.py --model gan --trials 20
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gan", choices=("cae", "vae", "gan"))
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--train-size", type=int, default=128)
    parser.add_argument("--fid-samples", type=int, default=128)
    cli = parser.parse_args()

    from runtime.quiet import import_tensorflow_quietly
    import_tensorflow_quietly()
    import keras

    from data.arguments import DataConfig, load_data
    from runtime.backend import seed_everything
    from storage.run_folder import OutputConfig
    from tasks import tune
    from tuning.kfold import KFoldTrialMixin
    from tuning.tuners import make_tuner

    out = tempfile.mkdtemp(prefix="tune_memory_")
    config = tune.TuneConfig(
        data=DataConfig(dataset="digits", train_size=cli.train_size, test_size=64),
        search=tune.SearchConfig(model=cli.model, space="small", epochs=1),
        inputs=tune.ModelInputs(fid_samples=cli.fid_samples), output=OutputConfig(out=out))
    seed_everything(0)
    data = load_data(config.data)
    hypermodel = tune.make_hypermodel(config, data, out)
    samples = []
    start = time.perf_counter()

    backend = keras.backend.backend()
    path = os.path.join(ROOT, "benchmarks", "results", "tune_memory.json")
    rss_before = rss_mib()

    def record(trial_id, metrics):
        samples.append({"trial": int(trial_id), "rss_mib": round(rss_mib(), 1),
                        "peak_rss_mib": round(peak_rss_mib(), 1),
                        "seconds": round(time.perf_counter() - start, 1)})
        print(samples[-1], flush=True)
        write(summary(samples))  # after every trial: a timed-out run still reports

    def summary(samples):
        half = max(1, len(samples) // 2)
        return {
            "model": cli.model, "backend": backend, "trials": len(samples),
            "trials_asked": cli.trials, "train_images": len(data.x_train), "space": "small",
            "epochs_per_trial": 1, "rss_before_search_mib": round(rss_before, 1),
            "rss_after_trial_1_mib": samples[0]["rss_mib"],
            "rss_after_last_trial_mib": samples[-1]["rss_mib"],
            # Growth per trial over the second half (the first trials warm caches up).
            "rss_growth_per_trial_second_half_mib": round(
                (samples[-1]["rss_mib"] - samples[half - 1]["rss_mib"])
                / max(1, len(samples) - half), 2),
            "peak_rss_mib": samples[-1]["peak_rss_mib"], "per_trial": samples,
            "command": f"KERAS_BACKEND={backend} python3 benchmarks/tune_memory.py --model "
                       f"{cli.model} --trials {cli.trials} --train-size {cli.train_size} "
                       f"--fid-samples {cli.fid_samples}",
        }

    def write(result):
        try:
            with open(path) as f:
                cells = json.load(f)["cells"]
        except FileNotFoundError:
            cells = []
        cell = (result["model"], result["backend"])
        cells = [c for c in cells if (c["model"], c["backend"]) != cell] + [result]
        with open(path + ".tmp", "w") as f:
            json.dump({"cells": cells}, f, indent=2)
            f.write("\n")
        os.replace(path + ".tmp", path)

    tuner = make_tuner("random", hypermodel,
                       objective=tune.kt_objective(hypermodel.objective, hypermodel.direction),
                       max_trials=cli.trials, directory=os.path.join(out, "tuner"),
                       project_name=cli.model, seed=0, tuner_class=KFoldTrialMixin,
                       folds=1, tensorboard_dir=os.path.join(out, "tensorboard"),
                       on_trial_done=record, fit_verbose=0)
    x, y, val = hypermodel.search_data(data)
    tuner.search(x, y, validation_data=val, epochs=1, verbose=0)
    print({k: v for k, v in summary(samples).items() if k != "per_trial"})


if __name__ == "__main__":
    main()
