"""The networks: CAE, classifier on a frozen encoder, VAE and GAN.

Importing this package registers every custom Keras class of the toolkit, so
``keras.saving.load_model`` can rebuild any saved ``.keras`` file.
"""
from models import legacy_layers  # noqa: F401  the Conv2DTranspose name of older files
from models import noise  # noqa: F401  ImageNoise, NoiseMix
from models import classifier  # noqa: F401  the classify task's models
from models import gan, vae  # noqa: F401  VAE and GAN
from models import semi_supervised  # noqa: F401  SemiSupervisedClassifier
