"""KerasTuner's chief/worker mode: one chief runs the oracle, workers run trials.

KerasTuner reads three environment variables when a tuner is created:
``KERASTUNER_TUNER_ID`` ("chief", or a unique worker id), ``KERASTUNER_ORACLE_IP``
and ``KERASTUNER_ORACLE_PORT``. :func:`configure` sets them from the command
line; :func:`serve` runs the chief's gRPC oracle until every worker has been
told to stop and no trial is running. It replaces KerasTuner's
``oracle_chief.start_server``, which polls for the end every 20 s and never
reports a port it could not bind.
"""

from __future__ import annotations

import os
import socket
import time

from cli.errors import UserError

ROLES = ("chief", "worker")


def parse_address(text: str) -> tuple:
    """``HOST:PORT`` -> (host, port); argparse type."""
    import argparse

    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not HOST:PORT, e.g. 127.0.0.1:8000 (port 1-65535)")
    return host, int(port)


def check_port_free(host: str, port: int) -> None:
    """Raises UserError when the chief could not listen on ``host:port``."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                       socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise UserError(f"--oracle {host}:{port}: cannot listen there ({e.strerror}); "
                            f"give a free port or stop what holds it") from None


def wait_for_chief(host: str, port: int, timeout_s: float, poll_s: float = 0.5) -> None:
    """Returns once the chief accepts connections at ``host:port``; UserError after
    ``timeout_s`` seconds. (KerasTuner's gRPC client would wait forever.)"""
    print(f"worker: waiting for the chief at {host}:{port} (up to {timeout_s:g} s)",
          flush=True)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(0.1, poll_s)):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise UserError(f"--oracle {host}:{port}: no chief answered within "
                                f"{timeout_s:g} s; start `tune --distributed chief --oracle "
                                f"{host}:{port}` first, or raise --oracle-timeout") from None
            time.sleep(poll_s)


def configure(role: str, address: tuple, tuner_id: str | None) -> str:
    """Sets KerasTuner's environment for ``role``; returns the tuner id.

    Must run before the tuner is created: KerasTuner reads the variables in
    ``BaseTuner.__init__`` (a worker's oracle becomes a gRPC client there).
    """
    if role not in ROLES:
        raise UserError(f"unknown --distributed role {role!r}; valid: {', '.join(ROLES)}")
    host, port = address
    if role == "chief":
        tuner_id = "chief"
    else:
        tuner_id = tuner_id or f"worker-{socket.gethostname()}-{os.getpid()}"
        if "chief" in tuner_id:  # KerasTuner treats any id containing "chief" as the chief
            raise UserError(f"--tuner-id {tuner_id!r} contains 'chief'; give workers "
                            f"other ids, e.g. worker0")
    os.environ["KERASTUNER_TUNER_ID"] = tuner_id
    os.environ["KERASTUNER_ORACLE_IP"] = host
    os.environ["KERASTUNER_ORACLE_PORT"] = str(port)
    return tuner_id


def serve(tuner, poll_s: float = 0.2) -> None:
    """Runs the chief's oracle over gRPC until the search is over.

    Returns once a worker has been told that no trials are left, no trial is
    running and every worker that asked for a trial has been told to stop.
    """
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer, exit_chief

    host, port = os.environ["KERASTUNER_ORACLE_IP"], os.environ["KERASTUNER_ORACLE_PORT"]
    oracle = tuner.oracle
    if (oracle.remaining_trials() == 0 and not oracle.ongoing_trials
            and not oracle._retry_queue):
        print("chief: the search is already complete", flush=True)
        return  # a resumed, finished search: no worker will come to end it
    tuner.save()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = OracleServicer(tuner.oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:
        bound = 0
    if not bound:
        raise UserError(f"--oracle {host}:{port}: cannot listen there; give a free port")
    server.start()
    print(f"chief: oracle listening on {host}:{port}; start workers with "
          f"--distributed worker --oracle {host}:{port}", flush=True)
    try:
        while not (servicer.stop_triggered and exit_chief(tuner.oracle)):
            time.sleep(poll_s)
    finally:
        server.stop(grace=1).wait()
