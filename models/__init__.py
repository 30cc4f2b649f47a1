"""The networks: CAE, classifier on a frozen encoder, VAE and GAN."""
