"""How the semi-supervised classifier of ``classify`` is trained:
:class:`SemiSupervisedSettings`, whose option fields are the task's command-line
options (:mod:`cli.options`). No Keras, so ``--help`` stays fast."""

from __future__ import annotations

import argparse
import dataclasses

from cli.args import non_negative_float, positive_float, positive_int, probability, rate
from cli.options import option
from training.classifier_config import ema_momentum_over

CONSISTENCY = ("pseudo_label", "mean_squared", "none")  # models.semi_supervised.CONSISTENCY
STARTS = ("encoder", "scratch")
STRONG_VIEWS = ("shift", "affine")  # models.semi_supervised.STRONG_VIEWS
MAX_UNLABELLED_RATIO = 64  # unlabelled images per labelled one in a batch


@dataclasses.dataclass
class SemiSupervisedSettings:
    """The semi-supervised model's own options; the head's architecture, the
    features it reads, the weight decay, label smoothing, patience and seed are
    the other classifiers' (:class:`training.classifier_config.Settings`)."""

    semi_supervised: bool = option(
        True, action=argparse.BooleanOptionalAction,
        help="train the semi-supervised classifier beside the other three, on every "
             "label count and fraction (it trains on all training images each time)")
    semi_supervised_start: str = option(
        "encoder", choices=STARTS,
        help="encoder: start from the pretrained encoder's weights; scratch: from "
             "random weights of its architecture")
    semi_supervised_epochs: int = option(
        20, type=positive_int,
        help="most epochs of the semi-supervised model; an epoch is one pass over "
             "all training images, labelled or not")
    semi_supervised_lr: float = option(
        1e-3, type=positive_float,
        help="its AdamW learning rate, decayed to 0 along a cosine (its cross-entropy "
             "is not smoothed: smoothing caps the confidence pseudo-labels need)")
    labelled_batch_size: int = option(
        32, type=positive_int,
        help="labelled images per step (repeated when there are fewer)")
    unlabelled_ratio: int = option(
        4, type=positive_int,
        help=f"unlabelled images per labelled image in a step, at most "
             f"{MAX_UNLABELLED_RATIO} (FixMatch used 7)")
    reconstruction_weight: float = option(
        1.0, type=non_negative_float,
        help="weight of the reconstruction term (mean squared error of the decoder's "
             "image from the encoder's code, on every image), >= 0")
    consistency: str = option(
        "pseudo_label", choices=CONSISTENCY,
        help="the term on unlabelled images: pseudo_label (FixMatch: the confident "
             "prediction on a weakly augmented copy is the label of a strongly "
             "augmented copy), mean_squared (squared distance between the two copies' "
             "predicted probabilities) or none")
    consistency_weight: float = option(
        1.0, type=non_negative_float, help="weight of the consistency term, >= 0")
    pseudo_label_threshold: float = option(
        0.95, type=probability,
        help="with --consistency pseudo_label: the least confidence of a pseudo-label, "
             "in [0, 1]")
    weak_shift: float = option(
        0.0625, type=rate,
        help="the weakly augmented copy's largest shift (of every image's cross-entropy, "
             "reconstruction and pseudo-label), a fraction of the image's size in [0, 1): "
             "0.0625 is 2 pixels; 0 leaves flips only")
    # shift: at 480 labels (one subset, 20 epochs) 83.81% against 83.53% with affine
    # (benchmarks/results/semi_supervised_labels.md).
    strong_view: str = option(
        "shift", choices=STRONG_VIEWS,
        help="the strongly augmented copy of --consistency: shift (flips, shifts of "
             "up to 3 pixels, contrast, an erased rectangle) or affine (also "
             "rotations up to 15 degrees, shears, brightness and sharpness, each "
             "of a random strength per image)")
    # On: at 480 labels (one subset, 20 epochs) 82.64% against 81.76% without
    # (benchmarks/results/semi_supervised_labels.md).
    distribution_alignment: bool = option(
        True, action=argparse.BooleanOptionalAction,
        help="divide the weak copies' predictions by their mean over the unlabelled "
             "batch and renormalise before they become targets (ReMixMatch's "
             "distribution alignment towards equal classes)")

    # As the other classifiers' --ema-epochs (2.67 epochs: momentum 0.999, FixMatch's).
    # Off: at 480 labels (one subset, 30 epochs) the average scored 84.54%, the last
    # step's weights 84.56% (benchmarks/results/semi_supervised_labels.md).
    semi_supervised_ema_epochs: float = option(
        0.0, type=non_negative_float, metavar="E",
        help="validate, keep and test an exponential moving average of the weights "
             "over about E epochs (momentum 1 - 1/(E x steps per epoch); 2.67: "
             "FixMatch's 0.999); 0 keeps the last step's weights")

    def __post_init__(self):
        for name, valid in (("semi_supervised_start", STARTS), ("consistency", CONSISTENCY),
                            ("strong_view", STRONG_VIEWS)):
            if getattr(self, name) not in valid:
                raise ValueError(f"{name} must be one of {', '.join(valid)}. "
                                 f"Received: {name}={getattr(self, name)!r}")
        for name in ("semi_supervised_epochs", "labelled_batch_size", "unlabelled_ratio"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1. Received: {name}={getattr(self, name)}")
        if self.unlabelled_ratio > MAX_UNLABELLED_RATIO:
            raise ValueError(f"unlabelled_ratio must be at most {MAX_UNLABELLED_RATIO}. "
                             f"Received: unlabelled_ratio={self.unlabelled_ratio}")
        for name in ("reconstruction_weight", "consistency_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0. Received: {name}={getattr(self, name)}")
        if not 0.0 <= self.pseudo_label_threshold <= 1.0:
            raise ValueError("pseudo_label_threshold must be in [0, 1]. "
                             f"Received: pseudo_label_threshold={self.pseudo_label_threshold}")
        if not 0.0 <= self.weak_shift < 1.0:
            raise ValueError("weak_shift must be in [0, 1). "
                             f"Received: weak_shift={self.weak_shift}")
        if not self.semi_supervised_ema_epochs >= 0:
            raise ValueError("semi_supervised_ema_epochs must be >= 0. Received: "
                             f"semi_supervised_ema_epochs={self.semi_supervised_ema_epochs}")
        if not self.semi_supervised_lr > 0:
            raise ValueError("semi_supervised_lr must be > 0. "
                             f"Received: semi_supervised_lr={self.semi_supervised_lr}")

    def ema_momentum(self, steps_per_epoch: int) -> float:
        """The average's momentum: 1 - 1 / (its steps); 0: no average."""
        return ema_momentum_over(self.semi_supervised_ema_epochs * steps_per_epoch)

    @property
    def unlabelled_batch_size(self) -> int:
        return self.labelled_batch_size * self.unlabelled_ratio
