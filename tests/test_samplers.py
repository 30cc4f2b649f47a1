"""Latent samplers (models.samplers) and precision/recall (evaluation.sample_quality)."""

import numpy as np
import pytest

import keras


def two_blobs(n=400, dim=3):
    rng = np.random.default_rng(0)
    return np.concatenate([rng.standard_normal((n, dim)) * 0.3 + 4.0,
                           rng.standard_normal((n, dim)) * 0.3 - 4.0])


def tiny_cae_path(tmp_path):
    from models.cae import CAEConfig, build_cae
    from models.saving import save_model

    cae = build_cae(CAEConfig(conv_filters=(4, 8, 8), dense_units=16, latent_dim=3))
    return save_model(cae, str(tmp_path / "cae.keras"))


def test_mixture_sampler_fits_and_round_trips(tmp_path):
    from models.samplers import MixtureSampler

    mixture = MixtureSampler(3, components=2, seed=0).fit(two_blobs())
    mixture.save(str(tmp_path))
    loaded = MixtureSampler.load(str(tmp_path), 3)
    codes = loaded.sample(1000, seed=5)
    np.testing.assert_array_equal(codes, mixture.sample(1000, seed=5))
    assert not np.array_equal(codes, loaded.sample(1000, seed=6))
    # Both blobs are drawn, about half each, and nothing falls between them
    # (one Gaussian fitted to these codes would put most samples near 0).
    assert 0.4 < np.mean(codes[:, 0] > 0) < 0.6
    assert np.all(np.abs(codes[:, 0]) > 1.5)


def test_decoder_gmm_sampler_is_saved_beside_it_and_reused(tmp_path, tiny_images):
    from models.samplers import MixtureSampler
    from training.sampler_source import load_sampler

    path = tiny_cae_path(tmp_path)
    fitted = load_sampler(path, sampler="gmm", components=2,
                          training_images=lambda: tiny_images)
    expected = fitted.sample(6, seed=3)
    assert (tmp_path / MixtureSampler.FILE).is_file()
    keras.backend.clear_session()
    # No training images now: the saved mixture must be the one used.
    reloaded = load_sampler(path, sampler="gmm", components=2)
    assert reloaded.kind == "cae" and reloaded.name == "gmm"
    np.testing.assert_allclose(reloaded.sample(6, seed=3), expected, atol=1e-5)


def test_precision_recall_on_known_cases():
    from evaluation.sample_quality import precision_recall

    rng = np.random.default_rng(0)
    real = rng.standard_normal((1000, 8))
    assert precision_recall(real, real) == (1.0, 1.0)
    assert precision_recall(real, real + 50.0) == (0.0, 0.0)
    # Half the samples on the real manifold, half far away: precision about a
    # half; recall stays high, as the half on it covers the real set.
    fake = np.concatenate([rng.standard_normal((500, 8)), rng.standard_normal((500, 8)) + 50])
    precision, recall = precision_recall(real, fake)
    assert 0.4 < precision < 0.6 and recall > 0.5


def test_bad_sampler_for_a_model_is_one_line_exit_2(tmp_path, capsys):
    from main import main
    from models.gan import build_generator
    from models.saving import save_model

    path = save_model(build_generator(latent_dim=8, width=4),
                      str(tmp_path / "generator.keras"))
    assert main(["generate", "--model", path, "--sampler", "gmm",
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "'gmm'" in err[0] and "GAN" in err[0] and "prior" in err[0]


@pytest.mark.backend_independent
def test_unknown_sampler_name_is_rejected_by_the_parser(capsys):
    from tasks.registry import build_parser

    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["generate", "--model", "g.keras", "--sampler", "vamp"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "'vamp'" in err[-1] and "two_stage" in err[-1]


def test_two_stage_sampler_learns_the_codes_and_saves_plain_keras(tmp_path):
    from models.samplers import TwoStageSampler

    codes = two_blobs(n=300, dim=2).astype("float32")
    sampler = TwoStageSampler(2, epochs=4, seed=0).fit(codes)
    assert sampler.history["loss"][-1] < sampler.history["loss"][0]
    sampler.save(str(tmp_path))
    # The second-stage decoder loads with Keras alone (no custom objects).
    plain = keras.saving.load_model(str(tmp_path / TwoStageSampler.FILE))
    assert [type(layer).__module__.split(".")[0] for layer in plain.layers] == ["keras"] * 4
    loaded = TwoStageSampler.load(str(tmp_path), 2)
    np.testing.assert_allclose(loaded.sample(5, seed=1), sampler.sample(5, seed=1), atol=1e-5)


@pytest.mark.backend_independent
def test_reference_extractor_name_holds_dataset_and_recipe_hash():
    from evaluation.sample_quality import recipe_hash, reference_path, REFERENCE_RECIPE

    path = reference_path("fashion_mnist", 0)
    assert "fashion_mnist" in path and recipe_hash("fashion_mnist", 0) in path
    assert reference_path("fashion_mnist", 1) != path != reference_path("mnist", 0)
    changed = {**REFERENCE_RECIPE, "epochs": REFERENCE_RECIPE["epochs"] + 1}
    assert recipe_hash("fashion_mnist", 0, changed) != recipe_hash("fashion_mnist", 0)
