"""Keras's import without what the toolkit does not use: TensorFlow on jax and
torch, optional packages, ``torch._dynamo``.

On jax and torch, Keras imports TensorFlow whenever it is installed, only to
seed it (``keras.utils.set_random_seed``) and to check whether objects it
saves are TensorFlow types: 4-5 s of every process's start-up on a 2-core
CPU, for nothing a jax or torch run computes. :func:`import_tensorflow_for_backend`
tells Keras so; the few places that do use TensorFlow there (TensorBoard
HParams, SavedModel export, tensorflow-datasets) call
:func:`import_tensorflow_quietly` first. Keras's imports of other optional
packages it would only use for features this toolkit does not use are skipped
the same way (:data:`KERAS_OPTIONAL_IMPORTS`), and on torch ``torch._dynamo``
waits until something compiles (:func:`_lazy_torch_dynamo`).
"""

import contextlib
import functools
import sys
import types

from runtime.quiet import import_tensorflow_quietly

# Packages Keras imports at its own import only to offer features this toolkit
# does not use, by backend: scikit-learn (its ``keras.wrappers``), matplotlib
# (``keras.visualization``), IPython (notebook display of ``KerasFileEditor``)
# and, on torch, jax (a patch for the Orbax checkpoint callback). On tensorflow,
# TensorFlow's own import loads Keras, and TF Lite's converter imports jax too
# (to convert jax functions). Each import is in a ``try``: hidden, Keras and TF
# Lite only go without those features. 2.0 s of a 4.9 s Keras import on torch,
# 2.3 s of a 6.1 s TensorFlow import on tensorflow (2 CPU cores); the toolkit's
# own later imports of scikit-learn or matplotlib load them as usual.
KERAS_OPTIONAL_IMPORTS = {"torch": ("jax", "sklearn", "matplotlib", "IPython"),
                          "jax": ("sklearn", "matplotlib", "IPython"),
                          "tensorflow": ("jax", "sklearn", "matplotlib", "IPython")}


@contextlib.contextmanager
def _hidden(packages):
    """While inside, importing any of ``packages`` not yet loaded raises
    ImportError (a ``None`` in ``sys.modules``); afterwards they import normally."""
    hidden = [name for name in packages if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None
    try:
        yield
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


@contextlib.contextmanager
def _lazy_torch_dynamo(backend: str):
    """On torch, lets Keras import without loading ``torch._dynamo``.

    Keras's torch backend imports ``torch._dynamo`` only to mark two functions
    (the seeded random draw and one image op) ``@dynamo.disable()``, which
    matters only inside ``torch.compile`` (``jit_compile=True``), something
    this toolkit never turns on for torch. Loading dynamo costs ~4 s of a
    12 s Keras import on 2 slow CPU cores (sympy, torch.fx, inductor parts).
    While inside, a stand-in module answers for it: its ``disable`` marks each
    function and defers to the real ``torch._dynamo.disable`` once something
    has loaded it (``torch.compile`` does).
    """
    if backend != "torch" or "torch._dynamo" in sys.modules:
        yield
        return
    stand_in = types.ModuleType("torch._dynamo")
    stand_in.disable = _deferred_disable
    sys.modules["torch._dynamo"] = stand_in
    try:
        yield
    finally:
        if sys.modules.get("torch._dynamo") is stand_in:
            del sys.modules["torch._dynamo"]


def _deferred_disable(fn=None, recursive=True, **kwargs):
    """``torch._dynamo.disable`` applied at call time: a direct call until the
    real dynamo is loaded (``torch.compile`` loads it), then its disabled twin,
    made at the first call after that and kept in ``call.twin``."""
    if fn is None:
        return lambda f: _deferred_disable(f, recursive, **kwargs)

    @functools.wraps(fn)
    def call(*args, **kw):
        if call.twin is None:
            dynamo = sys.modules.get("torch._dynamo")
            if dynamo is not None and hasattr(dynamo, "OptimizedModule"):  # the real one
                call.twin = dynamo.disable(fn, recursive, **kwargs)
        return (call.twin or fn)(*args, **kw)

    call.twin = None
    return call


def import_tensorflow_for_backend(backend: str) -> None:
    """Imports TensorFlow now, quietly, on the tensorflow backend; on jax and
    torch, keeps Keras from importing it until a task uses it.

    Keras asks ``keras.src.utils.module_utils.tensorflow.available``, a lazy
    import, before seeding or saving; answering "no" while TensorFlow is not
    loaded is true for everything a jax or torch model holds (no TensorFlow
    tensors, shapes or dtypes). Where that private attribute is missing (another
    Keras version), TensorFlow is imported as before. Keras itself is imported
    here, without the optional packages of :data:`KERAS_OPTIONAL_IMPORTS` (on
    tensorflow too, where TensorFlow's import loads Keras).
    """
    if backend == "tensorflow" and "tensorflow" not in sys.modules:
        with _hidden(KERAS_OPTIONAL_IMPORTS[backend]):
            import_tensorflow_quietly()
            import keras  # noqa: F401  (TensorFlow may load it lazily)
        return None
    if "tensorflow" in sys.modules:
        return import_tensorflow_quietly()
    try:
        with _hidden(KERAS_OPTIONAL_IMPORTS.get(backend, ())), _lazy_torch_dynamo(backend):
            from keras.src.utils import module_utils
        lazy = module_utils.tensorflow
    except (ImportError, AttributeError):
        return import_tensorflow_quietly()
    if getattr(lazy, "module", None) is None and getattr(lazy, "_available", False) is None:
        lazy._available = False
    else:
        import_tensorflow_quietly()
