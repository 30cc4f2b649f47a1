"""How the three classifiers of ``classify`` are trained: :class:`Settings`, the
typed config whose option fields generate the task's command-line options
(:mod:`cli.options`), so each default is written once, here. No Keras."""

from __future__ import annotations

import argparse
import dataclasses
import math

from cli.args import non_negative_float, positive_float, positive_int, probability, rate
from cli.options import option

LR_SCHEDULES = ("plateau", "cosine")
FEATURE_LAYERS = ("code", "dense1", "conv3", "conv2")  # models.classifier.FEATURES


def ema_momentum_over(steps: float) -> float:
    """The momentum of a moving average over about ``steps`` steps: 1 - 1 / steps;
    0 (no average) for at most one step."""
    return 0.0 if steps <= 1 else 1.0 - 1.0 / steps


@dataclasses.dataclass
class Settings:
    """How the three classifiers are trained (hyperparameters of the head included).

    The defaults are the `classify` task's, chosen by the sweep in
    ``benchmarks/classify_recipes.py`` (full Fashion-MNIST, validation accuracy).
    """

    features: str = option(
        "conv2", choices=FEATURE_LAYERS,
        help="encoder layer the head reads: code (latent), dense1 (256-unit "
             "hidden layer), conv3 (flattened 3x3x128 map), conv2 (7x7x64 "
             "map, the best frozen layer measured)")
    # The head on the frozen encoder (tuned by the task).
    hidden_units: int = 256
    dropout: float = 0.3
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    epochs: int = option(
        60, type=positive_int,
        help="most epochs of the head on the frozen encoder; cheap, it "
             "trains on cached features")
    # Fine-tuning starts from the frozen classifier's weights.
    fine_tune_epochs: int = option(
        120, type=positive_int,
        help="most epochs of fine-tuning the unfrozen encoder")
    fine_tune_lr: float = option(
        1e-3, type=positive_float,
        help="learning rate while fine-tuning, then following "
             "--lr-schedule; lower rates measured worse "
             "(benchmarks/classify_recipes.py)")
    unfreeze_last: int | None = option(  # None: the whole encoder
        None, type=positive_int, metavar="K", default_help="all",
        help="fine-tune only the last K weighted encoder layers")
    baseline_epochs: int = option(
        120, type=positive_int,
        help="most epochs of the supervised baseline; the same budget as "
             "--fine-tune-epochs keeps the comparison fair")
    baseline_lr: float = option(
        1e-3, type=positive_float,
        help="learning rate of the supervised baseline")
    # The head's dropout in the two models trained end to end (fine-tuned,
    # baseline), which overfit far more than a head on frozen features;
    # None: the same as ``dropout``.
    end_to_end_dropout: float | None = option(
        0.5, type=rate,
        help="the head's dropout in the fine-tuned model and the baseline, "
             "which overfit more than the frozen head, whose dropout is "
             "tuned; in [0, 1)")
    batch_size: int = option(128, type=positive_int, help="images per step")
    patience: int = option(  # long enough to reach the low rates at a cosine's end
        20, type=positive_int,
        help="epochs without validation-accuracy gain before stopping (best "
             "weights restored); with --lr-schedule plateau the learning rate "
             "halves after half as many without validation-loss gain")
    # Random flips and erasing while training the fine-tuned model and the
    # baseline (the same for both); the frozen head trains on cached features.
    augment: bool = option(
        True, action=argparse.BooleanOptionalAction,
        help="random changes of the training images of the fine-tuned model "
             "and the baseline, the same for both (--flip, --shift, "
             "--erasing); off at inference")
    flip: bool = option(
        True, action=argparse.BooleanOptionalAction,
        help="with --augment: random horizontal flips")
    shift: float = option(
        0.0, type=rate,
        help="with --augment: random shifts of up to this fraction of the "
             "height and width, in [0, 1); 0.07 and 0.1 measured 0.4 and 1.0 "
             "point worse fine-tuned (the items are centred)")
    erasing: float = option(  # probability per image
        0.25, type=probability,
        help="with --augment: probability of erasing a random rectangle "
             "(2-33%% of the image) of each image, in [0, 1]")
    label_smoothing: float = option(
        0.1, type=rate,
        help="label smoothing of the cross-entropy of all three models, in "
             "[0, 1)")
    feature_dropout: float = option(  # on the features, before the head's hidden layer
        0.2, type=rate,
        help="dropout on the encoder features before the head (whole "
             "channels of a conv map), all three models, in [0, 1)")
    # Validate, keep and test the exponential moving average of the weights
    # (Polyak averaging), all three models: its time constant in epochs (2.5:
    # momentum 0.9989 on 48 000 images, batch 128); 0: the raw weights.
    ema_epochs: float = option(
        0.0, type=non_negative_float, metavar="E",
        help="all three models validate, keep and are tested with an "
             "exponential moving average of their weights over about E "
             "epochs (momentum 1 - 1/(E x steps per epoch)); 0 keeps the raw "
             "weights (2.67 measured no better)")
    # "cosine": cosine decay to 0 over the phase's epochs; "plateau": halve the
    # learning rate after patience / 2 epochs without a lower validation loss.
    lr_schedule: str = option(
        "cosine", choices=("cosine", "plateau"),
        help="cosine: decay the learning rate to 0 along a cosine over each "
             "phase's epochs; plateau: halve it after --patience/2 epochs "
             "without a lower validation loss")
    min_steps: int = option(  # on a label subset: at least this many steps (more epochs)
        300, type=positive_int,
        help="on a label subset, train at least this many steps (more "
             "epochs; at most 100) so small subsets converge")
    verbose: int = 0
    seed: int = 0

    def __post_init__(self):
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}. "
                             f"Received: lr_schedule={self.lr_schedule!r}")

    @property
    def head_dropout_end_to_end(self) -> float:
        return self.dropout if self.end_to_end_dropout is None else self.end_to_end_dropout

    def steps_per_epoch(self, n_train: int) -> int:
        return math.ceil(n_train / self.batch_size)

    def ema_momentum(self, n_train: int) -> float:
        """The average's momentum for ``n_train`` images: 1 - 1 / (its steps).

        In epochs rather than steps, so that a 1% label subset (4 steps an
        epoch) is not averaged over more steps than it trains.
        """
        return ema_momentum_over(self.ema_epochs * self.steps_per_epoch(n_train))

    @property
    def trains_on_flips(self) -> bool:
        """Whether the end-to-end models see mirrored training images."""
        return self.augment and self.flip
