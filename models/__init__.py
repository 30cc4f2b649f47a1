"""The networks: CAE, classifier on a frozen encoder, VAE and GAN."""
from models import noise  # noqa: F401  registers ImageNoise, NoiseMix
from models import classifier  # noqa: F401,E402  (classify task)
from models import layers  # noqa: F401,E402  registers the custom Conv2DTranspose
