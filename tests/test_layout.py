"""The layout is the architecture: imports point down the floors, never up or
sideways, and ``tasks/`` holds the commands only (see docs/architecture.md)."""

import ast
import os
import textwrap

import pytest

from conftest import ROOT

pytestmark = pytest.mark.backend_independent

# Each package's floor: a module may import its own package and any package on a
# lower floor; never one on its own floor (sideways) or above.
FLOORS = {
    "cli": 0,                     # the one-line error, argparse types, typed option fields
    "runtime": 1,                 # backend and seeding, compute, the acceleration switch
    "data": 2, "storage": 2,      # datasets and their options; atomic files, run folders
    "configs": 2,                 # the models' typed configs, without Keras
    "accel": 2,                   # backend speed paths applied to model objects
    "models": 3, "plots": 3,      # networks, samplers; shared figures
    "startup": 3,                 # process-wide settings, made once by main.py
    "evaluation": 4,              # metrics, sample quality, headlines
    "training": 5,                # CAE / classifier training, sampler sources, callbacks
    "tuning": 6,                  # KerasTuner hypermodels and tuners
    "tasks": 7,                   # the commands
    "main": 8,                    # the command line
    "benchmarks": 9,
    "tests": 10,
}
TASKS_SHARED = {"registry"}  # the modules of tasks/ every command may import


def python_files(root):
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__pycache__"))
                         and d not in ("runs", "fixtures"))
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.relpath(os.path.join(folder, name), root)


def module_name(path):
    parts = path[:-3].split(os.sep)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(tree, module, is_package):
    """Every module an ``import`` in ``tree`` names, at module level or inside a
    function, with ``from package import name`` read as ``package.name``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                yield node.lineno, f"{target}.{alias.name}"


def command_of(module):
    """``latent`` for ``tasks.latent.views``; None for tasks' shared modules."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] in TASKS_SHARED:
        return None
    return parts[1]


def layout_violations(root):
    """One line per import that points up or sideways, and per module of an
    unknown package or of tasks/ that is no command."""
    problems = []
    for path in python_files(root):
        module = module_name(path)
        package = module.split(".")[0]
        if package not in FLOORS:
            problems.append(f"{path}: package {package!r} has no floor in FLOORS")
            continue
        with open(os.path.join(root, path)) as f:
            tree = ast.parse(f.read(), path)
        is_package = path.endswith("__init__.py")
        for line, target in imported_modules(tree, module, is_package):
            other = target.split(".")[0]
            if other not in FLOORS:
                continue  # the standard library or a third-party package
            where = f"{path}:{line}: {module} imports {target}"
            if other == package:
                if package == "tasks" and command_of(target) is not None \
                        and command_of(target) != command_of(module):
                    problems.append(f"{where}: one command imports another; move what "
                                    f"both need one floor down")
            elif FLOORS[other] > FLOORS[package]:
                problems.append(f"{where}: points up ({other} is floor {FLOORS[other]}, "
                                f"{package} floor {FLOORS[package]})")
            elif FLOORS[other] == FLOORS[package]:
                problems.append(f"{where}: points sideways (both on floor {FLOORS[package]})")
    return problems


def command_violations(root, tasks):
    """Modules or sub-packages of tasks/ that are no registered command."""
    commands = {value.split(".")[1] for value in tasks.values()}
    problems = []
    for name in sorted(os.listdir(os.path.join(root, "tasks"))):
        stem = name[:-3] if name.endswith(".py") else name
        if name.startswith((".", "__")) or stem in TASKS_SHARED:
            continue
        if not (name.endswith(".py") or os.path.isdir(os.path.join(root, "tasks", name))):
            continue
        if stem not in commands:
            problems.append(f"tasks/{name} is no command of tasks/registry.py; shared code "
                            f"belongs one floor down")
    return problems


def test_imports_point_down():
    assert layout_violations(ROOT) == []


def test_tasks_holds_only_commands():
    import importlib

    from tasks.registry import TASKS

    assert command_violations(ROOT, TASKS) == []
    for name, module_name_ in TASKS.items():
        module = importlib.import_module(module_name_)
        for attribute in ("HELP", "add_arguments", "run"):
            assert hasattr(module, attribute), f"{module_name_} ({name}) lacks {attribute}"


def test_the_checks_catch_the_old_layout(tmp_path):
    """A tree with the old layout's faults: each one is reported."""
    files = {
        "models/__init__.py": "",
        "models/noise.py": "from tasks.noise_spec import parse_noise\n",
        "tuning/__init__.py": "",
        "tuning/tuners.py": "def make():\n    from tasks.errors import UserError\n",
        "tasks/__init__.py": "",
        "tasks/registry.py": "TASKS = {}\n",
        "tasks/noise_spec.py": "",
        "tasks/errors.py": "",
        "tasks/generate.py": "",
        "tasks/sample_quality.py": "from tasks.generate import load_sampler\n",
        "tasks/all.py": "def run():\n    import main\n",
        "tasks/latent/__init__.py": "from . import views\n",
        "tasks/latent/views.py": "from ..generate import x\n",
        "runtime/__init__.py": "",
        "runtime/cli.py": "import storage.files\n",
        "storage/__init__.py": "",
        "storage/files.py": "",
        "main.py": "from tasks.registry import TASKS\n",
        "lab/notes.py": "",
    }
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(textwrap.dedent(text))
    problems = "\n".join(layout_violations(str(tmp_path)))
    assert "models.noise imports tasks.noise_spec.parse_noise: points up" in problems
    assert "tuning.tuners imports tasks.errors.UserError: points up" in problems  # in a function
    assert "tasks.sample_quality imports tasks.generate.load_sampler: one command" in problems
    assert "tasks.all imports main: points up" in problems
    assert "tasks.latent.views imports tasks.generate.x: one command" in problems  # relative
    assert "tasks.latent imports tasks.latent.views" not in problems  # its own sub-package
    assert "runtime.cli imports storage.files: points up" in problems
    assert "main.py" not in problems
    assert "package 'lab' has no floor" in problems
    assert len(layout_violations(str(tmp_path))) == 7

    commands = command_violations(str(tmp_path), {"all": "tasks.all", "latent": "tasks.latent",
                                                  "generate": "tasks.generate"})
    assert commands == [f"tasks/{name} is no command of tasks/registry.py; shared code belongs "
                        f"one floor down" for name in ("errors.py", "noise_spec.py",
                                                       "sample_quality.py")]


# Below a command's ``run(args)`` settings travel as typed configs, never as the
# parsed ``argparse.Namespace``; cli.options turns one into a config, and
# these read arguments of their own.
NAMESPACE_ALLOWED = ("cli.options", "main", "benchmarks", "tests")


def namespace_violations(root):
    """One line per function that takes a parameter named ``args`` (the parsed
    Namespace, by this project's convention), other than a command's ``run``."""
    problems = []
    for path in python_files(root):
        module = module_name(path)
        if any(module == m or module.startswith(m + ".") for m in NAMESPACE_ALLOWED):
            continue
        with open(os.path.join(root, path)) as f:
            tree = ast.parse(f.read())
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            params = [a.arg for a in node.args.posonlyargs + node.args.args
                      + node.args.kwonlyargs]
            if "args" not in params:
                continue
            is_command_run = (module.startswith("tasks.") and node.name == "run"
                              and id(node) in top_level and command_of(module)
                              and module.count(".") == 1)
            if not is_command_run:
                problems.append(f"{module}.{node.name} (line {node.lineno}) takes args")
    return problems


def test_no_namespace_below_run():
    assert namespace_violations(ROOT) == []


def test_the_namespace_check_catches_args_below_run(tmp_path):
    files = {
        "tasks/__init__.py": "",
        "tasks/latent/__init__.py": "def run(args):\n    pass\n",
        "tasks/latent/sweep.py": "def sweep(args, data):\n    pass\n",
        "training/cae_source.py": "def obtain_cae(args, data):\n    pass\n",
        "models/gan.py": "class GAN:\n    def call(self, *args, **kwargs):\n        pass\n",
        "main.py": "def main(args):\n    pass\n",
    }
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    assert namespace_violations(str(tmp_path)) == [
        "tasks.latent.sweep.sweep (line 1) takes args",
        "training.cae_source.obtain_cae (line 1) takes args"]
