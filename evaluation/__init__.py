"""Measuring models: reconstruction metrics, sample quality (FID, KID, precision,
recall, the reference extractor) and each task's headline figure. Imports
:mod:`models` and the floors below it."""
