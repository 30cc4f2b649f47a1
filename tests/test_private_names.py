"""Private names of Keras and PyTorch are touched in two places only: the
acceleration package (accel/) and the start-up module (startup/). Anywhere
else a new Keras or PyTorch release could break the toolkit without a switch
to turn it off.

The check reads every module with ``ast``: an import of ``keras.src`` or of a
private ``torch._...`` module, an attribute ``x._name`` of anything but the
module's own ``self`` or ``cls``, and a ``getattr``/``hasattr``/``setattr`` of a
name that starts with an underscore.
"""

import ast
import os

import pytest

from conftest import ROOT

pytestmark = pytest.mark.backend_independent

FENCED = ("accel", "startup")  # where private names may be used
SKIPPED = ("tests", "runs", ".git")
# KerasTuner's (not Keras's) chief/worker plumbing has no public way to ask
# whether trials wait to be retried.
ALLOWED = {("tuning/distributed.py", "oracle._retry_queue")}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(source: str) -> list:
    """``(line, what)`` for every use of a private name in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("keras.src") or any(
                        _private(part) for part in alias.name.split(".")[1:]):
                    found.append((node.lineno, f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            parts = node.module.split(".")
            if (node.module.startswith("keras.src") or any(_private(p) for p in parts[1:])
                    or any(_private(a.name) for a in node.names)
                    and parts[0] in ("keras", "torch", "jax", "tensorflow")):
                found.append((node.lineno, f"from {node.module} import ..."))
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value.id if isinstance(node.value, ast.Name) else None
            if owner not in ("self", "cls"):
                found.append((node.lineno, f"{owner or '...'}.{node.attr}"))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "hasattr", "setattr") and len(node.args) > 1
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
              and _private(node.args[1].value)):
            found.append((node.lineno, f"{node.func.id}(..., {node.args[1].value!r})"))
    return found


def test_the_check_finds_each_kind_of_private_use():
    source = ("from keras.src import tree\nimport torch._dynamo\nx = model._layers\n"
              "getattr(layer, '_seed_generators', [])\nfrom torch import _C\n"
              "self._mine = 1\ny = obj.__class__\n")
    assert sorted(line for line, _ in private_uses(source)) == [1, 2, 3, 4, 5]


def test_private_names_only_in_the_acceleration_package_and_start_up():
    problems = []
    for folder, dirs, files in os.walk(ROOT):
        rel = os.path.relpath(folder, ROOT)
        top = rel.split(os.sep)[0]
        if top in FENCED or top in SKIPPED or top.startswith("."):
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if not d.startswith((".", "__pycache__"))]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path) as f:
                    for line, what in private_uses(f.read()):
                        if (os.path.relpath(path, ROOT), what) in ALLOWED:
                            continue
                        problems.append(f"{os.path.relpath(path, ROOT)}:{line}: {what}")
    assert not problems, "private names outside accel/ and startup/:\n" + "\n".join(problems)
