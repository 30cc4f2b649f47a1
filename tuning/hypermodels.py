"""The hypermodel class of each model `tune --model` knows."""

from __future__ import annotations

from tuning.cae_hypermodel import CAEHyperModel
from tuning.classifier_hypermodel import ClassifierHyperModel
from tuning.gan_hypermodel import GANHyperModel
from tuning.vae_hypermodel import VAEHyperModel

HYPERMODELS = {"cae": CAEHyperModel, "classifier": ClassifierHyperModel,
               "vae": VAEHyperModel, "gan": GANHyperModel}
