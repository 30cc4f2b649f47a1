"""latent task: views, numbers, samples, sweep, and the command line."""

import json

import numpy as np
import pytest

from conftest import run_main
from test_cli import assert_one_line_error

TINY = ["--conv-filters", "4", "8", "8", "--dense-units", "16", "--verbose", "0"]


def clusters(n_per=30, dim=6, seed=0):
    """Three well separated Gaussian clusters: codes with known structure."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (3, dim))
    codes = np.concatenate([c + rng.normal(0, 0.5, (n_per, dim)) for c in centres])
    return codes.astype(np.float32), np.repeat(np.arange(3), n_per)


def test_numbers_on_separated_clusters():
    from tasks.latent.views import knn_accuracy, silhouette, subsample

    codes, labels = clusters()
    assert knn_accuracy(codes[::2], labels[::2], codes[1::2], labels[1::2]) == 1.0
    assert silhouette(codes, labels, seed=0) > 0.7
    shuffled = np.random.default_rng(1).permutation(labels)
    assert silhouette(codes, shuffled, seed=0) < 0.1
    sub = subsample(90, 40, seed=3)
    assert len(sub) == 40 and len(set(sub)) == 40
    np.testing.assert_array_equal(sub, subsample(90, 40, seed=3))


def test_views_write_three_pngs_with_trustworthiness(tmp_path):
    from tasks.latent.views import views

    codes, labels = clusters()
    result = views(codes, labels, ["a", "b", "c"], str(tmp_path), seed=0, max_points=60,
                   dataset="synthetic")
    assert result["subsample"] == 60 and result["codes"] == 90
    for method in ("pca", "tsne", "isomap"):
        assert (tmp_path / f"latent_{method}.png").stat().st_size > 10_000
        assert 0.9 < result[method]["trustworthiness"] <= 1.0


def test_samples_decode_to_images(tmp_path):
    import keras

    from models.cae import CAEConfig, build_decoder
    from tasks.latent.samples import decode, gaussian_samples, interpolations, pca_grid

    decoder = build_decoder(CAEConfig(conv_filters=(4, 8, 8), dense_units=16, latent_dim=6))
    codes, labels = clusters()
    images = decode(decoder, codes[:5])
    assert images.shape == (5, 28, 28, 1) and 0 <= images.min() and images.max() <= 1
    info = pca_grid(decoder, codes, str(tmp_path / "grid.png"), seed=0, n=4)
    assert info["explained_variance_ratio"][0] > 0.3
    gaussian_samples(decoder, codes, str(tmp_path / "gauss.png"), seed=0, n=10)
    images = np.zeros((len(codes), 28, 28, 1), np.float32)
    interpolations(decoder, codes, labels, images, ["a", "b", "c"], str(tmp_path / "interp.png"),
                   seed=0, pairs=2, steps=3)
    for name in ("grid.png", "gauss.png", "interp.png"):
        assert (tmp_path / name).stat().st_size > 5_000
    keras.backend.clear_session()


class RecordingDecoder:
    """A stand-in decoder: remembers the codes it is given, returns blank images."""

    def __call__(self, codes, training=False):
        self.codes = np.asarray(codes)
        return np.zeros((len(codes), 28, 28, 1), np.float32)


def test_gaussian_samples_follow_the_codes_mean_and_covariance(tmp_path):
    from tasks.latent.samples import gaussian_codes, gaussian_samples

    rng = np.random.default_rng(3)
    mixing = np.array([[1.0, 0.0, 0.0], [0.8, 0.5, 0.0], [-0.3, 0.2, 2.0]])
    codes = rng.standard_normal((4000, 3)) @ mixing.T + np.array([1.0, -2.0, 0.5])
    drawn = gaussian_codes(codes, 20000, seed=0)
    assert drawn.shape == (20000, 3)
    np.testing.assert_allclose(drawn.mean(axis=0), codes.mean(axis=0), atol=0.05)
    np.testing.assert_allclose(np.cov(drawn, rowvar=False), np.cov(codes, rowvar=False),
                               atol=0.08)
    assert np.corrcoef(drawn, rowvar=False)[0, 1] > 0.8  # the covariance, not just variances
    np.testing.assert_array_equal(drawn, gaussian_codes(codes, 20000, seed=0))  # seeded
    assert not np.array_equal(drawn[:5], gaussian_codes(codes, 5, seed=1))

    decoder = RecordingDecoder()
    info = gaussian_samples(decoder, codes, str(tmp_path / "gauss.png"), seed=7, n=12)
    assert info == {"samples": 12, "fitted_on": 4000}
    np.testing.assert_allclose(decoder.codes, gaussian_codes(codes, 12, seed=7), rtol=1e-6)
    assert (tmp_path / "gauss.png").is_file()


@pytest.fixture(scope="module")
def tiny_cae_file(tmp_path_factory):
    from models.cae import CAEConfig, build_cae

    path = tmp_path_factory.mktemp("cae") / "cae.keras"
    build_cae(CAEConfig(conv_filters=(4, 8, 8), dense_units=16, latent_dim=3)).save(path)
    return path


@pytest.mark.slow
def test_latent_end_to_end_with_sweep(tmp_path, tiny_cae_file):
    out = tmp_path / "run"
    result = run_main("latent", "--dataset", "digits", "--model", str(tiny_cae_file),
                      "--train-size", "200", "--test-size", "80", "--tsne-samples", "50",
                      "--sweep", "2", "--epochs", "1", *TINY, "--out", str(out))
    assert result.returncode == 0, result.stderr
    for name in ("latent_pca.png", "latent_tsne.png", "latent_isomap.png", "samples_pca_grid.png",
                 "samples_gaussian.png", "samples_interpolation.png", "sweep/sweep.png",
                 "sweep/sweep.md"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["latent_dim"] == 3 and metrics["test_images"] == 80
    # Chance is 0.1 on ten classes; even an untrained encoder keeps the digits apart
    # (about 0.5 measured), while a kNN on mismatched labels would score near chance.
    assert 0.2 < metrics["knn5_accuracy"] <= 1
    assert set(metrics["trustworthiness"]) == {"pca", "tsne", "isomap"}
    assert metrics["views"]["subsample"] == 50
    assert [r["latent_dim"] for r in metrics["sweep"]] == [2]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["latent", "denoise"])
def test_a_keras_file_that_is_not_a_cae(tmp_path, task):
    import keras

    inputs = keras.Input((28, 28, 1))
    keras.Model(inputs, keras.layers.Flatten()(inputs), name="flat").save(tmp_path / "x.keras")
    result = run_main(task, "--dataset", "digits", "--model", str(tmp_path / "x.keras"),
                      "--out", str(tmp_path / "run"))
    assert_one_line_error(result, "x.keras", "is not a CAE")


@pytest.mark.backend_independent
@pytest.mark.parametrize("args, fragments", [
    (["latent", "--sweep", "2,0,8"], ["--sweep", "non-positive", "[0]"]),
    (["latent", "--sweep", "2,-4"], ["--sweep", "[-4]"]),
    (["latent", "--tsne-samples", "0"], ["--tsne-samples", "0"]),
    (["denoise", "--noises", "gaussian:0.3,pink"], ["--noises", "'pink'", "valid:"]),
    (["denoise", "--train-noise", "blur"], ["--train-noise", "'blur'", "occlusion"]),
    (["denoise", "--latent-dims", "4,0"], ["--latent-dims", "[0]"]),
])
def test_bad_arguments(args, fragments):
    assert_one_line_error(run_main(*args), *fragments)


@pytest.mark.backend_independent
def test_latent_options_reach_the_config():
    from cli.options import from_args
    from tasks.latent import LatentConfig
    from tasks.registry import build_parser

    parser = build_parser()
    assert from_args(LatentConfig, parser.parse_args(["latent"])) == LatentConfig()
    config = from_args(LatentConfig, parser.parse_args([
        "latent", "--model", "m.keras", "--sweep", "2,4", "--tsne-samples", "50",
        "--latent-dim", "5", "--epochs", "3", "--seed", "7", "--verbose", "0", "--out", "o"]))
    assert (config.source.model, config.source.cae.latent_dim, config.source.training.epochs) \
        == ("m.keras", 5, 3)
    assert (config.sweep, config.tsne_samples, config.verbose) == ([2, 4], 50, 0)
    assert (config.data.seed, config.output.out) == (7, "o")
    with pytest.raises(ValueError, match="tsne_samples"):
        LatentConfig(tsne_samples=0)
