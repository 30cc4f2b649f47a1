"""Whether the toolkit's acceleration is on: the user's switch and the versions
it was tested with (:mod:`accel` holds the speed paths, :mod:`startup` the
process-wide settings; both ask :func:`enabled`)."""

from __future__ import annotations

import importlib.metadata
import os
import sys

ENV = "UNSUPERVISED28_ACCEL"
OFF_VALUES = ("0", "false", "no", "off")
# The versions the speed paths were written and tested against (major.minor):
# other versions run stock Keras. PyTorch matters on the torch backend only.
TESTED = {"keras": ("3.15",), "torch": ("2.13",)}

_warned = set()


def _version(package: str) -> str | None:
    module = sys.modules.get(package)
    version = getattr(module, "__version__", None)
    if version is None:
        try:
            version = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None
    return version


def _untested(package: str) -> str | None:
    """``"keras 3.16.0"`` when the installed ``package`` is not a tested version."""
    version = _version(package)
    if version is None:
        return None
    if ".".join(version.split("+")[0].split(".")[:2]) in TESTED[package]:
        return None
    return f"{package} {version}"


def switched_off_by_user() -> bool:
    return os.environ.get(ENV, "1").strip().lower() in OFF_VALUES


def turn_off() -> None:
    """Stock Keras from now on, in this process and the processes it starts."""
    os.environ[ENV] = "0"


def untested_versions(backend: str | None = None) -> list:
    """The installed versions the speed paths were not tested with, for ``backend``
    (default: Keras's backend as ``KERAS_BACKEND`` names it)."""
    backend = backend or os.environ.get("KERAS_BACKEND", "tensorflow")
    packages = ["keras"] + (["torch"] if backend == "torch" else [])
    return [found for found in map(_untested, packages) if found]


def enabled(backend: str | None = None) -> bool:
    """Whether the speed paths run: not switched off, and tested versions.

    On an untested version, says once on stderr that it runs stock Keras."""
    if switched_off_by_user():
        return False
    untested = untested_versions(backend)
    if untested:
        key = ", ".join(untested)
        if key not in _warned:
            _warned.add(key)
            print(f"note: acceleration is off: it was tested with keras "
                  f"{'/'.join(TESTED['keras'])} and torch {'/'.join(TESTED['torch'])}, "
                  f"this is {key}; running stock Keras", file=sys.stderr, flush=True)
        return False
    return True
