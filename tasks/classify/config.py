"""The ``classify`` task's config: the shared data, compute and output sections,
its own options, and the classifiers' training
:class:`~training.classifier_config.Settings`. The command-line options are
generated from them (:mod:`cli.options`)."""

from __future__ import annotations

import argparse
import dataclasses

from data.arguments import DataConfig
from data.label_subsets import count_list, fraction_list
from cli.args import positive_int
from runtime.compute import ComputeConfig
from cli.options import add_options, option, option_fields, same_option, section
from storage.run_folder import OutputConfig, verbose_option
from training.cae import CAETraining
from training.classifier_config import Settings
from training.semi_supervised_config import SemiSupervisedSettings

MAX_LABEL_SEEDS = 10  # labelled subsets per label count or fraction

# How `classify --help` shows the task's own options and Settings' (instead of
# one group for Settings): (title, description, options), in order.
GROUPS = (
    ("encoder", None, ("encoder", "features", "cae_epochs")),
    ("training", None, ("epochs", "fine_tune_epochs", "fine_tune_lr", "unfreeze_last",
                        "baseline_epochs", "baseline_lr", "batch_size", "patience",
                        "lr_schedule")),
    ("regularisation", "the defaults are the best recipe of benchmarks/classify_recipes.py "
                       "on full Fashion-MNIST",
     ("augment", "flip", "shift", "erasing", "label_smoothing", "feature_dropout",
      "end_to_end_dropout", "ema_epochs")),
    ("tuning and label efficiency", None, ("max_trials", "tuning_epochs", "label_counts",
                                           "label_fractions", "label_seeds", "min_steps",
                                           "skip_label_efficiency")),
)


@dataclasses.dataclass
class ClassifyConfig:
    """One ``classify`` run.

    The classifiers train with the run's seed and verbosity: ``settings.seed`` and
    ``settings.verbose`` are set from ``data.seed`` and ``verbose``.
    """

    data: DataConfig = section(DataConfig, "data")
    compute: ComputeConfig = section(ComputeConfig, "compute")
    encoder: str | None = option(
        None, metavar="PATH", default_help="train a CAE (the cae task's defaults, "
                                           "--cae-epochs) into <run>/cae",
        help="a cae.keras or encoder.keras (28x28x1 image -> 1-D code) to build on")
    cae_epochs: int = same_option(
        CAETraining, "epochs",
        help="most epochs of the CAE trained when --encoder is not given")
    max_trials: int = option(
        10, type=positive_int, help="Bayesian-optimisation trials for the head")
    tuning_epochs: int = option(
        10, type=positive_int, help="most epochs per tuning trial")
    label_fractions: list = option(
        default_factory=lambda: [0.01, 0.1, 1.0], type=fraction_list, metavar="F,F,...",
        help="fractions of the training labels, each in (0, 1]")
    label_counts: list = option(
        default_factory=lambda: [100], type=count_list, metavar="N,N,...",
        help="numbers of training labels, spread evenly over the classes (100: 10 of "
             "each), each at least the classes; an empty value: none")
    label_seeds: int = option(
        3, type=positive_int,
        help=f"seeded class-balanced subsets per label count and fraction below 1 (the "
             f"same for every model), at most {MAX_LABEL_SEEDS}; the study reports the "
             f"mean and standard deviation")
    skip_label_efficiency: bool = option(
        False, action="store_true", help="train only on all labels")
    settings: Settings = section(Settings, "training")
    semi: SemiSupervisedSettings = section(
        SemiSupervisedSettings, "semi-supervised model",
        "the fourth model: encoder, decoder and head trained together on the labelled "
        "images (cross-entropy) and on all training images (reconstruction, and "
        "consistency between a weakly and a strongly augmented copy); it shares the "
        "head's architecture, --features, weight decay and --patience")
    output: OutputConfig = section(OutputConfig, "output")
    resume: bool = option(
        False, action="store_true",
        help="continue the interrupted run in --out: the CAE, the head's search and the "
             "classifiers it finished are reused, the one in training continues from its "
             "last finished epoch")
    verbose: int = verbose_option()

    def __post_init__(self):
        if not 1 <= self.label_seeds <= MAX_LABEL_SEEDS:
            raise ValueError(f"--label-seeds {self.label_seeds}: give 1 to {MAX_LABEL_SEEDS}")
        self.settings = dataclasses.replace(self.settings, seed=self.data.seed,
                                            verbose=self.verbose)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every option of :class:`ClassifyConfig`, as ``add_config`` adds them, except
    that the task's own options and :class:`Settings`' are shown in :data:`GROUPS`."""
    grouped = {name for _, _, names in GROUPS for name in names}
    for field in dataclasses.fields(ClassifyConfig):
        if field.name == "settings":
            for title, description, names in GROUPS:
                add_options(parser.add_argument_group(title, description),
                            (ClassifyConfig, Settings), names, task="classify")
        elif "section" in field.metadata:
            title, description = field.metadata["section"]
            inner = field.default_factory
            add_options(parser.add_argument_group(title, description), inner,
                        list(option_fields(inner)), task="classify")
        elif "option" in field.metadata and field.name not in grouped:
            add_options(parser, ClassifyConfig, [field.name], task="classify")
