"""One module per job, registered in :mod:`tasks.registry`."""
