""":class:`PhasedModel`: what the VAE and the GAN share.

Both are a ``keras.Model`` holding built sub-models (encoder and decoder;
discriminator and generator), a seeded ``SeedGenerator`` for the noise they draw
in training, and one ``keras.metrics.Mean`` tracker per logged value. Their
update is a list of :class:`models.train_steps.Phase` objects (``train_phases``)
and their evaluation one loss function (``test_loss``); :mod:`models.train_steps`
runs both on every backend. A subclass names its sub-models (``SUBMODELS``) and
trackers (``TRACKERS``) and writes only its losses; the sub-models travel in
``get_config`` as nested Keras objects, so a saved file reloads with
``from_config``.
"""

from __future__ import annotations

import keras

from models import train_steps


class PhasedModel(keras.Model):
    """A model of built sub-models trained by :mod:`models.train_steps` phases.

    Subclasses set:
        SUBMODELS: the attribute names of the sub-models, in the order the
            constructor takes them.
        TRACKERS: ``{attribute name: logged name}`` of the ``Mean`` trackers, in
            the order ``metrics`` lists them.
    and define ``train_phases()`` (a list of ``Phase``) and ``test_loss(data)``
    (``(loss, logs)``). Extra constructor arguments go into ``get_config`` by
    overriding :meth:`extra_config`.

    Args:
        submodels: ``{name: built keras.Model}`` for the names in ``SUBMODELS``.
        seed: seeds the noise drawn in training.
    """

    SUBMODELS: tuple = ()
    TRACKERS: dict = {}

    def __init__(self, submodels: dict, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if set(submodels) != set(self.SUBMODELS):
            raise ValueError(f"{type(self).__name__} takes the sub-models "
                             f"{', '.join(self.SUBMODELS)}; received: {', '.join(submodels)}")
        for name in self.SUBMODELS:
            setattr(self, name, submodels[name])
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        for attribute, name in self.TRACKERS.items():
            setattr(self, attribute, keras.metrics.Mean(name=name))
        # The sub-models are built functional models: nothing left to build.
        self.built = True

    @property
    def metrics(self):
        return [getattr(self, attribute) for attribute in self.TRACKERS]

    def train_phases(self) -> list:
        raise NotImplementedError

    def test_loss(self, data):
        raise NotImplementedError

    def train_step(self, *args):
        return train_steps.train_step(self, *args)

    def test_step(self, *args):
        return train_steps.test_step(self, *args)

    def extra_config(self) -> dict:
        """The subclass's own constructor arguments, JSON-serializable."""
        return {}

    def get_config(self):
        return {**super().get_config(),
                **{name: keras.saving.serialize_keras_object(getattr(self, name))
                   for name in self.SUBMODELS},
                **self.extra_config(), "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in cls.SUBMODELS:
            config[name] = keras.saving.deserialize_keras_object(config[name])
        return cls(**config)
