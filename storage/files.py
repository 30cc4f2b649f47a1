"""Atomic writes: every JSON, text and figure goes to a temporary file that is then
renamed, so a crash never leaves half a file; each is listed in its run folder's
marker first (``storage.run_folder.record``)."""

from __future__ import annotations

import json
import math
import os


def _atomic(path: str, write) -> str:
    """Calls ``write(tmp_path)`` then renames onto ``path``: never half-written.

    ``path`` is first listed in the marker of the run folder that holds it (if
    any), so that ``--overwrite`` later deletes it, and nothing it did not write."""
    from storage.run_folder import record

    record(path)
    folder, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    # Keep the extension last: Keras and matplotlib infer the format from it.
    tmp = os.path.join(folder, f".{stem}.tmp{os.getpid()}{ext}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_json(path: str, obj) -> str:
    """Strict JSON (RFC 8259): a NaN or infinite number is written as null."""
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(_finite_or_null(obj), f, indent=2, allow_nan=False)
            f.write("\n")
    return _atomic(path, write)


def write_text(path: str, text: str) -> str:
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    return _atomic(path, write)


def save_figure(fig, path: str) -> str:
    import matplotlib.pyplot as plt

    _atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path


def _finite_or_null(obj):
    """``obj`` with NumPy values made Python ones and NaN/infinity made None:
    Python's json would write ``NaN``/``Infinity``, which JSON parsers refuse."""
    if isinstance(obj, dict):
        return {k: _finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_null(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "tolist") and type(obj).__module__ == "numpy":  # scalar or array
        return _finite_or_null(obj.tolist())
    return obj


def read_json(path: str):
    with open(path) as f:
        return json.load(f)
