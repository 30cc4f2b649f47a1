"""The networks: CAE, classifier on a frozen encoder, VAE and GAN."""
from models import noise  # noqa: F401  registers ImageNoise, NoiseMix
