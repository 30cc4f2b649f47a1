"""The flow-matching latent prior (models/flow_prior.py, the ``flow`` sampler) and
its bad input on the command line."""

import os

import numpy as np
import pytest

import keras


def two_modes(n=300, seed=0):
    """A 2-D mixture of two Gaussians, half the points each, far apart in x."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.standard_normal((n, 2)) * 0.5 + [3.0, 1.0],
                           rng.standard_normal((n, 2)) * 0.5 - [3.0, 1.0]]).astype("float32")


def linear_velocity(dim, matrix):
    """A velocity network ``v(x, t) = x @ matrix`` (ignores t), for exact paths."""
    from models.flow_prior import build_velocity_network

    x_t, t = keras.Input((dim,)), keras.Input((1,))
    dense = keras.layers.Dense(dim, use_bias=False)
    model = keras.Model([x_t, t], dense(x_t))
    dense.set_weights([np.asarray(matrix, "float32")])
    assert build_velocity_network(dim).input_shape == [(None, dim), (None, 1)]
    return model


@pytest.mark.parametrize("solver, factor", [
    ("euler", lambda h: 1.0 - h),              # x + h (-x)
    ("midpoint", lambda h: 1.0 - h + h * h / 2),  # x + h (-(x - h x / 2))
])
def test_integrate_takes_the_solvers_exact_steps(solver, factor):
    from models.flow_prior import integrate

    z0 = np.random.default_rng(0).standard_normal((7, 3)).astype("float32")
    velocity = linear_velocity(3, -np.eye(3))  # dx/dt = -x
    for steps in (1, 4):
        got = integrate(velocity, z0, steps, solver, batch_size=3)  # chunks of 3, 3, 1
        np.testing.assert_allclose(got, z0 * factor(1.0 / steps) ** steps, rtol=1e-5)
    with pytest.raises(ValueError, match="Received: steps=0"):
        integrate(velocity, z0, 0)


def test_flow_prior_learns_both_modes_of_a_mixture_and_round_trips(tmp_path):
    from models.flow_prior import FlowMatching
    from models.samplers import FlowSampler

    codes = two_modes()
    sampler = FlowSampler(2, seed=0, epochs=30, width=32, batch_size=32)
    sampler.fit(codes)
    losses = sampler.history["loss"]
    assert losses[-1] < 0.8 * losses[0]
    samples = sampler.sample(2000, seed=1)
    # Mean and spread of the data (one Gaussian has them too) ...
    np.testing.assert_allclose(samples.mean(axis=0), codes.mean(axis=0), atol=0.4)
    np.testing.assert_allclose(samples.std(axis=0), codes.std(axis=0), rtol=0.15)
    # ... and its two modes, about half the samples each, few between them
    # (a Gaussian fitted to these codes would put a third of its samples there).
    right = np.linalg.norm(samples - [3.0, 1.0], axis=1) < 1.5
    left = np.linalg.norm(samples + [3.0, 1.0], axis=1) < 1.5
    assert 0.35 < right.mean() < 0.65 and 0.35 < left.mean() < 0.65
    assert np.mean(np.abs(samples[:, 0]) < 1.5) < 0.1

    sampler.save(str(tmp_path))
    loaded = FlowSampler.load(str(tmp_path), 2)
    np.testing.assert_allclose(loaded.sample(50, seed=3), sampler.sample(50, seed=3),
                               atol=1e-4)
    assert not np.allclose(loaded.sample(50, seed=4), sampler.sample(50, seed=3))
    assert loaded.n_codes == len(codes)
    assert not any(isinstance(layer, FlowMatching) for layer in loaded.velocity.layers)


def tiny_cae(tmp_path, latent_dim=3, name="cae.keras"):
    from models.cae import CAEConfig, build_cae
    from models.saving import save_model

    cae = build_cae(CAEConfig(conv_filters=(4, 8, 8), dense_units=16, latent_dim=latent_dim))
    return save_model(cae, str(tmp_path / name))


def test_generate_fits_a_flow_beside_the_cae_and_reuses_it(tmp_path, tiny_images, monkeypatch):
    from models import flow_prior
    from models.samplers import FlowSampler
    from training.sampler_source import load_sampler

    monkeypatch.setattr(flow_prior, "EPOCHS", 3)  # the plumbing, not the fit
    path = tiny_cae(tmp_path)
    fitted = load_sampler(path, sampler="flow", flow_steps=5,
                          training_images=lambda: tiny_images)
    assert fitted.name == "flow" and FlowSampler.exists(str(tmp_path))
    assert fitted.fit_seconds > 0
    images = fitted.sample(4, seed=2)
    assert images.shape == (4, 28, 28, 1)
    keras.backend.clear_session()
    # No training images now: the saved flow is the one used, with the steps asked.
    again = load_sampler(path, sampler="flow", flow_steps=5)
    np.testing.assert_allclose(again.sample(4, seed=2), images, atol=1e-4)
    assert again.fit_seconds is None
    other_steps = load_sampler(path, sampler="flow", flow_steps=1, flow_solver="midpoint")
    assert (other_steps.latent.steps, other_steps.latent.solver) == (1, "midpoint")


def one_line_exit_2(capsys, argv, *words):
    from main import main

    try:
        code = main(argv)
    except SystemExit as exit_info:  # argparse refuses bad option values itself
        code = exit_info.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for word in words:
        assert word in err[0], err[0]
    return err[0]


def test_flow_on_a_model_without_codes_is_one_line_exit_2(tmp_path, capsys):
    from models.gan import build_generator
    from models.saving import save_model

    gan = save_model(build_generator(latent_dim=8, width=4), str(tmp_path / "generator.keras"))
    out = tmp_path / "out"
    one_line_exit_2(capsys, ["generate", "--model", gan, "--sampler", "flow", "--out",
                             str(out)], "'flow'", "GAN", "prior")
    # A CAE decoder alone has no encoder to give codes.
    from models.cae import CAEConfig, build_cae, split_cae

    decoder = split_cae(build_cae(CAEConfig(conv_filters=(4, 8, 8), dense_units=16,
                                            latent_dim=3)))[1]
    decoder_path = save_model(decoder, str(tmp_path / "decoder.keras"))
    one_line_exit_2(capsys, ["generate", "--model", decoder_path, "--sampler", "flow",
                             "--dataset", "digits", "--out", str(out)],
                    "latent_flow.keras", "--codes-from")
    assert not out.exists() and not (tmp_path / "latent_flow.json").exists()


def test_flow_file_of_another_latent_size_is_one_line_exit_2(tmp_path, capsys):
    from models.samplers import FlowSampler

    codes = np.random.default_rng(0).standard_normal((64, 2)).astype("float32")
    FlowSampler(2, epochs=1, width=8).fit(codes).save(str(tmp_path))
    path = tiny_cae(tmp_path, latent_dim=3)
    before = sorted(os.listdir(tmp_path))
    one_line_exit_2(capsys, ["generate", "--model", path, "--sampler", "flow",
                             "--out", str(tmp_path / "out")],
                    "latent_flow.keras", "dimension 2", "takes 3", "--refit")
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.backend_independent
@pytest.mark.parametrize("steps, words", [
    ("0", ["0 is not positive", ">= 1"]),
    ("-3", ["-3 is not positive"]),
    ("nan", ["'nan' is not an integer"]),
    ("inf", ["'inf' is not an integer"]),
    ("2.5", ["'2.5' is not an integer"]),
    ("1001", ["1001 is too many ODE steps", "1 ... 1000"]),
])
def test_bad_flow_steps_are_one_line_exit_2_before_anything_is_written(tmp_path, capsys,
                                                                        steps, words):
    out = tmp_path / "out"
    for argv in (["generate", "--model", str(tmp_path / "cae.keras")],
                 ["quality", "--cae", str(tmp_path / "cae.keras")]):
        one_line_exit_2(capsys, [*argv, "--flow-steps", steps, "--out", str(out)],
                        "--flow-steps", *words)
    assert not out.exists()


@pytest.mark.backend_independent
def test_flow_settings_are_checked_by_the_configs():
    from training.sampler_source import SamplerConfig, SamplersConfig

    for make in (SamplerConfig, SamplersConfig):
        for steps in (0, 1001, float("nan"), 2.5):
            with pytest.raises(ValueError, match=f"Received: flow_steps={steps}"):
                make(flow_steps=steps)
        with pytest.raises(ValueError, match="Received: flow_solver='rk4'"):
            make(flow_solver="rk4")
        assert make(flow_steps=1000, flow_solver="midpoint").flow_steps == 1000


def test_a_fit_that_diverges_is_a_user_error():
    from models.samplers import FlowSampler
    from cli.errors import UserError

    codes = np.random.default_rng(0).standard_normal((64, 2)).astype("float32")
    codes[5, 1] = np.nan  # e.g. a diverged encoder's codes
    with pytest.raises(UserError, match="training diverged: flow sampler loss became nan"):
        FlowSampler(2, epochs=2, width=8).fit(codes)
