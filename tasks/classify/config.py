"""The ``classify`` task's config: its own options, and the classifiers' training
:class:`~training.classifier_config.Settings`. The command-line options are
generated from both (:mod:`runtime.options`)."""

from __future__ import annotations

import argparse
import dataclasses

from data.label_subsets import fraction_list
from runtime.args import positive_int
from runtime.options import add_options, config_values, option
from training.classifier_config import Settings

# The option groups of `classify --help`, in order: (title, description, options).
GROUPS = (
    ("encoder", None, ("encoder", "features", "cae_epochs")),
    ("training", None, ("epochs", "fine_tune_epochs", "fine_tune_lr", "unfreeze_last",
                        "baseline_epochs", "baseline_lr", "batch_size", "patience",
                        "lr_schedule")),
    ("regularisation", "the defaults are the best recipe of benchmarks/classify_recipes.py "
                       "on full Fashion-MNIST",
     ("augment", "flip", "shift", "erasing", "label_smoothing", "feature_dropout",
      "end_to_end_dropout", "ema_epochs")),
    ("tuning and label efficiency", None, ("max_trials", "tuning_epochs", "label_fractions",
                                           "min_steps", "skip_label_efficiency")),
)


@dataclasses.dataclass
class ClassifyConfig:
    """What one ``classify`` run does, besides the data and the output folder."""

    encoder: str | None = option(
        None, metavar="PATH",
        help="a cae.keras or encoder.keras (28x28x1 image -> 1-D code) to "
             "build on; default: train a CAE (CAE task defaults) into <run>/cae")
    cae_epochs: int = option(
        30, type=positive_int,
        help="most epochs of the CAE trained when --encoder is not given "
             "(default 30)")
    max_trials: int = option(
        10, type=positive_int,
        help="Bayesian-optimisation trials for the head (default 10)")
    tuning_epochs: int = option(
        10, type=positive_int, help="most epochs per tuning trial (default 10)")
    label_fractions: list = option(
        default_factory=lambda: [0.01, 0.1, 1.0], type=fraction_list, metavar="F,F,...",
        help="fractions of the training labels, each in (0, 1] "
             "(default 0.01,0.1,1)")
    skip_label_efficiency: bool = option(
        False, action="store_true", help="train only on all labels")
    settings: Settings = dataclasses.field(default_factory=Settings)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "ClassifyConfig":
        """The config of parsed ``classify`` options (``seed`` and ``verbose`` from the
        data and output options)."""
        settings = Settings(**config_values(Settings, args), verbose=args.verbose,
                            seed=args.seed)
        return cls(**config_values(cls, args), settings=settings)


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """The options of :class:`ClassifyConfig` and :class:`Settings`, in their groups."""
    for title, description, names in GROUPS:
        group = parser.add_argument_group(title, description)
        add_options(group, (ClassifyConfig, Settings), names)
