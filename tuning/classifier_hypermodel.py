"""The KerasTuner HyperModel of the classifier head (the `classify` task).

The head is tuned on features cached from the frozen encoder: with the encoder
frozen and run in inference mode, training the head on its outputs is the same
as training the whole classifier, and every trial skips the encoder.
"""

from __future__ import annotations

import keras_tuner as kt

# Search space: hidden units, dropout, learning rate and AdamW weight decay,
# the four knobs of the reports we follow.
HIDDEN_UNITS = (64, 128, 256, 512)
DROPOUT = (0.0, 0.6, 0.1)  # min, max, step
LEARNING_RATE = (1e-4, 1e-2)  # log-uniform
WEIGHT_DECAY = (1e-6, 1e-2)  # log-uniform


class ClassifierHeadHyperModel(kt.HyperModel):
    """Builds Flatten -> Dense(hidden) -> Dropout -> Dense(classes) compiled with AdamW.

    Args:
        feature_shape: shape of one feature vector (or map) from the encoder.
        num_classes: classes to predict.
        feature_dropout: fixed dropout on the features (not tuned).
        label_smoothing: fixed label smoothing of the loss (not tuned).
    """

    def __init__(self, feature_shape: tuple, num_classes: int = 10,
                 feature_dropout: float = 0.0, label_smoothing: float = 0.0, **kwargs):
        super().__init__(name="classifier_head", **kwargs)
        self.feature_shape = tuple(feature_shape)
        self.num_classes = num_classes
        self.feature_dropout = feature_dropout
        self.label_smoothing = label_smoothing

    def build(self, hp):
        from models.classifier import build_head, compile_classifier

        hidden = hp.Choice("hidden_units", list(HIDDEN_UNITS))
        dropout = hp.Float("dropout", DROPOUT[0], DROPOUT[1], step=DROPOUT[2])
        lr = hp.Float("learning_rate", *LEARNING_RATE, sampling="log")
        wd = hp.Float("weight_decay", *WEIGHT_DECAY, sampling="log")
        head = build_head(self.feature_shape, hidden, dropout, self.num_classes,
                          feature_dropout=self.feature_dropout)
        return compile_classifier(head, lr, wd, self.label_smoothing)


def head_hyperparameters(hp) -> dict:
    """The tuned values as a plain dict (for metrics.json and rebuilding)."""
    return {name: hp.get(name) for name in
            ("hidden_units", "dropout", "learning_rate", "weight_decay")}
