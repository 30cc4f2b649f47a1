"""Training feeds whose batches are rows of arrays in seeded orders, and the
``tf.data`` pipeline that gives ``fit`` the same batches on tensorflow.

Keras turns a ``PyDataset`` into ``tf.data.Dataset.from_generator`` on
tensorflow, and training steps fed that way ran at about half speed on a 2-core
CPU: the default VAE took 136-147 ms a step against 61-65 ms when the same
batches came from a ``tf.data`` pipeline that gathers them itself (median of 150
steps, two runs each; the slow runs made 12.7 M minor page faults and 37 s of
system time in 300 steps, the fast ones 0.1 M and 1 s). :func:`for_fit` gives
``fit`` that pipeline: the epoch's orders live in ``tf.Variable`` s that
:meth:`IndexedFeed.set_epoch` updates, so every epoch keeps the order drawn
from ``(seed, epoch)`` and a resumed run sees the batches of an uninterrupted
one. ``main.py --no-accel`` (``runtime.acceleration``) feeds the ``PyDataset``
itself, as does a tf.distribute strategy (which distributes its own input).
"""

from __future__ import annotations

import keras


class IndexedFeed(keras.utils.PyDataset):
    """A ``PyDataset`` whose batch ``i`` is rows of its arrays, picked by the
    index orders of the current epoch.

    A subclass draws its orders in :meth:`draw_orders` and assembles batch
    ``i`` in :meth:`batch` from ``take(array, rows)``, which the ``PyDataset``
    answers with numpy and the ``tf.data`` pipeline with ``tf.gather``.
    """

    _published = None  # the pipeline's order variables, once one is built

    def draw_orders(self, epoch: int) -> dict:
        """``{name: index array}``: epoch ``epoch``'s orders."""
        raise NotImplementedError

    def batch(self, i, orders: dict, take):
        """Batch ``i`` from ``orders`` (``draw_orders``'s names) and ``take``."""
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        self._orders = self.draw_orders(epoch)
        if self._published is not None:
            for name, order in self._orders.items():
                self._published[name].assign(order)

    def __getitem__(self, i):
        return self.batch(i, self._orders, lambda array, rows: array[rows])

    def tf_dataset(self):
        """The same batches as a ``tf.data.Dataset`` (tensorflow only), in the
        order of the epoch :meth:`set_epoch` last set: create it once, then set
        each epoch before iterating over it."""
        import tensorflow as tf

        self._published = {name: tf.Variable(order, trainable=False)
                           for name, order in self._orders.items()}
        tensors = {}  # one tensor per array, shared by the names that hold it

        def take(array, rows):
            if id(array) not in tensors:
                with tf.init_scope():  # held once, outside the traced function
                    tensors[id(array)] = tf.constant(array)
            return tf.gather(tensors[id(array)], rows)

        variables = self._published
        dataset = tf.data.Dataset.range(len(self)).map(lambda i: self.batch(i, variables, take))
        options = tf.data.Options()
        # tf.data's autotuner can hold the end of fit for up to a minute
        # (startup/tf_data.py); one batch ahead needs none of it.
        options.autotune.enabled = False
        return dataset.prefetch(1).with_options(options)


def for_fit(feed):
    """What ``fit`` should get for ``feed`` (an :class:`IndexedFeed`): on
    tensorflow its ``tf.data`` pipeline, else ``feed`` itself. Set the epoch on
    ``feed`` as before (:class:`storage.training_backup.TrainingBackup` does)."""
    from runtime.acceleration import switched_off_by_user

    # Public tf.data only: no version gate, only the user's switch.
    if not isinstance(feed, IndexedFeed) or keras.backend.backend() != "tensorflow" \
            or switched_off_by_user():
        return feed
    import tensorflow as tf

    if tf.distribute.has_strategy():
        return feed
    return feed.tf_dataset()
