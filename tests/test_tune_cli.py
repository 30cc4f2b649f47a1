"""main.py tune: end to end with resume, bad input, and a chief with two workers."""

import csv
import json
import os
import socket
import subprocess
import sys

import pytest

from conftest import ROOT, run_main
from test_cli import assert_one_line_error

TINY = ["--dataset", "digits", "--train-size", "48", "--test-size", "16", "--space", "small",
        "--epochs", "1", "--final-epochs", "1", "--verbose", "0"]


def read_trials(out):
    with open(os.path.join(out, "trials.csv")) as f:
        return list(csv.DictReader(f))


def hparams_sessions(logdir):
    """Trial ids of the TensorBoard HParams sessions under ``logdir``."""
    from tensorboard.backend.event_processing import event_multiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2

    mux = event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    sessions = set()
    for run, tags in mux.PluginRunToTagToContent("hparams").items():
        for content in tags.values():
            data = plugin_data_pb2.HParamsPluginData.FromString(content)
            if data.WhichOneof("data") == "session_start_info":
                sessions.add(run)
    return sessions


@pytest.mark.slow
def test_search_writes_results_and_resumes(tmp_path):
    out = tmp_path / "run"
    first = run_main("tune", *TINY, "--folds", "2", "--max-trials", "1", "--out", str(out))
    assert first.returncode == 0, first.stderr
    for name in ("best_hyperparameters.json", "trials.csv", "trials.png", "hyperparameters.png",
                 "best.keras", "metrics.json", "best_training.png"):
        assert (out / name).is_file(), name
    (row,) = read_trials(out)
    assert row["status"] == "COMPLETED" and row["folds"] == "2" and float(row["seconds"]) > 0
    best = json.loads((out / "best_hyperparameters.json").read_text())
    assert best["val_mse"] == pytest.approx(float(row["objective"]))
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 < metrics["test_mse"] < 0.3 and metrics["best_hyperparameters"] == \
        best["hyperparameters"]

    second = run_main("tune", *TINY, "--folds", "2", "--max-trials", "2", "--out", str(out))
    assert second.returncode == 0, second.stderr
    assert "resuming the search" in second.stdout and "1 trials finished" in second.stdout
    rows = read_trials(out)
    assert [r["trial_id"] for r in rows] == ["0", "1"]
    assert rows[0]["objective"] == row["objective"]  # the finished trial was not rerun
    trial_lines = [line for line in second.stdout.splitlines() if line.startswith("trial ")]
    assert len(trial_lines) == 1 and trial_lines[0].startswith("trial 1: val_mse")
    assert hparams_sessions(out / "tensorboard") == {"0", "1"}


@pytest.mark.backend_independent
class TestBadInput:
    @pytest.mark.parametrize("args, fragments", [
        (["--tuner", "grid"], ["--tuner", "'grid'", "hyperband"]),
        (["--model", "vgg"], ["--model", "'vgg'", "cae"]),
        (["--folds", "0"], ["--folds", "0 is not positive"]),
        (["--max-trials", "0"], ["--max-trials", "0 is not positive"]),
        (["--oracle", "nohost"], ["--oracle", "HOST:PORT"]),
    ])
    def test_argument_errors(self, args, fragments):
        assert_one_line_error(run_main("tune", *args), *fragments)

    def test_occupied_oracle_port(self, tmp_path):
        with socket.socket() as held:
            held.bind(("127.0.0.1", 0))
            held.listen()
            port = held.getsockname()[1]
            result = run_main("tune", *TINY, "--distributed", "chief", "--oracle",
                              f"127.0.0.1:{port}", "--out", str(tmp_path))
        assert_one_line_error(result, f"127.0.0.1:{port}", "cannot listen")

    def test_worker_needs_oracle(self, tmp_path):
        result = run_main("tune", *TINY, "--distributed", "worker", "--out", str(tmp_path))
        assert_one_line_error(result, "--distributed worker needs --oracle")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.backend_independent
@pytest.mark.slow
def test_chief_and_two_workers_run_every_trial_once(tmp_path):
    oracle = f"127.0.0.1:{free_port()}"
    common = [sys.executable, os.path.join(ROOT, "main.py"), "tune", *TINY,
              "--max-trials", "4", "--oracle", oracle]
    procs = {}
    try:
        procs["chief"] = subprocess.Popen(
            [*common, "--distributed", "chief", "--out", str(tmp_path / "chief")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for w in ("worker0", "worker1"):
            procs[w] = subprocess.Popen(
                [*common, "--distributed", "worker", "--tuner-id", w,
                 "--out", str(tmp_path / w)],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        outputs = {name: p.communicate(timeout=240) for name, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    for name, p in procs.items():
        assert p.returncode == 0, f"{name}: {outputs[name][1][-2000:]}"
    ran = [line.split()[2].rstrip(":") for w in ("worker0", "worker1")
           for line in outputs[w][0].splitlines() if line.startswith(f"[{w}] trial ")]
    assert sorted(ran) == ["0", "1", "2", "3"]  # every trial, each exactly once
    rows = read_trials(tmp_path / "chief")
    assert [r["trial_id"] for r in rows] == ["0", "1", "2", "3"]
    assert all(r["status"] == "COMPLETED" for r in rows)
    assert (tmp_path / "chief" / "best.keras").is_file()
