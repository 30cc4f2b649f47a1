"""Ends Keras's tf.data pipelines at once instead of up to a minute later.

On the tensorflow backend, ``fit``, ``evaluate`` and ``predict`` turn numpy
arrays and ``PyDataset`` s into a ``tf.data`` pipeline with tf.data's autotuner
on. Its optimisation thread sleeps between rounds for a period that doubles
from 10 ms up to 60 s, and in TensorFlow 2.21 the iterator's destruction at
the end of each call often fails to wake it: the call then returns only when
that sleep ends. A 12 s GAN ``fit`` took 22 s in about one run in three (the
main thread waiting in ``~RootDataset::Iterator`` for ``Model::OptimizeLoop``),
and every epoch of every task could lose seconds the same way.

The pipelines Keras builds use ``AUTOTUNE`` only for a prefetch buffer and a
parallel batch gather, which tf.data still sizes without the autotuner (its
legacy prefetch tuner; one call per core), so :func:`without_autotune_stall`
turns the autotuner off in them. A ``tf.data.Dataset`` the user passes in
keeps its own options.
"""

from __future__ import annotations

import functools


def without_autotune_stall() -> bool:
    """Turns tf.data's autotuner off in the pipelines Keras builds from arrays,
    generators and ``PyDataset`` s; True when set (Keras's data adapters found)."""
    try:
        import tensorflow as tf
        from keras.src.trainers import data_adapters
        from keras.src.trainers.data_adapters.tf_dataset_adapter import TFDatasetAdapter
    except ImportError:  # another Keras layout: leave it as it is
        return False
    original = data_adapters.get_data_adapter
    if getattr(original, "_without_autotune", False):
        return True

    @functools.wraps(original)  # keeps it as __wrapped__
    def get_data_adapter(*args, **kwargs):
        adapter = original(*args, **kwargs)
        if not isinstance(adapter, TFDatasetAdapter):  # the user's dataset: theirs
            build = adapter.get_tf_dataset

            def get_tf_dataset():
                options = tf.data.Options()
                options.autotune.enabled = False
                return build().with_options(options)

            adapter.get_tf_dataset = get_tf_dataset
        return adapter

    get_data_adapter._without_autotune = True
    data_adapters.get_data_adapter = get_data_adapter
    return True
