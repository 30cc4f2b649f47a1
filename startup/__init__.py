"""Process-wide settings, made once when ``main.py`` (or a benchmark's child
process) starts, before Keras and its backend load.

Importing any other package of the toolkit changes nothing global: a user's
own script that imports ``models``, ``training`` or ``evaluation`` runs stock
Keras, and :func:`accel.accelerate` changes only the objects it is given.
:func:`start` is the one place that changes the process:

* always: the simulated CPU devices of ``--cpu-devices`` (XLA_FLAGS before jax
  loads), and TensorFlow's start-up chatter kept off stderr;
* with acceleration on (:func:`runtime.acceleration.enabled`: not ``--no-accel`` or
  ``UNSUPERVISED28_ACCEL=0``, and a tested Keras/PyTorch version):
  glibc's heap padding (:mod:`startup.heap`), jax's persistent compilation
  cache, PyTorch's OpenMP wait policy from the machine's load
  (:mod:`startup.threads`), Keras imported without TensorFlow on jax and torch
  and without its optional packages (:mod:`startup.imports`), and tf.data's
  autotuner off in Keras's own pipelines on tensorflow (:mod:`startup.tf_data`);
* with ``--distribute data_parallel``, on the Keras version they were written
  for: two fixes to Keras's data-parallel training (:mod:`startup.distribution`),
  which it fails without, so they apply with acceleration off too.

This package and :mod:`accel` are the only places the toolkit touches private
names of Keras or PyTorch.
"""

from __future__ import annotations

import os

from runtime import acceleration


def jax_cache_dir() -> str:
    """Where jax keeps the programs it compiled, for the next process."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "unsupervised28", "jax")


def use_jax_compilation_cache() -> None:
    """jax's persistent compilation cache: a process reuses what an earlier one
    compiled instead of compiling it again (about 8 s of CPU per CAE process on
    2 cores). A user's own JAX_COMPILATION_CACHE_DIR wins;
    JAX_ENABLE_COMPILATION_CACHE=false turns it off. Before jax loads."""
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", jax_cache_dir())
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


def _option(argv: list, name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def start(argv: list, backend: str) -> bool:
    """Makes the process-wide settings for a run of ``main.py`` with ``argv`` on
    ``backend`` and imports Keras; returns whether acceleration is on."""
    from runtime.compute import simulated_devices_environment
    from runtime.quiet import import_tensorflow_quietly

    simulated_devices_environment(argv)  # before jax loads
    accelerated = acceleration.enabled(backend)
    if accelerated:
        from startup.heap import keep_freed_memory
        from startup.imports import import_tensorflow_for_backend

        # Before any backend allocates: each training step then reuses the heap
        # pages the step before it freed instead of faulting them in again.
        keep_freed_memory()
        use_jax_compilation_cache()
        if backend == "torch":
            from startup.threads import choose_omp_wait_policy
            choose_omp_wait_policy()
        import_tensorflow_for_backend(backend)
        if backend == "tensorflow":
            from startup.tf_data import without_autotune_stall
            without_autotune_stall()  # each fit, evaluate, predict: no wait at its end
    else:
        import_tensorflow_quietly()  # stock Keras imports it on every backend
        import keras  # noqa: F401
    distributed = _option(argv, "--distribute") == "data_parallel"
    if distributed and not acceleration.untested_versions(backend):
        from startup.distribution import apply
        apply(backend)
    return accelerated
