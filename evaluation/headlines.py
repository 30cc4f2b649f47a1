"""The one figure that sums up a run of each task.

The study's summary (``all``) and the report's opening table show it, so both
read it from here: a dotted key into the run's ``metrics.json`` and its label.
"""

from __future__ import annotations

HEADLINES = {
    "cae": ("test_mse", "test MSE"),
    "tune": ("test_mse", "best config's test MSE"),
    "latent": ("knn5_accuracy", "kNN (k=5) accuracy"),
    "denoise": ("denoising_beats_plain_on_every_noise", "denoising CAE beats plain on every noise"),
    "classify": ("models.fine_tuned.test_accuracy", "fine-tuned accuracy"),
    "vae": ("test_elbo_nats", "test ELBO (nats)"),
    "gan": ("final_epoch.g_loss", "final generator loss"),
    "quality": ("rows.GAN + prior.fid", "GAN FID"),
}


def lookup(metrics, key: str):
    """``metrics[a][b]...`` for the dotted ``key`` "a.b...", or None where it is missing."""
    value = metrics
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def headline(task: str, metrics: dict):
    """(label, value) of a run of ``task``, or None for a task without one or a
    run whose metrics lack it."""
    if task not in HEADLINES:
        return None
    key, label = HEADLINES[task]
    value = lookup(metrics, key)
    return None if value is None else (label, value)
