"""KerasTuner hypermodels and tuners (the `tune` and `classify` tasks)."""
