"""Figures shared by several commands: image grids, image rows, loss curves.
Imports only :mod:`runtime` and :mod:`storage`."""
