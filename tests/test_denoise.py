"""denoise task: fixed noisy test sets, the table, and the command line end to end."""

import json

import numpy as np
import pytest

from conftest import run_main


def test_noisy_test_set_is_fixed_by_the_seed(tiny_images):
    from models.noise import parse_noise
    from tasks.denoise import noisy_test_set

    spec = parse_noise("gaussian:0.5")
    a, b = noisy_test_set(tiny_images, spec, 0), noisy_test_set(tiny_images, spec, 0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, noisy_test_set(tiny_images, spec, 1))
    other = noisy_test_set(tiny_images, parse_noise("gaussian:0.3"), 0)
    assert not np.allclose(a - tiny_images, (other - tiny_images) * 5 / 3)  # own stream


def test_markdown_table_marks_losses():
    from tasks.denoise.report import markdown_table

    row = {"noise": "occlusion", "label": "occlusion 14x14", "latent_dim": 4, "input_mse": 0.1,
           "plain_mse": 0.05, "denoising_mse": 0.06, "plain_psnr_db": 13.0,
           "denoising_psnr_db": 12.2, "denoising_better": False}
    table = markdown_table([row, {**row, "latent_dim": 32, "denoising_mse": 0.01,
                                  "denoising_better": True}], "fashion_mnist")
    assert "latent dimension 4" in table and "latent dimension 32" in table
    assert "| occlusion 14x14 | 0.1000 | 0.0500 | 0.0600 | 13.00 | 12.20 | NO |" in table
    assert table.count("| yes |") == 1


@pytest.mark.slow
def test_denoise_end_to_end(tmp_path):
    out = tmp_path / "run"
    result = run_main("denoise", "--dataset", "digits", "--train-size", "200", "--test-size",
                      "40", "--epochs", "1", "--conv-filters", "4", "8", "8", "--dense-units",
                      "16", "--latent-dims", "3", "--noises", "none,gaussian:0.5,occlusion",
                      "--train-noise", "gaussian:0.5,occlusion", "--examples", "4",
                      "--verbose", "0", "--out", str(out))
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["noise"] for r in metrics["results"]] == ["none", "gaussian:0.5", "occlusion"]
    assert metrics["train_noise"] == ["gaussian:0.5", "occlusion"]
    clean = metrics["results"][0]
    assert clean["input_mse"] == 0 and clean["plain_mse"] > 0
    for name in ("results.md", "results.json", "mse_ld3.png", "examples_ld3_occlusion.png",
                 "examples_ld3_gaussian_0p5.png", "plain_ld3/cae.keras",
                 "denoising_ld3/cae.keras"):
        assert (out / name).is_file(), name
    assert "denoising CAE MSE" in (out / "results.md").read_text()


@pytest.mark.backend_independent
def test_denoise_options_reach_the_config():
    from data.noise_spec import EVAL_NOISES, parse_noise
    from cli.options import from_args
    from tasks.denoise import DenoiseConfig
    from tasks.registry import build_parser

    parser = build_parser()
    default = DenoiseConfig()
    assert from_args(DenoiseConfig, parser.parse_args(["denoise"])) == default
    assert [s.name for s in default.noises] == [s.name for s in default.train_noise] \
        == [parse_noise(n).name for n in EVAL_NOISES]  # "all", parsed
    config = from_args(DenoiseConfig, parser.parse_args([
        "denoise", "--noises", "none,occlusion", "--train-noise", "gaussian:0.5",
        "--from-scratch", "--latent-dims", "4,32", "--examples", "3", "--precision",
        "mixed_bfloat16", "--dense-units", "16", "--seed", "5"]))
    assert [s.name for s in config.noises] == ["none", "occlusion"]
    assert [s.name for s in config.train_noise] == ["gaussian:0.5"]
    assert config.from_scratch and config.latent_dims == [4, 32] and config.examples == 3
    assert config.compute.precision == "mixed_bfloat16"
    assert (config.source.cae.dense_units, config.data.seed) == (16, 5)
    with pytest.raises(ValueError, match="unknown noise"):
        DenoiseConfig(noises="pink")
