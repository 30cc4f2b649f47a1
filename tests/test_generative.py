"""VAE and DCGAN: the per-backend train steps, saving, generating, sample quality."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import keras
from conftest import ROOT, real_data_or_skip, run_main
from models.gan import build_gan, default_optimizers, to_gan_range
from models.vae import build_vae

BACKEND = keras.backend.backend()


def values(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


def changed(before, after):
    return [not np.allclose(a, b) for a, b in zip(before, after)]


def tiny_gan(**compile_kwargs):
    gan = build_gan(latent_dim=8, width=4, seed=1)
    gan.compile(*default_optimizers(), **compile_kwargs)
    return gan


@pytest.fixture
def gan_images(tiny_images):
    return to_gan_range(tiny_images[:16])


# ------------------------------------------------------------- train steps


@pytest.mark.parametrize("phase", ["discriminator", "generator"])
def test_gan_phase_trains_only_its_network(phase, gan_images):
    gan = tiny_gan()
    both = gan.train_phases
    keep = 0 if phase == "discriminator" else 1
    gan.train_phases = lambda: [both()[keep]]
    trained, frozen = ((gan.discriminator, gan.generator) if phase == "discriminator"
                       else (gan.generator, gan.discriminator))
    trained_before, frozen_before = values(trained.trainable_variables), values(
        frozen.trainable_variables)
    logs = gan.train_on_batch(gan_images, return_dict=True)
    assert all(changed(trained_before, values(trained.trainable_variables)))
    assert not any(changed(frozen_before, values(frozen.trainable_variables)))
    assert np.isfinite(logs["d_loss" if phase == "discriminator" else "g_loss"])


def test_gan_step_updates_both_networks_with_both_optimizers(gan_images):
    gan = tiny_gan()
    calls = []
    both = gan.train_phases
    gan.train_phases = lambda: calls.append(1) or both()
    d_before, g_before = values(gan.discriminator.trainable_variables), values(
        gan.generator.trainable_variables)
    for _ in range(3):
        logs = gan.train_on_batch(gan_images, return_dict=True)
    assert set(logs) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert 0.0 < logs["d_real"] < 1.0 and 0.0 < logs["d_fake"] < 1.0
    assert all(changed(d_before, values(gan.discriminator.trainable_variables)))
    assert all(changed(g_before, values(gan.generator.trainable_variables)))
    # Both optimizers' state went through the step (on jax: through the state tuple).
    assert int(keras.ops.convert_to_numpy(gan.d_optimizer.iterations)) == 3
    assert int(keras.ops.convert_to_numpy(gan.g_optimizer.iterations)) == 3
    if BACKEND == "torch":  # eager: the step runs in Python every time
        assert len(calls) == 3
    else:
        # jax's jitted step and tensorflow's tf.function are traced once and then
        # replayed: Python ran the phases once for three steps.
        assert len(calls) == 1
        assert gan.jit_compile is (BACKEND == "jax")


def test_vae_train_and_test_step_on_every_backend(tiny_images):
    vae = build_vae(latent_dim=2, width=4, seed=1)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = values(vae.trainable_variables)
    logs = vae.train_on_batch(tiny_images[:16], return_dict=True)
    assert all(changed(before, values(vae.trainable_variables)))
    # The KL's weight is --beta (0.25 by default), not 1.
    assert logs["loss"] == pytest.approx(
        logs["reconstruction_loss"] + vae.beta * logs["kl_loss"], rel=1e-4)
    test = vae.evaluate(tiny_images, verbose=0, return_dict=True)
    assert set(test) == {"loss", "reconstruction_loss", "kl_loss"}
    assert int(keras.ops.convert_to_numpy(vae.optimizer.iterations)) == 1


def test_gan_with_spectral_norm_and_ema_trains_on_every_backend(gan_images):
    from models.gan import use_generator_ema

    gan = build_gan(latent_dim=8, width=4, seed=1, spectral_norm=True)
    gan.compile(*default_optimizers(d_lr=4e-4, ema=0.9))
    before = values(gan.generator.trainable_variables)
    d_before = values(gan.discriminator.trainable_variables)
    gan.fit(gan_images, epochs=1, batch_size=8, verbose=0)
    averages = values(gan.g_optimizer._model_variables_moving_average)
    last = values(gan.generator.trainable_variables)
    assert all(changed(d_before, values(gan.discriminator.trainable_variables)))
    assert use_generator_ema(gan)
    # The generator now holds the averages, which differ from its last weights.
    for got, average in zip(values(gan.generator.trainable_variables), averages):
        np.testing.assert_allclose(got, average, atol=1e-6)
    assert any(changed(last, averages)) and any(changed(before, averages))
    assert float(keras.ops.convert_to_numpy(gan.d_optimizer.learning_rate)) == \
        pytest.approx(4e-4)
    kinds = {type(layer).__name__ for layer in gan.discriminator.layers}
    assert "SpectralNormalization" in kinds and "BatchNormalization" not in kinds
    assert "SpectralNormalization" not in {type(layer).__name__
                                           for layer in gan.generator.layers}


@pytest.mark.slow
def test_vae_loss_falls_on_real_images():
    data = real_data_or_skip("fashion_mnist", train_limit=256, test_limit=10)
    vae = build_vae(latent_dim=2, width=8, likelihood="bernoulli", seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(2e-3))
    history = vae.fit(data.x_train, epochs=5, batch_size=16, verbose=0).history
    # BCE summed over 784 pixels starts near 543 nats (sigmoid 0.5 everywhere).
    assert history["loss"][-1] < 0.85 * history["loss"][0]
    assert history["kl_loss"][-1] > 0.0


def test_gaussian_likelihood_is_the_density_at_each_images_optimal_variance():
    from scipy.stats import norm

    from models.vae import MIN_VARIANCE, gaussian_nll

    rng = np.random.default_rng(0)
    images = rng.random((3, 28, 28, 1)).astype("float32")
    means = np.clip(images + rng.normal(0, [[[[0.05]]], [[[0.1]]], [[[0.2]]]],
                                        images.shape), 0, 1).astype("float32")
    got = keras.ops.convert_to_numpy(gaussian_nll(keras.ops.convert_to_tensor(images),
                                                  keras.ops.convert_to_tensor(means)))
    for image, mean, nll in zip(images, means, got):
        sigma = np.sqrt(np.mean((image - mean) ** 2) + MIN_VARIANCE)
        expected = -norm.logpdf(image, mean, sigma).sum()
        assert nll == pytest.approx(expected, rel=1e-4)
    # No other variance gives the images a higher density than the optimal one.
    for scale in (0.5, 2.0):
        sigma = np.sqrt(np.mean((images[0] - means[0]) ** 2)) * scale
        assert -norm.logpdf(images[0], means[0], sigma).sum() > got[0]


def test_vae_files_saved_before_the_likelihood_load_as_bernoulli():
    import copy

    saved = keras.saving.serialize_keras_object(
        build_vae(latent_dim=2, width=4, likelihood="gaussian", seed=1))
    assert keras.saving.deserialize_keras_object(copy.deepcopy(saved)).likelihood == \
        "gaussian"
    del saved["config"]["likelihood"]
    assert keras.saving.deserialize_keras_object(saved).likelihood == "bernoulli"


def test_gaussian_vae_trains_and_its_files_load_with_plain_keras(tmp_path):
    from configs.vae import VAEConfig
    from data.arguments import DataConfig, load_data
    from training.vae import VAETraining, train_vae

    tiny = DataConfig(dataset="digits", train_size=256, test_size=32)
    data = load_data(tiny)
    vae, metrics = train_vae(data, VAEConfig(latent_dim=4, width=4, dense_units=16,
                                             likelihood="gaussian"),
                             str(tmp_path), VAETraining(epochs=3, batch_size=32, lr=3e-3),
                             verbose=0)
    history = json.loads((tmp_path / "history.json").read_text())
    # The Gaussian's negative log-density falls as the reconstructions sharpen.
    assert history["reconstruction_loss"][-1] < history["reconstruction_loss"][0]
    assert metrics["likelihood"] == "gaussian"
    # The trained likelihood's ELBO is named for it, not reported as a BCE.
    assert "test_reconstruction_bce" not in metrics
    assert metrics["test_elbo_nats"] == pytest.approx(
        -(metrics["test_reconstruction_gaussian_nll"] + metrics["test_kl"]))
    assert metrics["test_elbo_bernoulli_nats"] < 0 and np.isfinite(
        metrics["test_elbo_gaussian_nats"])
    z = np.random.default_rng(0).standard_normal((5, 4)).astype("float32")
    decoder = keras.saving.load_model(str(tmp_path / "decoder.keras"))
    encoder = keras.saving.load_model(str(tmp_path / "encoder.keras"))
    np.testing.assert_allclose(decoder.predict(z, verbose=0),
                               vae.decoder.predict(z, verbose=0), atol=1e-5)
    np.testing.assert_allclose(encoder.predict(data.x_test[:4], verbose=0)[0],
                               vae.encoder.predict(data.x_test[:4], verbose=0)[0], atol=1e-5)
    loaded = keras.saving.load_model(str(tmp_path / "vae.keras"))
    assert loaded.likelihood == "gaussian" and loaded.latent_dim == 4


# --------------------------------------------------------- save and generate


def test_saved_models_generate_the_same_images(tmp_path):
    from models.saving import save_model
    from training.sampler_source import load_sampler

    vae = build_vae(latent_dim=3, width=4, beta=2.0, seed=1)
    gan = build_gan(latent_dim=8, width=4, seed=1)
    eps3 = np.random.default_rng(0).standard_normal((5, 3)).astype("float32")
    eps8 = np.random.default_rng(0).standard_normal((5, 8)).astype("float32")
    expected_vae = vae.decoder.predict(eps3, verbose=0)
    expected_gan = (gan.generator.predict(eps8, verbose=0)[:, 2:30, 2:30] + 1) / 2
    vae_path = save_model(vae, str(tmp_path / "vae.keras"))
    gan_path = save_model(gan.generator, str(tmp_path / "generator.keras"))
    keras.backend.clear_session()
    vae_sampler, gan_sampler = load_sampler(vae_path), load_sampler(gan_path)
    assert vae_sampler.kind == "vae" and gan_sampler.kind == "gan"
    np.testing.assert_allclose(vae_sampler(eps3), expected_vae, atol=1e-5)
    np.testing.assert_allclose(gan_sampler(eps8), np.clip(expected_gan, 0, 1), atol=1e-5)
    # The whole VAE round-trips its configuration.
    from models.saving import load_keras_model
    loaded = load_keras_model(vae_path)
    assert loaded.beta == 2.0 and loaded.latent_dim == 3


def test_cae_decoder_samples_its_code_gaussian(tmp_path, tiny_images):
    from models.cae import CAEConfig, build_cae, split_cae
    from models.saving import save_model
    from storage.files import write_json
    from training.sampler_source import fit_latent_gaussian, GAUSSIAN_FILE, load_sampler

    encoder, decoder = split_cae(build_cae(CAEConfig(conv_filters=(4, 8, 8), dense_units=16,
                                                     latent_dim=3)))
    gaussian = fit_latent_gaussian(encoder, tiny_images)
    path = save_model(decoder, str(tmp_path / "decoder.keras"))
    write_json(str(tmp_path / GAUSSIAN_FILE), gaussian)
    sampler = load_sampler(path)
    assert sampler.kind == "cae"
    eps = np.zeros((2, 3), "float32")  # zero noise decodes the codes' mean
    expected = decoder.predict(np.asarray([gaussian["mean"]] * 2, "float32"), verbose=0)
    np.testing.assert_allclose(sampler(eps), expected, atol=1e-5)


NEXT_BACKEND = {"tensorflow": "jax", "jax": "torch", "torch": "tensorflow"}[BACKEND]

GENERATE = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, {root!r})
    import keras
    from training.sampler_source import load_sampler
    eps = np.load({eps!r})
    np.save({out!r}, np.stack([load_sampler(p)(eps) for p in {paths!r}]))
    print(keras.backend.backend())
""")


@pytest.mark.slow
def test_keras_files_load_and_generate_on_the_next_backend(tmp_path):
    # Each backend's CI run checks one direction; the three runs close the cycle.
    from models.saving import save_model
    from training.sampler_source import load_sampler

    vae = build_vae(latent_dim=8, width=4, seed=1)
    gan = build_gan(latent_dim=8, width=4, seed=1)
    vae.compile(optimizer="adam")
    vae.train_on_batch(np.random.default_rng(0).random((8, 28, 28, 1), "float32"))
    paths = [save_model(vae, str(tmp_path / "vae.keras")),
             save_model(gan.generator, str(tmp_path / "generator.keras"))]
    eps = np.random.default_rng(0).standard_normal((4, 8)).astype("float32")
    np.save(tmp_path / "eps.npy", eps)
    expected = np.stack([load_sampler(p)(eps) for p in paths])
    script = GENERATE.format(root=ROOT, eps=str(tmp_path / "eps.npy"), paths=paths,
                             out=str(tmp_path / "got.npy"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=dict(os.environ, KERAS_BACKEND=NEXT_BACKEND), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == NEXT_BACKEND
    np.testing.assert_allclose(np.load(tmp_path / "got.npy"), expected, atol=1e-4)


@pytest.mark.slow
def test_generate_rejects_bad_input(tmp_path):
    from models.gan import build_discriminator
    from models.saving import save_model
    from test_cli import assert_one_line_error

    path = save_model(build_discriminator(width=4), str(tmp_path / "discriminator.keras"))
    assert_one_line_error(run_main("generate", "--model", path),
                          "discriminator.keras", "no generator")


def test_generate_rejects_non_positive_n(capsys):
    from tasks.registry import build_parser

    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["generate", "--model", "g.keras", "--n", "0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--n" in err[0] and "0 is not positive" in err[0]


# ------------------------------------------------------------ sample quality


def test_fid_kid_coverage_on_known_distributions():
    from evaluation.sample_quality import coverage, fid, kid

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4000, 4)), rng.standard_normal((4000, 4))
    shifted = b + np.array([2.0, 0, 0, 0])
    assert fid(a, b) < 0.05
    # Same covariance: FID is the squared distance between the means.
    assert fid(a, shifted) == pytest.approx(4.0, abs=0.15)
    same, _ = kid(a, b, subsets=5, subset_size=500)
    different, _ = kid(a, shifted, subsets=5, subset_size=500)
    assert abs(same) < 0.02 < different
    probs = np.eye(3)[[0, 0, 1, 2]]
    assert coverage(probs, 4) == [0.5, 0.25, 0.25, 0.0]


def test_fid_of_singular_covariances_is_exact_and_silent():
    """ReLU features with dead units have singular covariances: the FID must still
    be the closed form (here: Gaussians with known means and scales) and warn of
    nothing, as scipy's sqrtm(A @ B) did."""
    import warnings

    from evaluation.sample_quality import fid

    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((20000, 3)), rng.standard_normal((20000, 3))
    dead = np.zeros((20000, 5))  # five features that never fire
    a, b = np.hstack([a, dead]), np.hstack([2.0 * b + 1.0, dead])
    # N(0, I) against N(1, 4I) in 3 dimensions: 3 * 1 + 3 * (1 + 4 - 2 * 2) = 6.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fid(a, b) == pytest.approx(6.0, abs=0.15)
