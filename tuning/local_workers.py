"""``tune --local-workers N``: KerasTuner's chief and N workers on this machine.

Starts ``main.py tune`` once as the chief (``--distributed chief``, on a free
port of 127.0.0.1) and N times as a worker (``--distributed worker``), each
worker on one GPU (``CUDA_VISIBLE_DEVICES``; none on a CPU-only machine), each
writing its output to its own log file. Waits for the chief; Ctrl-C (or any
failure) stops them all. N is at most the GPUs visible, or on a CPU-only
machine the CPU cores this process may use: more workers than that only
share the same devices, each slower, and hundreds of processes exhaust memory.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from cli.errors import UserError
from storage.run_folder import record, seal


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def local_gpus() -> list:
    """GPU ids this process may use: CUDA_VISIBLE_DEVICES, else ``nvidia-smi -L``.

    Read without importing a backend: jax would reserve most of every GPU's
    memory for this launcher, which trains nothing.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                 timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity, else the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_worker_count(workers: int, gpus: list | None = None) -> None:
    """UserError when ``workers`` exceeds the devices they would train on: the
    GPUs visible, or, without one, the CPU cores."""
    gpus = local_gpus() if gpus is None else gpus
    if gpus:
        most, what = len(gpus), f"the {len(gpus)} GPU(s) visible, one per worker"
    else:
        most = cpu_cores()
        what = f"the {most} CPU core(s) this process may use (no GPU visible), one per worker"
    if workers > most:
        raise UserError(f"--local-workers {workers}: at most {most}, {what}")


def without_option(argv: list, option: str) -> list:
    """``argv`` without ``option VALUE`` / ``option=VALUE``."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            kept.append(arg)
    return kept


def _stop(procs: dict, grace_s: float = 10.0) -> None:
    """SIGINT to every running child (they stop as after Ctrl-C), then kill."""
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace_s
    for p in procs.values():
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _last_line(path: str, start: str = "") -> str:
    with open(path, errors="replace") as f:
        lines = [line.strip() for line in f if line.strip() and line.startswith(start)]
    return lines[-1][:200] if lines else "(empty log)"


def run_local(main_argv: list, out: str, workers: int, poll_s: float = 0.5,
              worker_grace_s: float = 60.0) -> None:
    """Runs the chief and ``workers`` workers; returns when the chief is done.

    Args:
        main_argv: ``main.py``'s arguments for this search (the ``tune`` task and
            its options, without ``--local-workers``).
        out: the run folder: the chief's results; ``workers/`` holds each
            process's log and each worker's own run folder.
        workers: how many workers.

    Raises:
        UserError: more workers than devices (see :func:`check_worker_count`).
        RuntimeError: the chief failed, or every worker ended while the chief
            still waited for trials; the message names the log to read.
        KeyboardInterrupt: after stopping every process.
    """
    gpus = local_gpus()
    check_worker_count(workers, gpus)  # before any process starts
    folder = os.path.join(out, "workers")
    record(folder, "folders")  # logs and the workers' runs: all this launcher's
    os.makedirs(folder, exist_ok=True)
    oracle = f"127.0.0.1:{free_port()}"
    main_py = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "main.py")
    roles = {"chief": ["--distributed", "chief", "--out", out]}
    for i in range(workers):
        name = f"worker{i}"
        roles[name] = ["--distributed", "worker", "--tuner-id", name,
                       "--out", os.path.join(folder, name)]
    procs, logs = {}, {}
    try:
        for name, extra in roles.items():
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            if name != "chief":  # one device each; the chief trains nothing
                i = int(name[len("worker"):])
                env["CUDA_VISIBLE_DEVICES"] = gpus[i] if gpus else ""
            else:
                env["CUDA_VISIBLE_DEVICES"] = ""
            logs[name] = os.path.join(folder, f"{name}.log")
            with open(logs[name], "w") as log:
                procs[name] = subprocess.Popen(
                    [sys.executable, main_py, *main_argv, "--oracle", oracle, *extra],
                    stdout=log, stderr=subprocess.STDOUT, env=env)
            device = env["CUDA_VISIBLE_DEVICES"] and f"GPU {env['CUDA_VISIBLE_DEVICES']}"
            print(f"started {name} (pid {procs[name].pid}, {device or 'CPU'}), log "
                  f"{logs[name]}", flush=True)
        chief = procs["chief"]
        workers_gone_at = None
        while chief.poll() is None:
            time.sleep(poll_s)
            if all(p.poll() is not None for n, p in procs.items() if n != "chief"):
                workers_gone_at = workers_gone_at or time.monotonic()
                if time.monotonic() - workers_gone_at > worker_grace_s:
                    failed = [n for n, p in procs.items() if n != "chief" and p.returncode]
                    name = failed[0] if failed else "worker0"
                    raise RuntimeError(f"every worker ended but the chief still waits for "
                                       f"trials; {name}: {_last_line(logs[name])} "
                                       f"(see {logs[name]})")
        if chief.returncode:
            raise RuntimeError(f"the chief failed: {_last_line(logs['chief'])} "
                               f"(see {logs['chief']})")
        print(f"chief: {_last_line(logs['chief'], 'best configuration')}", flush=True)
        for p in procs.values():  # the chief told them that no trials are left
            try:
                p.wait(worker_grace_s)
            except subprocess.TimeoutExpired:
                break  # stopped below
    finally:
        _stop(procs)
    seal(out)  # every process is done with workers/: list what they wrote, file by file
