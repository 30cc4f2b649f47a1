"""The networks: CAE, classifier on a frozen encoder, VAE and GAN."""
from models import layers  # noqa: F401,E402  registers the custom Conv2DTranspose
