"""Per-backend settings that make CAE training faster on CPU."""


def compile_options(backend: str) -> dict:
    """Extra ``Model.compile`` keyword arguments for ``backend``."""
    return {}
