"""Options generated from config dataclasses (runtime/options.py), on `classify`."""

import argparse
import dataclasses

import pytest

from runtime.options import add_options, config_values, option, option_fields
from tasks.classify.config import GROUPS, ClassifyConfig
from training.classifier_config import Settings

pytestmark = pytest.mark.backend_independent


def classify_parser():
    from tasks.registry import build_parser

    return build_parser()


def test_every_classify_default_comes_from_its_config():
    parser = classify_parser()
    args = parser.parse_args(["classify"])
    config = ClassifyConfig.from_args(args)
    # The parsed defaults are the dataclasses' own; --verbose and --seed come
    # from the task's shared options.
    assert config == ClassifyConfig(settings=Settings(verbose=1, seed=0))
    grouped = [name for _, _, names in GROUPS for name in names]
    fields = {**option_fields(Settings), **option_fields(ClassifyConfig)}
    assert sorted(grouped) == sorted(fields)  # every option field is shown, once


def test_classify_options_reach_the_config():
    args = classify_parser().parse_args([
        "classify", "--fine-tune-lr", "5e-4", "--no-augment", "--label-fractions", "0.5,1",
        "--features", "conv3", "--unfreeze-last", "2", "--max-trials", "3",
        "--skip-label-efficiency", "--seed", "7", "--verbose", "0"])
    config = ClassifyConfig.from_args(args)
    assert config.label_fractions == [0.5, 1.0] and config.max_trials == 3
    assert config.skip_label_efficiency and config.encoder is None
    assert dataclasses.replace(config.settings, fine_tune_lr=1e-3, augment=True,
                               features="conv2", unfreeze_last=None, seed=0) == Settings()
    assert (config.settings.fine_tune_lr, config.settings.augment, config.settings.seed) \
        == (5e-4, False, 7)


def test_option_fields_make_argparse_options():
    @dataclasses.dataclass
    class Config:
        steps: int = option(3, type=int, metavar="N", help="how many steps")
        names: list = option(default_factory=lambda: ["a"], nargs="+", help="names")
        fast: bool = option(False, action="store_true", help="go fast")
        internal: float = 0.5  # no option

    parser = argparse.ArgumentParser()
    add_options(parser, Config, ["fast", "steps", "names"])
    assert "--internal" not in parser.format_help()
    assert parser.format_help().index("--fast") < parser.format_help().index("--steps")
    assert Config(**config_values(Config, parser.parse_args([]))) == Config()
    assert Config(**config_values(Config, parser.parse_args(["--steps", "5", "--names", "x",
                                                               "y", "--fast"]))) \
        == Config(steps=5, names=["x", "y"], fast=True)
    with pytest.raises(KeyError):
        add_options(parser, Config, ["internal"])
    with pytest.raises(TypeError, match="unexpected arguments"):
        option(1, help="x", dest="y")
