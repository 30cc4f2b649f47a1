"""Layer names that ``.keras`` files of earlier versions of the toolkit hold.

Those files name their transposed convolutions ``unsupervised28>Conv2DTranspose``.
Registering the name lets them load inside the toolkit; loading one gives Keras's
own ``Conv2DTranspose``, so a model saved again from it is plain Keras.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="unsupervised28")
class Conv2DTranspose(keras.layers.Conv2DTranspose):
    """Read as ``keras.layers.Conv2DTranspose`` (the same config and weights)."""

    @classmethod
    def from_config(cls, config):
        return keras.layers.Conv2DTranspose.from_config(config)
