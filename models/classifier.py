"""Classifiers on a pretrained encoder, and the supervised CNN baseline.

A classifier is the functional composition ``head(features(image, training=False))``:

* ``features`` is a sub-model cut out of a CAE encoder at one of its layers
  (:data:`FEATURES`); it shares the encoder's weights. Frozen, it is a fixed
  feature extractor; unfrozen (all of it, or its last k layers), it is
  fine-tuned with the head. It is always called with ``training=False`` so any
  dropout inside the encoder stays off, as in the Keras transfer-learning guide.
* ``head`` is Flatten -> Dense(hidden, relu) -> Dropout -> Dense(classes, softmax),
  a separate model so it can also be trained alone on cached features (same
  result as training the frozen classifier, without re-running the encoder).

The baseline is the same network (encoder architecture up to the same layer,
the same head) with random initial weights, trained end to end.

Both models trained end to end on images (the fine-tuned one and the baseline)
can put an ``augmentation`` sub-model (:func:`build_augmentation`: random
horizontal flips, shifts, erased rectangles) in front of the features. Keras's random
preprocessing layers transform only while training (``fit``) and pass images
through unchanged at inference (``predict``, ``evaluate``), on every backend.
"""

from __future__ import annotations

import keras

from models.cae import IMAGE_SHAPE, CAEConfig, build_encoder, split_cae

# Where the head reads the encoder: the 10-d code, the 256-unit hidden dense
# layer, the flattened 3x3x128 conv3 map, or the 7x7x64 conv2 map.
FEATURES = {"code": "code", "dense1": "dense1", "conv3": "flatten", "conv2": "conv2"}


def encoder_from_model(model: keras.Model) -> keras.Model:
    """The encoder inside a loaded ``.keras`` model: a CAE's encoder, or the model itself.

    Raises:
        ValueError: the model is neither a CAE nor an encoder taking 28x28x1
            images to a 1-D code.
    """
    names = [layer.name for layer in model.layers]
    if "encoder" in names and "decoder" in names:
        return split_cae(model)[0]
    try:  # a subclassed model (a VAE) or an unbuilt Sequential has no symbolic inputs
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise ValueError(f"model {model.name!r} ({type(model).__name__}) is not a CAE or an "
                         f"encoder: it has no defined inputs and outputs (a VAE, or a model "
                         f"never built); expected a CAE, or an encoder mapping (28, 28, 1) "
                         f"to a 1-D code")
    in_shape = tuple(inputs[0].shape[1:]) if len(inputs) == 1 else None
    out_shape = tuple(outputs[0].shape[1:]) if len(outputs) == 1 else None
    if in_shape != IMAGE_SHAPE or out_shape is None or len(out_shape) != 1:
        got_in = ", ".join(str(tuple(t.shape[1:])) for t in inputs)
        got_out = ", ".join(str(tuple(t.shape[1:])) for t in outputs)
        raise ValueError(f"model {model.name!r} is not a CAE or an encoder: it maps "
                         f"{got_in} to {got_out}; expected a CAE, or an encoder mapping "
                         f"(28, 28, 1) to a 1-D code")
    return model


def feature_model(encoder: keras.Model, features: str = "code") -> keras.Model:
    """The encoder from its input up to the layer named by ``features`` (shared weights).

    Raises:
        ValueError: unknown ``features`` or the encoder has no such layer.
    """
    if features not in FEATURES:
        raise ValueError(f"unknown features {features!r}; valid: {', '.join(FEATURES)}")
    if features == "code":
        out = encoder.outputs[0]
    else:
        names = [layer.name for layer in encoder.layers]
        if FEATURES[features] not in names:
            raise ValueError(f"encoder {encoder.name!r} has no layer {FEATURES[features]!r} "
                             f"for features {features!r} (layers: {', '.join(names)}); "
                             f"use features 'code'")
        out = encoder.get_layer(FEATURES[features]).output
    return keras.Model(encoder.inputs, out, name="features")


def build_augmentation(flip: bool = True, shift: float = 0.1, erasing: float = 0.0,
                       seed: int | None = None) -> keras.Sequential:
    """Random horizontal flips, shifts of up to ``shift`` of the height / width and,
    with probability ``erasing``, a random rectangle (2-33% of the image) erased to 0.

    Fashion-MNIST items are left-right symmetric enough for flips; shifted-in
    pixels are 0, the images' background; shifts are by whole pixels (nearest
    interpolation) so training images are not blurred, unlike test images. The layers are active only when
    called with ``training=True``.

    Raises:
        ValueError: ``shift`` outside [0, 1) or ``erasing`` outside [0, 1].
    """
    if not 0.0 <= shift < 1.0:
        raise ValueError(f"shift must be in [0, 1). Received: shift={shift}")
    if not 0.0 <= erasing <= 1.0:
        raise ValueError(f"erasing must be in [0, 1]. Received: erasing={erasing}")
    layers = []
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed, name="flip"))
    if shift > 0:
        layers.append(keras.layers.RandomTranslation(
            shift, shift, fill_mode="constant", fill_value=0.0, interpolation="nearest",
            seed=None if seed is None else seed + 1, name="shift"))
    if erasing > 0:
        # A (p, p) factor: Keras draws each image's probability from [0, factor]
        # for a single number, (p, p) makes it exactly p.
        layers.append(keras.layers.RandomErasing(
            factor=(erasing, erasing), value_range=(0, 1), fill_value=0.0,
            seed=None if seed is None else seed + 2, name="erasing"))
    return keras.Sequential(layers, name="augmentation")


def build_head(feature_shape: tuple, hidden_units: int = 256, dropout: float = 0.3,
               num_classes: int = 10, feature_dropout: float = 0.0) -> keras.Model:
    """[Dropout(feature_dropout) ->] Flatten -> Dense(hidden, relu) -> Dropout(dropout)
    -> Dense(num_classes, softmax)."""
    for name, rate in (("dropout", dropout), ("feature_dropout", feature_dropout)):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"{name} must be in [0, 1). Received: {name}={rate}")
    inputs = keras.Input(tuple(feature_shape), name="features")
    x = inputs
    if feature_dropout > 0:
        # On a conv map, dropping whole channels regularises more than pixels.
        drop = (keras.layers.SpatialDropout2D if len(feature_shape) == 3
                else keras.layers.Dropout)
        x = drop(feature_dropout, name="feature_dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)  # identity on 1-D features
    x = keras.layers.Dense(int(hidden_units), activation="relu", name="hidden")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="head")


def build_classifier(features: keras.Model, head: keras.Model, frozen: bool = True,
                     name: str = "classifier",
                     augmentation: keras.Model | None = None) -> keras.Model:
    """``head(features(augmentation(image), training=False))``; the features frozen
    unless ``frozen=False``; no augmentation unless one is given."""
    features.trainable = not frozen
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    x = inputs if augmentation is None else augmentation(inputs)
    outputs = head(features(x, training=False))
    return keras.Model(inputs, outputs, name=name)


def build_baseline(encoder: keras.Model | None = None, features: str = "code",
                   hidden_units: int = 256, dropout: float = 0.3,
                   num_classes: int = 10,
                   augmentation: keras.Model | None = None,
                   feature_dropout: float = 0.0) -> keras.Model:
    """The supervised CNN: the encoder's architecture up to ``features`` + the head,
    with fresh random weights (``clone_model`` re-initialises). Without an
    encoder, the default CAE encoder architecture. ``augmentation``: as in
    :func:`build_classifier`."""
    fresh = keras.models.clone_model(encoder) if encoder is not None \
        else build_encoder(CAEConfig())
    extractor = feature_model(fresh, features)
    head = build_head(extractor.output.shape[1:], hidden_units, dropout, num_classes,
                      feature_dropout)
    return build_classifier(extractor, head, frozen=False, name="baseline",
                            augmentation=augmentation)


def encoder_layers(classifier: keras.Model) -> list:
    """The layers of the classifier's ``features`` sub-model that hold weights, in order."""
    return [layer for layer in classifier.get_layer("features").layers if layer.weights]


def freeze_encoder(classifier: keras.Model) -> None:
    """Makes the encoder part untrainable (recompile afterwards)."""
    classifier.get_layer("features").trainable = False


def unfreeze_encoder(classifier: keras.Model, last_k: int | None = None) -> list:
    """Makes all, or the last ``last_k``, weighted encoder layers trainable.

    Recompile afterwards: Keras fixes the trainable weights at compile time.

    Returns:
        The names of the layers now trainable.
    """
    features = classifier.get_layer("features")
    features.trainable = True
    layers = encoder_layers(classifier)
    if last_k is not None and last_k < len(layers):
        for layer in layers[:len(layers) - max(0, last_k)]:
            layer.trainable = False
    return [layer.name for layer in layers if layer.trainable]


@keras.saving.register_keras_serializable(package="unsupervised28")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer labels against targets smoothed towards uniform.

    Keras's ``SparseCategoricalCrossentropy`` has no ``label_smoothing``; this
    one-hot encodes the labels and uses ``CategoricalCrossentropy``'s.

    Args:
        label_smoothing: in [0, 1); 0 is plain sparse cross-entropy.
        num_classes: number of classes.
    """

    def __init__(self, label_smoothing: float = 0.1, num_classes: int = 10,
                 name: str = "smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError("label_smoothing must be in [0, 1). "
                             f"Received: label_smoothing={label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        self.num_classes = int(num_classes)

    def call(self, y_true, y_pred):
        labels = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
        targets = keras.ops.one_hot(labels, self.num_classes, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            targets, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing,
                "num_classes": self.num_classes}


def compile_classifier(model: keras.Model, learning_rate: float = 1e-3,
                       weight_decay: float = 1e-4, label_smoothing: float = 0.0,
                       ema_momentum: float = 0.0, decay_steps: int | None = None) -> keras.Model:
    """AdamW (decoupled weight decay), sparse cross-entropy (smoothed when
    ``label_smoothing`` > 0), accuracy.

    With ``ema_momentum`` in (0, 1) the optimizer also keeps an exponential
    moving average of the weights (``use_ema``); train with
    :func:`training.classifier._fit`, which evaluates and keeps the average.
    With ``decay_steps``, the learning rate follows a cosine from
    ``learning_rate`` down to 0 over that many steps.
    """
    if not 0.0 <= ema_momentum < 1.0:
        raise ValueError(f"ema_momentum must be in [0, 1) (0: no average). "
                         f"Received: ema_momentum={ema_momentum}")
    loss = (SmoothedSparseCrossentropy(label_smoothing) if label_smoothing > 0
            else "sparse_categorical_crossentropy")
    if decay_steps is not None:
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps)
    optimizer = keras.optimizers.AdamW(
        learning_rate=learning_rate, weight_decay=weight_decay,
        use_ema=ema_momentum > 0, ema_momentum=ema_momentum)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    return model


def trainable_parameters(model: keras.Model) -> int:
    """Number of scalars in the model's trainable weights."""
    import math
    return int(sum(math.prod(w.shape) for w in model.trainable_weights))
