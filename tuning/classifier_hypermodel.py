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

    @property
    def semi_supervised(self) -> bool:
        """Whether the space is a semi-supervised one (:data:`CLASSIFIER_SPACES`)."""
        return "labels" in self.space

    def build(self, hp):
        from models.classifier import (build_classifier, build_head, compile_classifier,
                                       feature_model)

        s = self.space
        if self.semi_supervised:
            return self._build_semi_supervised(hp)
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

    def _build_semi_supervised(self, hp):
        """The semi-supervised classifier (``models.semi_supervised``) with the
        trial's weights of its terms, head and AdamW."""
        import keras

        from models.semi_supervised import CONSISTENCY, STRONG_VIEWS, build_semi_supervised
        from training.semi_supervised_config import SemiSupervisedSettings

        s = self.space
        model = build_semi_supervised(
            self._encoder(), hp.Choice("features", s["features"]),
            hidden_units=hp.Choice("hidden_units", s["hidden_units"]),
            dropout=hp.Float("dropout", *s["dropout"][:2], step=s["dropout"][2]),
            num_classes=self.num_classes,
            reconstruction_weight=hp.Float("reconstruction_weight",
                                           *s["reconstruction_weight"], sampling="log"),
            consistency=hp.Choice("consistency", [c for c in s["consistency"]
                                                  if c in CONSISTENCY]),
            consistency_weight=hp.Float("consistency_weight", *s["consistency_weight"],
                                        sampling="log"),
            threshold=hp.Float("pseudo_label_threshold", *s["pseudo_label_threshold"]),
            distribution_alignment=hp.Boolean(  # classify's default first
                "distribution_alignment",
                default=SemiSupervisedSettings.distribution_alignment),
            strong_view=hp.Choice("strong_view", sorted(
                STRONG_VIEWS, key=lambda view: view != SemiSupervisedSettings.strong_view)))
        hp.Choice("batch_size", s["batch_size"])  # labelled images per step
        lr = hp.Float("learning_rate", *s["learning_rate"], sampling="log")
        wd = hp.Float("weight_decay", *s["weight_decay"], sampling="log")
        model.compile(optimizer=keras.optimizers.AdamW(lr, weight_decay=wd))
        return model

    def fit(self, hp, model, *args, **kwargs):
        """A semi-supervised trial trains on ``space["labels"]`` seeded, class-balanced
        labels of the training images and on all of them unlabelled; the others as
        :class:`TrainableHyperModel` trains them."""
        if not self.semi_supervised:
            return super().fit(hp, model, *args, **kwargs)
        import keras
        import numpy as np

        from accel import accelerate
        from data.label_subsets import class_balanced_count, class_balanced_subset
        from storage.feeds import for_fit
        from training.classifier import EpochOrder
        from training.semi_supervised import LabelledUnlabelledFeed

        if args and isinstance(args[0], keras.utils.PyDataset):  # the retraining's feed
            x, y = args[0].x, args[0].y
        else:
            x, y = args[0], args[1] if len(args) > 1 else kwargs.pop("y")
        kwargs.pop("batch_size", None)
        kwargs.pop("shuffle", None)
        labels = self.space["labels"]
        if labels >= len(y):
            idx = np.arange(len(y))
        else:
            try:
                idx = class_balanced_count(y, labels, seed=0)
            except ValueError:  # a class short of its share: the same fraction of each
                idx = class_balanced_subset(y, labels / len(y), seed=0)
        batch = hp.get("batch_size")
        feed = LabelledUnlabelledFeed(x[idx], y[idx], x, batch,
                                      batch * self.space["unlabelled_ratio"], seed=0)
        callbacks = [EpochOrder(feed), *kwargs.pop("callbacks", [])]
        return accelerate(model).fit(for_fit(feed), shuffle=False, callbacks=callbacks, **kwargs)

    def search_data(self, data) -> tuple:
        return data.x_train, data.y_train, (data.x_val, data.y_val)

    def inference_model(self, model):
        """The model saved as ``best.keras``: image -> class probabilities."""
        return model.classifier() if self.semi_supervised else model

    def test_metrics(self, model, data) -> dict:
        import numpy as np

        if self.semi_supervised:
            probs = self.inference_model(model).predict(data.x_test, batch_size=512, verbose=0)
            return {"test_accuracy": float(np.mean(probs.argmax(axis=1) == data.y_test))}
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
    # The semi-supervised classifier: the weights of its terms with 480 labels (1% of
    # Fashion-MNIST's training split) and every training image unlabelled.
    "semi_supervised": {
        "labels": 480,
        "unlabelled_ratio": 4,
        "features": ["conv2", "conv3", "dense1"],
        "hidden_units": [128, 256],
        "dropout": (0.2, 0.6, 0.1),
        "learning_rate": (3e-4, 3e-3),
        "weight_decay": (1e-5, 1e-3),
        "reconstruction_weight": (0.1, 10.0),
        "consistency": ["pseudo_label", "mean_squared"],
        "consistency_weight": (0.3, 3.0),
        "pseudo_label_threshold": (0.8, 0.98),
        "batch_size": [32],
    },
}
