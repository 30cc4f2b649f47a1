"""The KerasTuner HyperModels of the classifier: the head alone (the `classify`
task) and the whole classifier on a pretrained encoder (``tune --model classifier``).

The head is tuned on features cached from the frozen encoder: with the encoder
frozen and run in inference mode, training the head on its outputs is the same
as training the whole classifier, and every trial skips the encoder.
"""

from __future__ import annotations

import keras_tuner as kt

from tuning.search_space import TrainableHyperModel

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


class ClassifierHyperModel(TrainableHyperModel):
    """The whole classifier on a pretrained encoder, for ``tune --model classifier``.

    Tunes the head (hidden units, dropout), AdamW's learning rate and weight
    decay, the encoder layer the head reads (``features``), whether the
    encoder is frozen or fine-tuned with the head, and the batch size. Every
    trial starts from the same pretrained encoder weights (a fine-tuned trial
    changes its own copy only).

    Args:
        encoder: the pretrained encoder (``models.classifier.encoder_from_model``).
        num_classes: classes to predict.
        space: a name in :data:`CLASSIFIER_SPACES` or a dict shaped like them.
    """

    OBJECTIVES = {"val_accuracy": "max", "val_loss": "min"}

    def __init__(self, encoder, num_classes: int = 10, space="default", **kwargs):
        from models.classifier import FEATURES, feature_model

        super().__init__(**kwargs)
        self.encoder = encoder
        self.encoder_weights = encoder.get_weights()
        self.num_classes = num_classes
        self.space = dict(CLASSIFIER_SPACES[space] if isinstance(space, str) else space)
        usable = []
        for name in self.space["features"]:
            try:
                feature_model(encoder, name)
                usable.append(name)
            except ValueError:  # this encoder has no such layer
                pass
        if not usable:
            raise ValueError(f"the encoder has none of the feature layers "
                             f"{', '.join(self.space['features'])} (known: {', '.join(FEATURES)})")
        self.space["features"] = usable

    def _encoder(self):
        """A fresh copy of the pretrained encoder."""
        import keras

        encoder = keras.models.clone_model(self.encoder)  # fresh variables
        encoder.set_weights(self.encoder_weights)
        return encoder

    def build(self, hp):
        from models.classifier import (build_classifier, build_head, compile_classifier,
                                       feature_model)

        s = self.space
        extractor = feature_model(self._encoder(), hp.Choice("features", s["features"]))
        frozen = hp.Boolean("frozen", default=True) if len(s["frozen"]) > 1 \
            else hp.Fixed("frozen", s["frozen"][0])
        head = build_head(tuple(extractor.output.shape[1:]),
                          hp.Choice("hidden_units", s["hidden_units"]),
                          hp.Float("dropout", *s["dropout"][:2], step=s["dropout"][2]),
                          self.num_classes)
        model = build_classifier(extractor, head, frozen=bool(frozen))
        lr = hp.Float("learning_rate", *s["learning_rate"], sampling="log")
        wd = hp.Float("weight_decay", *s["weight_decay"], sampling="log")
        hp.Choice("batch_size", s["batch_size"])
        return compile_classifier(model, lr, wd)

    def search_data(self, data) -> tuple:
        return data.x_train, data.y_train, (data.x_val, data.y_val)

    def test_metrics(self, model, data) -> dict:
        loss, accuracy = model.evaluate(data.x_test, data.y_test, batch_size=512, verbose=0)[:2]
        return {"test_accuracy": float(accuracy), "test_loss": float(loss)}


#: Search spaces of :class:`ClassifierHyperModel`.
CLASSIFIER_SPACES = {
    "default": {
        "features": ["code", "dense1", "conv3"],
        "frozen": [True, False],
        "hidden_units": list(HIDDEN_UNITS),
        "dropout": DROPOUT,
        "learning_rate": LEARNING_RATE,
        "weight_decay": WEIGHT_DECAY,
        "batch_size": [32, 64, 128, 256],
    },
    "small": {
        "features": ["code", "dense1"],
        "frozen": [True, False],
        "hidden_units": [16, 32],
        "dropout": (0.0, 0.2, 0.1),
        "learning_rate": (1e-3, 1e-2),
        "weight_decay": (1e-5, 1e-3),
        "batch_size": [16, 32],
    },
}
