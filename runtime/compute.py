"""Where and in what precision a task trains: ``--precision``, ``--distribute``,
``--cpu-devices``, set up once for every training task.

* ``--precision``: a Keras dtype policy (``keras.config.set_dtype_policy``) set
  before any model is built; losses stay float32 (``models.train_steps``).
* ``--distribute data_parallel``: the engines' own data parallelism, one model
  copy per device, each global batch split between them:
  jax: ``keras.distribution.DataParallel`` over the devices (several hosts
  join through ``keras.distribution.initialize``, from its
  ``KERAS_DISTRIBUTION_*`` variables); tensorflow: ``tf.distribute.MirroredStrategy``
  (``MultiWorkerMirroredStrategy`` where ``TF_CONFIG`` names several hosts).
  Keras 3.15 has no distribution for torch.
* ``--cpu-devices N``: N simulated devices on the CPU (jax: XLA's
  ``--xla_force_host_platform_device_count``, set by :func:`simulated_devices_environment`
  before jax loads; tensorflow: logical CPU devices), to test the above.

``main.py`` calls :func:`configure` (with the task's :class:`ComputeConfig`) before a task runs and runs the task inside
:func:`task_scope`, so every model is built and compiled in the strategy's scope.
``keras.backend.clear_session`` forgets the dtype policy and the distribution
(Keras global state), and KerasTuner clears the session before every trial:
:func:`configure` makes ``clear_session`` set them again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os

from cli.args import positive_int
from cli.errors import UserError
from cli.options import option

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("none", "data_parallel")
DISTRIBUTED_BACKENDS = ("jax", "tensorflow")
MAX_CPU_DEVICES = 64
_CPU_DEVICES_FLAG = "--xla_force_host_platform_device_count"


@dataclasses.dataclass
class ComputeConfig:
    """Where and in what precision a task trains."""

    precision: str = option(
        "float32", choices=PRECISIONS,
        help="Keras dtype policy: float32, mixed_float16 (GPUs; the loss is scaled), "
             "mixed_bfloat16 (GPUs, TPUs, recent CPUs); losses are computed in float32")
    distribute: str = option(
        "none", choices=STRATEGIES,
        help="data_parallel: one model copy per device, each batch split between them "
             "(jax: keras.distribution.DataParallel; tensorflow: "
             "tf.distribute.MirroredStrategy)")
    cpu_devices: int | None = option(
        None, type=positive_int, metavar="N",
        help="simulate N devices on the CPU (jax, tensorflow) for --distribute "
             "data_parallel without GPUs; at most 64")

    def __post_init__(self):
        # They stand in for the GPUs of one machine (1 to 16, typically): 64 leaves
        # room and still gives each device an image of a batch of 64; 99 999 hung.
        if self.cpu_devices is not None and self.cpu_devices > MAX_CPU_DEVICES:
            raise ValueError(f"--cpu-devices {self.cpu_devices}: at most "
                             f"{MAX_CPU_DEVICES} simulated devices")


def simulated_devices_environment(argv: list) -> None:
    """Sets what ``--cpu-devices N`` in ``argv`` needs before the backend loads:
    jax reads its simulated CPU device count (XLA_FLAGS) once, when it loads."""
    count = None
    for i, arg in enumerate(argv):
        if arg == "--cpu-devices" and i + 1 < len(argv):
            count = argv[i + 1]
        elif arg.startswith("--cpu-devices="):
            count = arg.split("=", 1)[1]
    if count is None or not count.isdigit() or int(count) < 1:
        return  # absent, or bad: argparse reports it
    # TensorFlow's oneDNN CPU kernels fail when simulated devices get batches of
    # different sizes (a convolution on replicas of 13 and 12 images raised
    # "Inputs to operation AddN ... must have the same size"); its own kernels don't.
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
             if not f.startswith(_CPU_DEVICES_FLAG)]
    os.environ["XLA_FLAGS"] = " ".join(flags + [f"{_CPU_DEVICES_FLAG}={count}"])


class _Settings:
    precision = "float32"
    distribute = "none"
    devices = 1
    device_kind = "cpu"
    tf_strategy = None      # the tf.distribute strategy, on tensorflow
    jax_distribution = None  # the keras.distribution.Distribution, on jax


_settings = _Settings()


def _gpu_count(backend: str) -> int:
    if backend == "tensorflow":
        import tensorflow as tf
        return len(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax
        return sum(d.platform == "gpu" for d in jax.devices())
    import torch
    return torch.cuda.device_count()


def _tensorflow_strategy(cpu_devices: int | None):
    import tensorflow as tf

    if cpu_devices:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
        except RuntimeError:  # already initialised: only the same count is possible
            pass
        found = len(tf.config.list_logical_devices("CPU"))
        if found != cpu_devices:
            raise UserError(f"--cpu-devices {cpu_devices}: TensorFlow was started with "
                            f"{found} CPU devices in this process; run it in a new process")
    if _settings.distribute != "data_parallel":
        return None
    if os.environ.get("TF_CONFIG"):  # several hosts, as tf.distribute documents
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    devices = tuple(d.name for d in gpus or tf.config.list_logical_devices("CPU"))
    # One strategy per process: two would reuse each other's collective keys.
    if devices not in _mirrored:
        _mirrored[devices] = tf.distribute.MirroredStrategy(list(devices))
    return _mirrored[devices]


_mirrored = {}


def _jax_distribution(cpu_devices: int | None):
    import jax
    import keras

    if cpu_devices and len(jax.devices("cpu")) != cpu_devices:
        raise UserError(f"--cpu-devices {cpu_devices}: jax started with "
                        f"{len(jax.devices('cpu'))} CPU devices in this process; XLA_FLAGS "
                        f"must be set before jax is imported (main.py does so)")
    if _settings.distribute != "data_parallel":
        return None
    if os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES"):  # several hosts
        keras.distribution.initialize()
    return _data_parallel(keras.distribution.list_devices())


def _data_parallel(devices):
    """``keras.distribution.DataParallel`` over ``devices`` that also takes a batch
    that does not split evenly (the last of an epoch, of a prediction)."""
    import jax
    import keras

    class DataParallel(keras.distribution.DataParallel):
        def get_data_layout(self, data_shape):
            # jax cannot shard 5 images over 2 devices; in one process, such a
            # batch goes whole to every device: the same result, computed twice.
            if (data_shape and data_shape[0] % self.device_mesh.devices.size
                    and jax.process_count() == 1):
                return keras.distribution.TensorLayout([None] * len(data_shape),
                                                       self.device_mesh)
            return super().get_data_layout(data_shape)

    return DataParallel(devices=devices)


def configure(config: ComputeConfig) -> None:
    """Checks the compute options against the backend and the machine, and sets
    the dtype policy and the distribution; raises UserError for a bad mix."""
    import keras

    backend = keras.backend.backend()
    precision, distribute, cpu_devices = config.precision, config.distribute, config.cpu_devices
    if distribute != "none" and backend not in DISTRIBUTED_BACKENDS:
        raise UserError(f"--distribute {distribute} is not available on {backend}: Keras "
                        f"{keras.__version__} distributes on jax and tensorflow; "
                        f"use --backend jax or --backend tensorflow")
    if cpu_devices and backend not in DISTRIBUTED_BACKENDS:
        raise UserError(f"--cpu-devices simulates devices on jax and tensorflow, not "
                        f"{backend}; use --backend jax or --backend tensorflow")
    if cpu_devices and distribute == "none":  # else one device trains: say so
        raise UserError(f"--cpu-devices {cpu_devices} simulates devices for --distribute "
                        f"data_parallel, and without it one device trains; add "
                        f"--distribute data_parallel, or drop --cpu-devices")
    gpus = _gpu_count(backend) if cpu_devices else 0
    if gpus:
        raise UserError(f"--cpu-devices {cpu_devices} simulates devices on a CPU-only "
                        f"machine, but {backend} sees {gpus} GPU(s); drop --cpu-devices "
                        f"(--distribute data_parallel uses the GPUs)")
    _settings.precision, _settings.distribute = precision, distribute
    if backend == "tensorflow":
        _settings.tf_strategy = _tensorflow_strategy(cpu_devices)
        _settings.devices = (_settings.tf_strategy.num_replicas_in_sync
                             if _settings.tf_strategy else 1)
    elif backend == "jax":
        _settings.jax_distribution = _jax_distribution(cpu_devices)
        _settings.devices = (len(keras.distribution.list_devices())
                             if _settings.jax_distribution else 1)
    _settings.device_kind = _device_kind(backend)
    if precision != "float32" and _settings.device_kind == "cpu":
        print(f"note: --precision {precision} is for GPUs (and TPUs); on a CPU it is "
              f"mostly slower than float32", flush=True)
    _apply()
    if not getattr(keras.backend.clear_session, "reapplies_compute", False):
        keras.backend.clear_session = keras.utils.clear_session = _reapplying(
            keras.backend.clear_session)


def _reapplying(clear_session):
    @functools.wraps(clear_session)
    def clear_and_reapply(*args, **kwargs):
        result = clear_session(*args, **kwargs)
        _apply()
        _enter_strategy()
        return result

    clear_and_reapply.reapplies_compute = True
    return clear_and_reapply


def _device_kind(backend: str) -> str:
    try:
        return "gpu" if _gpu_count(backend) else "cpu"
    except Exception:  # a broken CUDA install: training will say more
        return "unknown"


def _apply() -> None:
    """(Re)sets the dtype policy and the jax distribution: Keras global state
    that ``keras.backend.clear_session`` forgets."""
    import keras

    keras.config.set_dtype_policy(_settings.precision)
    if keras.backend.backend() == "jax":
        keras.distribution.set_distribution(_settings.jax_distribution)


_entered = []  # the strategy scopes entered for this task


def _enter_strategy() -> None:
    strategy = _settings.tf_strategy
    if strategy is not None:
        import tensorflow as tf
        if not tf.distribute.has_strategy():
            scope = strategy.scope()
            scope.__enter__()
            _entered.append(scope)


@contextlib.contextmanager
def task_scope():
    """Runs a whole task inside the tf.distribute strategy's scope (if any), so
    every model it builds and compiles is mirrored on the devices. Keras's
    ``clear_session`` resets TensorFlow's graph and with it the scope; the
    patched one enters it again (see :func:`configure`)."""
    _enter_strategy()
    try:
        yield
    finally:
        while _entered:
            try:
                _entered.pop().__exit__(None, None, None)
            except IndexError:  # entered on a graph clear_session has since reset
                pass


def describe() -> dict:
    """For metrics.json: precision, strategy, device count, and whether the
    backend speed paths ran (:mod:`runtime.acceleration`)."""
    strategy = "none"
    if _settings.tf_strategy is not None:
        strategy = type(_settings.tf_strategy).__name__
    elif _settings.jax_distribution is not None:
        strategy = type(_settings.jax_distribution).__name__
    from runtime.acceleration import enabled

    return {"precision": _settings.precision, "distribute": _settings.distribute,
            "strategy": strategy, "devices": _settings.devices,
            "device_kind": _settings.device_kind, "accelerated": enabled()}
