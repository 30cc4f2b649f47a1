"""Every task of ``main.py``, in one place: add a job with one line.

Each entry maps the task's name to its module; the module defines ``HELP`` (one
line for ``main.py --help``), ``add_arguments(parser)`` and ``run(args)``, which
returns the run folder. Modules import Keras lazily so ``--help`` stays fast.
"""

TASKS = {
    "cae": "tasks.cae",
    "tune": "tasks.tune",
    "latent": "tasks.latent",
    "denoise": "tasks.denoise",
    "classify": "tasks.classify",
    "vae": "tasks.vae",
    "gan": "tasks.gan",
    "generate": "tasks.generate",
    "quality": "tasks.sample_quality",
    "all": "tasks.all",
    "report": "tasks.report",
    "export": "tasks.export",
    "doctor": "tasks.doctor",
}
