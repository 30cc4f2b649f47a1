"""The networks: CAE, classifier on a frozen encoder, VAE and GAN."""
from models import classifier  # noqa: F401,E402  (classify task)
