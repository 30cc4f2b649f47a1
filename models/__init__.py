"""The networks: CAE, classifier on a frozen encoder, VAE and GAN."""

from models import gan, vae  # noqa: E402,F401  registers VAE and GAN for loading
