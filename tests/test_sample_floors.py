"""Each autoencoder's floor in `quality`: its reconstructions of real test images,
scored beside its samplers (tasks/quality.py, training/sampler_source.py)."""

import numpy as np
import pytest


def saved_models(tmp_path):
    """A tiny GAN generator, VAE (whole, and its decoder alone) and CAE, saved."""
    from models.cae import CAEConfig, build_cae
    from models.gan import build_generator
    from models.saving import save_model
    from models.vae import build_vae

    vae = build_vae(latent_dim=3, width=4, seed=0)
    paths = {"gan": save_model(build_generator(latent_dim=4, width=2),
                               str(tmp_path / "generator.keras")),
             "vae": save_model(vae, str(tmp_path / "vae.keras")),
             "vae_decoder": save_model(vae.decoder, str(tmp_path / "decoder.keras")),
             "cae": save_model(build_cae(CAEConfig(conv_filters=(4, 8, 8), dense_units=16,
                                                   latent_dim=3)), str(tmp_path / "cae.keras"))}
    return paths


def test_floors_are_the_reconstructions_of_the_test_images_before_each_models_samplers(
        tmp_path, tiny_dataset):
    from models.saving import load_keras_model
    from tasks.quality import ScoredModels, load_samplers, sample_sets
    from training.sampler_source import SamplersConfig

    paths = saved_models(tmp_path)
    samplers = load_samplers(ScoredModels(gan=paths["gan"], vae=paths["vae"], cae=paths["cae"]),
                             SamplersConfig(samplers=("prior", "gaussian")), tiny_dataset)
    images, sources, seconds = sample_sets(samplers, tiny_dataset, n=8, seed=0)
    assert list(images) == ["floor: test split", "GAN + prior", "VAE floor: reconstructions",
                            "VAE + prior", "VAE + gaussian", "CAE floor: reconstructions",
                            "CAE + gaussian"]
    assert sources["VAE floor: reconstructions"] == ("vae", "reconstruction")
    assert sources["CAE + gaussian"] == ("cae", "gaussian")
    assert sources["floor: test split"] == ("real", None)
    assert set(seconds) == set(images) - {"floor: test split"}

    x = tiny_dataset.x_test[:8]
    # The VAE's floor decodes the posterior means (no noise: the same twice) ...
    vae = load_keras_model(paths["vae"])
    means = vae.encoder.predict(x, verbose=0)[0]
    want = np.clip(vae.decoder.predict(means, verbose=0), 0, 1)
    np.testing.assert_allclose(images["VAE floor: reconstructions"], want, atol=1e-5)
    # ... and the CAE's is what the whole CAE outputs for the same images.
    cae = load_keras_model(paths["cae"])
    np.testing.assert_allclose(images["CAE floor: reconstructions"],
                               np.clip(cae.predict(x, verbose=0), 0, 1), atol=1e-5)
    assert not np.allclose(images["CAE floor: reconstructions"], images["CAE + gaussian"])


def test_a_decoder_alone_has_no_floor(tmp_path, tiny_dataset):
    from tasks.quality import ScoredModels, load_samplers, sample_sets
    from training.sampler_source import SamplersConfig

    paths = saved_models(tmp_path)
    samplers = load_samplers(ScoredModels(vae=paths["vae_decoder"]),
                             SamplersConfig(samplers=("prior",)), tiny_dataset)
    images, _, _ = sample_sets(samplers, tiny_dataset, n=4, seed=0)
    assert list(images) == ["floor: test split", "VAE + prior"]


@pytest.mark.backend_independent
def test_each_sampler_is_measured_against_its_own_decoders_floor():
    from tasks.quality import add_floor_ratios, markdown_table

    def row(model, sampler, fid):
        return {"model": model, "sampler": sampler, "fid": fid, "kid": 0.1, "precision": 0.5,
                "recall": 0.5, "coverage": [0.5, 0.5], "classes_covered": 2,
                "max_class_share": 0.5}

    rows = {"floor: test split": row("real", None, 0.2), "GAN + prior": row("gan", "prior", 22.0),
            "VAE floor: reconstructions": row("vae", "reconstruction", 50.0),
            "VAE + prior": row("vae", "prior", 100.0),
            "CAE floor: reconstructions": row("cae", "reconstruction", 20.0),
            "CAE + flow (25 midpoint steps)": row("cae", "flow", 25.0)}
    add_floor_ratios(rows)
    assert rows["VAE + prior"]["fid_over_floor"] == 2.0
    assert rows["CAE + flow (25 midpoint steps)"]["fid_over_floor"] == 1.25
    assert [name for name, r in rows.items() if "fid_over_floor" in r] == [
        "VAE + prior", "CAE + flow (25 midpoint steps)"]  # not the floors, nor the GAN's
    table = markdown_table(rows, ["a", "b"])
    assert "| FID | FID / own floor |" in table
    assert "| CAE + flow (25 midpoint steps) | 25.00 | 1.25 |" in table
    assert "| GAN + prior | 22.00 |  |" in table
