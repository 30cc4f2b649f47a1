"""A classifier trained on a few labelled images and many unlabelled ones at once.

After keras-io's examples/generative/vae.py: named functional sub-models held by a
small subclassed model whose training step (:mod:`models.train_steps`, one per
backend) sums the terms of one loss:

* ``supervised``: cross-entropy of the head's prediction on the labelled part of
  the batch (weakly augmented);
* ``reconstruction``: the mean squared error of the decoder's image from the
  encoder's code, on every image of the batch (labelled and unlabelled), the
  CAE's objective, trained jointly rather than only before (Rasmus et al. 2015
  train reconstruction and classification together for the same reason: a
  reconstruction objective used only as pre-training is forgotten in fine-tuning);
* ``consistency`` on the unlabelled images, one of :data:`CONSISTENCY`:
  ``pseudo_label`` (FixMatch, Sohn et al. 2020: the prediction on a weakly
  augmented copy, where its confidence reaches ``threshold``, is the hard label
  of a strongly augmented copy), ``mean_squared`` (the squared distance between
  the two copies' predicted probabilities, the Pi-model of Laine & Aila 2017)
  or ``none``. With ``distribution_alignment``, the weak copies' predictions are
  first divided by their mean over the batch and renormalised (ReMixMatch's
  distribution alignment, Berthelot et al. 2020, towards equal classes, with the
  batch's mean as the model's running marginal): the classes the model rarely
  predicts gain the confidence a pseudo-label needs.

Sub-models: ``encoder`` (image -> ``[features, code]``: the layer the head reads,
and the code the decoder reads), ``decoder`` (code -> image), ``head`` (features
-> class probabilities), ``weak`` and ``strong`` (the two augmentations, active in
training only). :meth:`SemiSupervisedClassifier.classifier` is the inference
model, ``head(features(image))`` of plain Keras layers, which loads with plain
``keras.saving.load_model``.

A training batch is ``((labelled_images, unlabelled_images), labels)``
(:class:`training.semi_supervised.LabelledUnlabelledFeed`); an evaluation batch
is ``(images, labels)``.
"""

from __future__ import annotations

import keras
from keras import ops

from models.cae import IMAGE_SHAPE
from models.phased import PhasedModel
from models.train_steps import Phase

CONSISTENCY = ("pseudo_label", "mean_squared", "none")


STRONG_VIEWS = ("shift", "affine")  # the strong views of build_strong_augmentation


def _jit_on_jax(layer: keras.layers.Layer) -> keras.layers.Layer:
    """``layer``, marked for compilation on jax.

    Keras marks its affine augmentation layers as ones TensorFlow's XLA cannot
    compile, which makes ``compile`` run the whole training step of a model
    holding one op by op (measured 20 times slower on jax); jax compiles them.
    """
    if keras.backend.backend() == "jax":
        layer.supports_jit = True
    return layer


def _shift(shift: float, seed: int | None) -> keras.layers.RandomTranslation:
    """Whole-pixel shifts of up to ``shift``, zeros shifted in."""
    return _jit_on_jax(keras.layers.RandomTranslation(
        shift, shift, fill_mode="constant", fill_value=0.0, interpolation="nearest",
        seed=seed, name="shift"))


def build_weak_augmentation(shift: float = 0.0625, seed: int | None = None) -> keras.Sequential:
    """Random horizontal flips and whole-pixel shifts of up to ``shift`` (FixMatch's
    weak view); flips only with ``shift`` 0."""
    layers = [keras.layers.RandomFlip("horizontal", seed=seed, name="flip")]
    if shift > 0:
        layers.append(_shift(shift, None if seed is None else seed + 1))
    return keras.Sequential(layers, name="weak")


def build_strong_augmentation(seed: int | None = None, view: str = "shift") -> keras.Sequential:
    """FixMatch's strong view, with the changes that suit grey-scale images.

    ``view`` is one of :data:`STRONG_VIEWS`:

    * ``shift``: the weak view's flips and larger shifts, then contrast changes
      and an erased rectangle on every image;
    * ``affine``: also rotations (up to 15 degrees), shears, and changes of
      brightness and sharpness, each of a random strength for every image: the
      grey-scale operations of RandAugment (Cubuk et al. 2020), all applied at
      once rather than two drawn at a time.
    """
    if view not in STRONG_VIEWS:
        raise ValueError(f"view must be one of {', '.join(STRONG_VIEWS)}. "
                         f"Received: view={view!r}")
    seed_of = (lambda k: None) if seed is None else (lambda k: seed + k)
    layers = [keras.layers.RandomFlip("horizontal", seed=seed_of(0), name="flip")]
    if view == "affine":
        layers += [
            _jit_on_jax(keras.layers.RandomRotation(1 / 24, fill_mode="constant",
                                                    seed=seed_of(4), name="rotation")),
            _jit_on_jax(keras.layers.RandomShear(0.1, 0.1, fill_mode="constant",
                                                 seed=seed_of(5), name="shear")),
        ]
    layers += [_shift(0.125, seed_of(1)),
               keras.layers.RandomContrast(0.5, value_range=(0, 1), seed=seed_of(2),
                                           name="contrast")]
    if view == "affine":
        layers += [
            keras.layers.RandomBrightness(0.2, value_range=(0, 1), seed=seed_of(6),
                                          name="brightness"),
            keras.layers.RandomSharpness(0.5, value_range=(0, 1), seed=seed_of(7),
                                         name="sharpness"),
        ]
    layers.append(keras.layers.RandomErasing(factor=(1.0, 1.0), value_range=(0, 1),
                                             fill_value=0.0, seed=seed_of(3), name="erasing"))
    return keras.Sequential(layers, name="strong")


def build_code_decoder(code_dim: int, width: int = 32) -> keras.Model:
    """Code -> 28x28x1 image in [0, 1]: a decoder for an encoder that came without one."""
    inputs = keras.Input((int(code_dim),), name="code")
    x = keras.layers.Dense(7 * 7 * 2 * width, activation="relu", name="decoder_dense")(inputs)
    x = keras.layers.Reshape((7, 7, 2 * width), name="reshape")(x)
    x = keras.layers.Conv2DTranspose(2 * width, 3, strides=2, padding="same",
                                     activation="relu", name="deconv1")(x)  # 14x14
    x = keras.layers.Conv2DTranspose(width, 3, strides=2, padding="same",
                                     activation="relu", name="deconv2")(x)  # 28x28
    image = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid", name="image")(x)
    return keras.Model(inputs, image, name="decoder")


def two_output_encoder(encoder: keras.Model, features: keras.Model) -> keras.Model:
    """``image -> [features, code]`` sharing the layers (and weights) of ``encoder``,
    whose output is the code, and of ``features``, a model cut out of it."""
    return keras.Model(encoder.inputs, [features.outputs[0], encoder.outputs[0]],
                       name="encoder")


def _crossentropy(labels, probabilities, label_smoothing: float):
    labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
    targets = ops.one_hot(labels, ops.shape(probabilities)[-1], dtype=probabilities.dtype)
    return keras.losses.categorical_crossentropy(targets, probabilities,
                                                 label_smoothing=label_smoothing)


@keras.saving.register_keras_serializable(package="unsupervised28")
class SemiSupervisedClassifier(PhasedModel):
    """Encoder, decoder and classification head trained on one summed loss.

    Args:
        encoder, decoder, head, weak, strong: the sub-models (module docstring).
        reconstruction_weight: weight of the reconstruction term, >= 0.
        consistency: one of :data:`CONSISTENCY`.
        consistency_weight: weight of the consistency term, >= 0.
        threshold: with ``pseudo_label``, the least confidence of a pseudo-label
            in [0, 1].
        label_smoothing: of the supervised cross-entropy, in [0, 1).
        distribution_alignment: align the weak copies' predictions to equal
            classes before they become targets (module docstring).
        seed: seeds the model's own noise (none drawn at present; kept for the base).
    """

    SUBMODELS = ("encoder", "decoder", "head", "weak", "strong")
    TRACKERS = {"loss_tracker": "loss", "supervised_tracker": "supervised_loss",
                "reconstruction_tracker": "reconstruction_loss",
                "consistency_tracker": "consistency_loss",
                "mask_tracker": "pseudo_label_rate", "accuracy_tracker": "accuracy"}

    def __init__(self, encoder, decoder, head, weak, strong,
                 reconstruction_weight: float = 1.0, consistency: str = "pseudo_label",
                 consistency_weight: float = 1.0, threshold: float = 0.95,
                 label_smoothing: float = 0.0, distribution_alignment: bool = False,
                 seed: int | None = None, **kwargs):
        super().__init__({"encoder": encoder, "decoder": decoder, "head": head,
                          "weak": weak, "strong": strong}, seed=seed, **kwargs)
        if consistency not in CONSISTENCY:
            raise ValueError(f"consistency must be one of {', '.join(CONSISTENCY)}. "
                             f"Received: consistency={consistency!r}")
        for name, value in (("reconstruction_weight", reconstruction_weight),
                            ("consistency_weight", consistency_weight)):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0. Received: {name}={value}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1]. Received: threshold={threshold}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError("label_smoothing must be in [0, 1). "
                             f"Received: label_smoothing={label_smoothing}")
        self.reconstruction_weight = float(reconstruction_weight)
        self.consistency = consistency
        self.consistency_weight = float(consistency_weight)
        self.threshold = float(threshold)
        self.label_smoothing = float(label_smoothing)
        self.distribution_alignment = bool(distribution_alignment)

    @property
    def uses_strong_view(self) -> bool:
        return self.consistency != "none" and self.consistency_weight > 0

    def call(self, images, training=False):
        if isinstance(images, (tuple, list)):  # a training batch's (labelled, unlabelled)
            images = images[0]
        features, _ = self.encoder(images, training=training)
        return self.head(features, training=training)

    def classifier(self) -> keras.Model:
        """``image -> class probabilities``: the trained features and head, plain Keras."""
        features = keras.Model(self.encoder.inputs, self.encoder.outputs[0], name="features")
        image = keras.Input(IMAGE_SHAPE, name="image")
        return keras.Model(image, self.head(features(image)), name="semi_supervised")

    def _consistency(self, weak_probabilities, strong_probabilities):
        """(loss, fraction of the unlabelled images that contributed)."""
        target = ops.stop_gradient(weak_probabilities)
        if self.distribution_alignment:
            target = target / ops.maximum(ops.mean(target, axis=0, keepdims=True), 1e-6)
            target = target / ops.sum(target, axis=-1, keepdims=True)
        if self.consistency == "mean_squared":
            distance = ops.sum(ops.square(strong_probabilities - target), axis=-1)
            return ops.mean(distance), ops.ones_like(distance)
        confidence = ops.max(target, axis=-1)
        mask = ops.cast(confidence >= self.threshold, "float32")
        crossentropy = _crossentropy(ops.argmax(target, axis=-1), strong_probabilities, 0.0)
        return ops.mean(mask * crossentropy), mask

    def _loss(self, data, training=True):
        (labelled, unlabelled), labels = data[0], data[1]
        n = ops.shape(labelled)[0]
        # One encoder pass over both weak views: the labelled part feeds the
        # cross-entropy, all of it the reconstruction, the unlabelled part the
        # pseudo-labels (without a gradient through them).
        images = self.weak(ops.concatenate([labelled, unlabelled], axis=0), training=training)
        features, code = self.encoder(images, training=training)
        probabilities = ops.cast(self.head(features[:n], training=training), "float32")
        supervised = ops.mean(_crossentropy(labels, probabilities, self.label_smoothing))
        reconstruction = ops.mean(ops.square(
            ops.cast(self.decoder(code, training=training), "float32")
            - ops.cast(images, "float32")))
        total = supervised + self.reconstruction_weight * reconstruction
        logs = {"supervised_loss": supervised, "reconstruction_loss": reconstruction,
                "accuracy": self._correct(labels, probabilities)}
        if self.uses_strong_view:
            # The targets without the head's dropout: with it (0.5 by default) few
            # predictions reach the pseudo-labels' confidence.
            targets = ops.cast(self.head(features[n:], training=False), "float32")
            strong = self.strong(unlabelled, training=training)
            strong_features, _ = self.encoder(strong, training=training)
            strong_probabilities = ops.cast(self.head(strong_features, training=training),
                                            "float32")
            consistency, mask = self._consistency(targets, strong_probabilities)
            total = total + self.consistency_weight * consistency
            logs.update({"consistency_loss": consistency, "pseudo_label_rate": mask})
        logs["loss"] = total
        return total, logs

    @staticmethod
    def _correct(labels, probabilities):
        labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
        return ops.cast(ops.argmax(probabilities, axis=-1) == labels, "float32")

    def train_phases(self):
        return [Phase(self._loss, self.trainable_variables, self.optimizer)]

    def test_loss(self, data):
        """Cross-entropy and accuracy of ``(images, labels)`` (validation)."""
        images, labels = keras.utils.unpack_x_y_sample_weight(data)[:2]
        probabilities = ops.cast(self(images, training=False), "float32")
        loss = ops.mean(_crossentropy(labels, probabilities, 0.0))
        return loss, {"loss": loss, "supervised_loss": loss,
                      "accuracy": self._correct(labels, probabilities)}

    def extra_config(self) -> dict:
        return {"reconstruction_weight": self.reconstruction_weight,
                "consistency": self.consistency,
                "consistency_weight": self.consistency_weight,
                "threshold": self.threshold, "label_smoothing": self.label_smoothing,
                "distribution_alignment": self.distribution_alignment}


def build_semi_supervised(encoder: keras.Model | None = None, features: str = "conv2",
                          decoder: keras.Model | None = None, hidden_units: int = 256,
                          dropout: float = 0.5, feature_dropout: float = 0.2,
                          num_classes: int = 10, weak_shift: float = 0.0625,
                          strong_view: str = "shift", seed: int | None = None,
                          **loss_options) -> SemiSupervisedClassifier:
    """A :class:`SemiSupervisedClassifier` on ``encoder`` (its weights are trained:
    pass a copy to keep the original), reading the layer named by ``features``
    (:data:`models.classifier.FEATURES`).

    Args:
        encoder: image -> 1-D code; None: the CAE's encoder architecture, fresh.
        decoder: code -> image; None: :func:`build_code_decoder`, fresh.
        hidden_units, dropout, feature_dropout, num_classes: the head
            (:func:`models.classifier.build_head`).
        weak_shift: the weak view's largest shift, a fraction of the size.
        strong_view: the strong view (:func:`build_strong_augmentation`).
        seed: seeds the augmentations.
        **loss_options: the terms' options of :class:`SemiSupervisedClassifier`.
    """
    from models.cae import CAEConfig, build_encoder
    from models.classifier import build_head, feature_model

    encoder = encoder if encoder is not None else build_encoder(CAEConfig())
    extractor = feature_model(encoder, features)
    if decoder is None:
        decoder = build_code_decoder(encoder.outputs[0].shape[-1])
    head = build_head(tuple(extractor.output.shape[1:]), hidden_units, dropout, num_classes,
                      feature_dropout)
    return SemiSupervisedClassifier(
        two_output_encoder(encoder, extractor), decoder, head,
        build_weak_augmentation(weak_shift, seed=seed),
        build_strong_augmentation(None if seed is None else seed + 10, strong_view),
        seed=seed, name="semi_supervised_training", **loss_options)
