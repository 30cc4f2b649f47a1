"""Typed configs of the models, without Keras: their fields generate the
command-line options (``runtime.options``), so ``--help`` stays fast."""
