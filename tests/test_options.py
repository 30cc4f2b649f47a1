"""Options generated from config dataclasses (cli/options.py), on `classify`."""

import argparse
import dataclasses

import pytest

from cli.options import (add_config, add_options, config_values, from_args, option,
                             option_fields, section_fields)
from tasks.classify.config import GROUPS, ClassifyConfig
from training.cae import CAETraining
from training.classifier_config import Settings

pytestmark = pytest.mark.backend_independent


def classify_parser():
    from tasks import classify

    parser = argparse.ArgumentParser()
    classify.add_arguments(parser)
    return parser


def dests(parser):
    return sorted(a.dest for a in parser._actions if a.dest != "help")


def test_every_classify_default_comes_from_its_config():
    parser = classify_parser()
    config = from_args(ClassifyConfig, parser.parse_args([]))
    assert config == ClassifyConfig()
    # The classifiers train with the run's --seed and --verbose.
    assert config.settings == Settings(verbose=1, seed=0)
    assert config.cae_epochs == CAETraining().epochs  # the cae task's default, written there
    # classify shows Settings' options in its GROUPS, and just as add_config would.
    reference = argparse.ArgumentParser()
    add_config(reference, ClassifyConfig)
    assert dests(parser) == dests(reference)
    grouped = [name for _, _, names in GROUPS for name in names]
    fields = {**option_fields(Settings), **option_fields(ClassifyConfig)}
    del fields["verbose"], fields["resume"]  # shared with other tasks, outside the groups
    assert sorted(grouped) == sorted(fields)  # every option field is shown, once


def test_no_classify_help_states_its_default():
    # add_options appends "(default: ...)" from the field itself.
    classes = [Settings, ClassifyConfig,
               *(f.default_factory for f in section_fields(ClassifyConfig).values())]
    for cls in classes:
        for name, field in option_fields(cls).items():
            assert "(default" not in field.metadata["option"]["help"], (cls.__name__, name)


def test_classify_options_reach_the_config():
    args = classify_parser().parse_args([
        "--fine-tune-lr", "5e-4", "--no-augment", "--label-fractions", "0.5,1",
        "--features", "conv3", "--unfreeze-last", "2", "--max-trials", "3",
        "--skip-label-efficiency", "--seed", "7", "--verbose", "0", "--train-size", "100",
        "--out", "somewhere", "--precision", "mixed_bfloat16"])
    config = from_args(ClassifyConfig, args)
    assert config.label_fractions == [0.5, 1.0] and config.max_trials == 3
    assert config.skip_label_efficiency and config.encoder is None
    assert (config.data.seed, config.data.train_size, config.output.out, config.verbose) \
        == (7, 100, "somewhere", 0)
    assert config.compute.precision == "mixed_bfloat16"
    assert dataclasses.replace(config.settings, fine_tune_lr=1e-3, augment=True,
                               features="conv2", unfreeze_last=None, seed=0) == Settings()
    assert (config.settings.fine_tune_lr, config.settings.augment, config.settings.seed,
            config.settings.verbose) == (5e-4, False, 7, 0)


def test_classify_recipes_write_only_what_they_change():
    """The sweep's common recipe overrides the task's defaults (Settings), never
    restates one."""
    from benchmarks.classify_recipes import COMMON, recipe_settings

    defaults = Settings()
    assert {k: v for k, v in COMMON.items() if getattr(defaults, k) == v} == {}
    assert recipe_settings("c3", seed=3) == dataclasses.replace(
        defaults, **{**COMMON, "augment": True, "flip": True, "shift": 0.0, "erasing": 0.25,
                     "label_smoothing": 0.1, "feature_dropout": 0.2, "dropout": 0.5,
                     "fine_tune_epochs": 80, "baseline_epochs": 80, "fine_tune_lr": 1e-3,
                     "seed": 3})


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
