"""`python main.py doctor`: the backend, the versions and the devices each
installed Keras backend sees.

Each backend is probed in its own Python process, so a broken install (a CUDA
library that fails to load, a missing package) is reported on its line and
does not stop the others from being probed. The exit code is 2 when the
backend in use, or every backend, cannot run (the last line says which works).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys

from cli.args import positive_float
from cli.errors import UserError
from cli.options import add_config, from_args, option

HELP = "print the Keras backend, package versions and the devices each backend sees"

BACKENDS = ("tensorflow", "jax", "torch")
MAX_TIMEOUT = 3600.0  # a probe that has not answered in an hour never will
PACKAGES = ("keras", "tensorflow", "jax", "jaxlib", "torch", "keras_tuner")

# Run in a child process with KERAS_BACKEND set; prints one JSON line.
_PROBE = r"""
import json, os, sys
backend = os.environ["KERAS_BACKEND"]
devices = []
if backend == "tensorflow":
    import tensorflow as tf
    devices = [f"{d.device_type}:{d.name.rsplit(':', 1)[-1]}"
               for d in tf.config.list_physical_devices()]
    cuda = tf.test.is_built_with_cuda()
elif backend == "jax":
    import jax
    devices = [f"{d.platform.upper()}:{d.id} {d.device_kind}" for d in jax.devices()]
    import importlib.util
    cuda = importlib.util.find_spec("jax_cuda12_plugin") is not None
else:
    import torch
    devices = ["CPU:0"] + [f"GPU:{i} {torch.cuda.get_device_name(i)}"
                           for i in range(torch.cuda.device_count())]
    cuda = torch.version.cuda is not None
import keras
keras.ops.add(1, 1)  # the backend computes
print(json.dumps({"devices": devices, "built_with_cuda": bool(cuda),
                  "keras_backend": keras.backend.backend()}))
"""


@dataclasses.dataclass
class DoctorConfig:
    """How long each probe may take, and how the findings are printed."""

    timeout: float = option(120, type=positive_float, metavar="S",
                            help=f"seconds each backend's probe may take, at most "
                                 f"{MAX_TIMEOUT:g}")
    json: bool = option(False, action="store_true",
                        help="print one JSON object instead of the table")

    def __post_init__(self):
        if not 0 < self.timeout <= MAX_TIMEOUT:
            raise ValueError(f"--timeout {self.timeout:g}: give seconds in (0, "
                             f"{MAX_TIMEOUT:g}]")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser, DoctorConfig, task="doctor")


def package_versions() -> dict:
    """Installed version of each package, or None; read without importing them."""
    from importlib import metadata

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def probe(backend: str, timeout: float) -> dict:
    """What ``backend`` sees, from a child process: ``devices`` or ``error``."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"no answer within {timeout:g} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode == 0 and lines:
        return json.loads(lines[-1])
    errors = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return {"error": errors[-1][:200] if errors else f"exit code {done.returncode}"}


CONFIG = DoctorConfig


def run(args) -> None:
    diagnose(from_args(DoctorConfig, args))


def diagnose(config: DoctorConfig) -> None:
    """Prints the backend, the package versions and what each backend sees;
    UserError (exit 2) when the backend in use or every backend cannot run."""
    versions = package_versions()
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    probes = {}
    for name in BACKENDS:
        package = "torch" if name == "torch" else name
        probes[name] = (probe(name, config.timeout) if versions.get(package)
                        else {"error": f"{package} is not installed"})
    if config.json:
        print(json.dumps({"backend": backend, "python": sys.version.split()[0],
                          "versions": versions, "backends": probes}, indent=2))
    else:
        print(f"backend: {backend} (KERAS_BACKEND or --backend)")
        print(f"python {sys.version.split()[0]}; " + ", ".join(
            f"{k} {v or 'not installed'}" for k, v in versions.items()))
        for name, found in probes.items():
            if "error" in found:
                print(f"{name:>10}: cannot run: {found['error']}")
            else:
                cuda = "CUDA build" if found["built_with_cuda"] else "CPU build"
                print(f"{name:>10}: {', '.join(found['devices'])} ({cuda})")
    check_usable(backend, probes)
    return None


def check_usable(backend: str, probes: dict) -> None:
    """UserError when no backend can run, or the one in use cannot."""
    working = [name for name, found in probes.items() if "error" not in found]
    if not working:
        raise UserError(f"no Keras backend can run here ({', '.join(probes)} all failed, "
                        f"see above); pip install -r requirements.txt")
    if backend in probes and backend not in working:
        raise UserError(f"the backend in use, {backend}, cannot run (see above); use "
                        f"{' or '.join(f'--backend {b}' for b in working)}")
