"""The datasets (``datasets``), their shared options (``arguments``), label subsets
and noise specifications. Imports only :mod:`runtime`."""
