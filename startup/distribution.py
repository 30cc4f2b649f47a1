"""Two fixes to Keras 3.15's data-parallel training, for ``--distribute``.

Both handle a batch that does not split evenly over the devices (the last one
of an epoch, 25 validation images on 2 devices). They replace a method of a
Keras trainer class, so they are applied by :func:`startup.start` only when a
task asks for ``--distribute data_parallel``, and only on the Keras version
they were written for.
"""

from __future__ import annotations


def apply(backend: str) -> None:
    if backend == "tensorflow":
        build_from_one_replica()
    elif backend == "jax":
        layout_per_batch()


def build_from_one_replica() -> None:
    """Keras 3.15 builds a distributed model (in fit and evaluate) from the MEAN
    over the replicas of the first batch, which fails when their shares differ in
    size (25 validation images on 2 devices: 13 and 12); the first replica's
    share has all the shapes the build needs."""
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer

    original = trainer.TensorFlowTrainer._maybe_symbolic_build
    if getattr(original, "one_replica", False):
        return

    def build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is not None and iterator is not None:
            def first_replica(value):
                if isinstance(value, tf.distribute.DistributedValues):
                    return strategy.experimental_local_results(value)[0]
                return value

            for _, _, it in iterator:  # as Keras does: one batch, then the build
                data_batch = tf.nest.map_structure(first_replica, next(it))
                break
            iterator = None
        return original(self, iterator=iterator, data_batch=data_batch)

    build.one_replica = True
    trainer.TensorFlowTrainer._maybe_symbolic_build = build


def layout_per_batch() -> None:
    """Keras 3.15's jax epoch iterator takes the data layout of an epoch's first
    batch for every batch, so a smaller last batch got the sharded layout it
    cannot take; this one asks the distribution for each batch's layout."""
    from keras.src.backend.jax import trainer

    def distributed_batches(self, distribution):
        for data in self.data_adapter.get_jax_iterator():
            yield trainer._distribute_data(data)

    trainer.JAXEpochIterator._get_distributed_iterator = distributed_batches
