"""Training shared by several commands: the CAE (``cae``, ``cae_source``), the
classifiers (``classifier``), the image samplers of a saved model
(``sampler_source``) and Keras callbacks (``callbacks``). Imports
:mod:`evaluation`, :mod:`models` and the floors below them."""
