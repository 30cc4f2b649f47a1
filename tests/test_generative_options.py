"""`vae`, `gan`, `generate` and `quality`: options generated from typed configs
(configs/vae.py, configs/gan.py, training/vae.py, training/gan.py,
training/sampler_source.py), built once in run()."""

import dataclasses
import json

import pytest

from configs.gan import GANConfig
from configs.vae import VAEConfig
from data.arguments import DataConfig
from cli.options import from_args
from tasks.gan import GanTaskConfig
from tasks.generate import GenerateConfig
from tasks.quality import QualityConfig, ScoredModels
from tasks.vae import VaeTaskConfig
from training.gan import GANTraining
from training.sampler_source import SamplerConfig, SamplersConfig
from training.vae import VAETraining


def parse(*argv):
    from tasks.registry import build_parser

    return build_parser().parse_args(list(argv))


@pytest.mark.backend_independent
@pytest.mark.parametrize("argv, config", [
    (["vae"], VaeTaskConfig()),
    (["gan"], GanTaskConfig()),
    (["generate", "--model", "m.keras"], GenerateConfig(model="m.keras")),
    (["quality"], QualityConfig()),
], ids=["vae", "gan", "generate", "quality"])
def test_every_default_comes_from_the_config(argv, config):
    assert from_args(type(config), parse(*argv)) == config


@pytest.mark.backend_independent
def test_options_reach_the_config():
    config = from_args(GanTaskConfig, parse(
        "gan", "--width", "8", "--spectral-norm", "--d-lr", "1e-4", "--ema", "0.9",
        "--epochs", "3", "--seed", "5", "--verbose", "0"))
    assert config.gan == GANConfig(width=8, spectral_norm=True)
    assert config.training == GANTraining(epochs=3, d_lr=1e-4, ema=0.9)
    assert (config.data.seed, config.verbose) == (5, 0)

    config = from_args(VaeTaskConfig, parse("vae", "--latent-dim", "4", "--beta", "0.5",
                                            "--lr", "3e-3", "--likelihood", "bernoulli",
                                            "--dense-units", "64", "--lr-schedule", "cosine"))
    assert config.vae == VAEConfig(latent_dim=4, beta=0.5, likelihood="bernoulli",
                                   dense_units=64)
    assert config.training == VAETraining(lr=3e-3, lr_schedule="cosine")

    config = from_args(QualityConfig, parse(
        "quality", "--gan", "g.keras", "--samplers", "prior,gmm", "--components", "4",
        "--extractor-seeds", "0", "1"))
    assert config.models == ScoredModels(gan="g.keras")
    assert config.sampling == SamplersConfig(samplers=("prior", "gmm"), components=4)
    assert config.extractor_seeds == (0, 1)

    config = from_args(GenerateConfig, parse("generate", "--model", "m.keras", "--sampler",
                                             "gmm", "--refit", "--n", "8"))
    assert config.sampling == SamplerConfig(sampler="gmm", refit=True) and config.n == 8


@pytest.mark.backend_independent
def test_generate_still_requires_a_model(capsys):
    with pytest.raises(SystemExit):
        parse("generate")
    assert "the following arguments are required: --model" in capsys.readouterr().err


@pytest.mark.backend_independent
@pytest.mark.parametrize("make, message", [
    (lambda: VAEConfig(beta=0.0), "beta must be a finite number > 0. Received: beta=0.0"),
    (lambda: VAEConfig(latent_dim=0), "latent_dim must be a positive integer"),
    (lambda: VAEConfig(likelihood="poisson"), "Received: likelihood=poisson"),
    (lambda: VAETraining(batch_size=2.5), "Received: batch_size=2.5"),
    (lambda: VAETraining(lr_schedule="step"), "Received: lr_schedule=step"),
    (lambda: VAEConfig(dense_units=0), "dense_units must be a positive integer"),
    (lambda: GANConfig(width=0), "width must be a positive integer. Received: width=0"),
    (lambda: GANTraining(ema=1.0), "ema must be in [0, 1)"),
    (lambda: GANTraining(d_lr=-1.0), "Received: d_lr=-1.0"),
    (lambda: SamplerConfig(sampler="vamp"), "Received: sampler='vamp'"),
    (lambda: SamplersConfig(samplers=["vamp"]), "Received: samplers=['vamp']"),
    (lambda: SamplersConfig(components=0), "Received: components=0"),
    (lambda: GenerateConfig(), "Received: model=None"),
    (lambda: QualityConfig(extractor_seeds=()), "Received: extractor_seeds=[]"),
])
def test_configs_refuse_bad_values_in_keras_words(make, message):
    with pytest.raises(ValueError, match="must be") as raised:
        make()
    assert message in str(raised.value)


@pytest.mark.backend_independent
def test_model_builders_take_their_defaults_from_the_configs():
    import inspect

    from models.gan import build_gan, default_optimizers
    from models.vae import build_vae

    vae = inspect.signature(build_vae).parameters
    assert {k: vae[k].default for k in ("latent_dim", "width", "dense_units", "beta",
                                        "likelihood")} == \
        dataclasses.asdict(VAEConfig())
    gan = inspect.signature(build_gan).parameters
    assert {k: gan[k].default for k in ("latent_dim", "width", "spectral_norm")} == \
        dataclasses.asdict(GANConfig())
    opt = inspect.signature(default_optimizers).parameters
    training = GANTraining()
    assert (opt["lr"].default, opt["beta_1"].default, opt["d_lr"].default,
            opt["ema"].default) == (training.lr, training.beta1, training.d_lr, training.ema)


@pytest.mark.parametrize("task", ["vae", "gan"])
def test_training_records_its_config_in_metrics(task, tmp_path):
    from data.arguments import load_data

    tiny = DataConfig(dataset="digits", train_size=32, test_size=16)
    if task == "vae":
        from training.vae import train_vae as train
        config = VaeTaskConfig(data=tiny, vae=VAEConfig(latent_dim=3, width=4),
                               training=VAETraining(epochs=1, batch_size=16), verbose=0)
    else:
        from training.gan import train_gan as train
        config = GanTaskConfig(data=tiny, gan=GANConfig(latent_dim=4, width=2),
                               training=GANTraining(epochs=1, batch_size=16), verbose=0)
    _, metrics = train(load_data(tiny), getattr(config, task), str(tmp_path), config.training,
                       verbose=0, run_config=dataclasses.asdict(config))
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["config"] == json.loads(json.dumps(dataclasses.asdict(config)))
    assert written["epochs"] == metrics["epochs"] == 1
    assert written["batch_size"] == 16 and written["latent_dim"] == getattr(config, task).latent_dim


def test_vae_cosine_schedule_ends_at_zero_and_sizes_the_hidden_layers(tmp_path):
    from data.arguments import load_data
    from training.vae import train_vae

    tiny = DataConfig(dataset="digits", train_size=32, test_size=16)
    rates = {}
    for schedule in ("constant", "cosine"):
        vae, _ = train_vae(load_data(tiny), VAEConfig(latent_dim=3, width=4, dense_units=8),
                           str(tmp_path / schedule),
                           VAETraining(epochs=2, batch_size=16, lr=3e-3, lr_schedule=schedule),
                           verbose=0)
        rates[schedule] = float(vae.optimizer.learning_rate)
    assert rates["constant"] == pytest.approx(3e-3)
    assert rates["cosine"] == pytest.approx(0.0, abs=1e-9)  # after all 2 x 2 steps
    assert (vae.encoder.get_layer("dense").units
            == vae.decoder.get_layer("decoder_hidden").units == 8)


@pytest.mark.backend_independent
def test_flow_options_reach_generate_and_quality():
    config = from_args(GenerateConfig, parse("generate", "--model", "m.keras", "--sampler",
                                             "flow", "--flow-steps", "20", "--flow-solver",
                                             "midpoint"))
    assert config.sampling == SamplerConfig(sampler="flow", flow_steps=20,
                                            flow_solver="midpoint")
    config = from_args(QualityConfig, parse("quality", "--cae", "c.keras", "--samplers",
                                            "gmm,flow", "--flow-steps", "7"))
    assert config.sampling == SamplersConfig(samplers=("gmm", "flow"), flow_steps=7)
    # The parser's defaults (no Keras) are the flow sampler's own.
    from models import flow_prior
    assert (SamplerConfig().flow_steps, SamplerConfig().flow_solver) == (flow_prior.STEPS,
                                                                         flow_prior.SOLVER)
