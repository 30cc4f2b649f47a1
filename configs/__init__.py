"""Typed configs of the models, without Keras: their fields generate the
command-line options (``cli.options``), so ``--help`` stays fast."""
