"""FID, KID, precision, recall and class coverage of image samples (the ``quality``
command, the GAN's tuner objective, the GAN benchmarks).

Features come from a *reference extractor*: a small CNN classifier trained
with a fixed, seeded recipe (:data:`REFERENCE_RECIPE`) on every training image
of the dataset (train + validation, 60 000 for Fashion-MNIST), cached as
``runs/domain_classifier/<dataset>-ref-s<seed>-<hash>.keras`` where the hash
covers the recipe, the dataset and the seed, so numbers computed in the same
file name are comparable and no others are. Each image's feature vector is
its penultimate layer; its predicted class gives coverage. ``--extractor-seeds
0 1 2`` scores in several extractors and reports the mean and std.

* FID: Frechet distance between Gaussians fitted to the features of the
  samples and of the training split (``scipy.linalg.sqrtm``).
* KID: unbiased MMD^2 with the cubic polynomial kernel
  ``k(x, y) = (x.y / d + 1)^3``, averaged over random subsets; reported raw
  (no scaling): in these unnormalised features it reads about 0.01 for real
  test images and 1-10 for models.
* Precision and recall (Kynkaanniemi et al. 2019): each set's manifold is the
  union of balls reaching each point's k-th nearest neighbour (k = 3);
  precision is the share of samples inside the real manifold, recall the
  share of real images inside the samples' one (as many real images as samples).
* Coverage: the share of samples the classifier puts in each class.

The floor row compares the real test split with the training split.
"""

from __future__ import annotations

import os


FEATURE_LAYER = "features"


# --------------------------------------------------------------- statistics


def fid(features_a, features_b) -> float:
    """Frechet distance between Gaussians fitted to two feature sets.

    tr(sqrtm(A B)) is computed as the sum of the square roots of the eigenvalues
    of sqrt(A) B sqrt(A), which has the same spectrum and is symmetric: exact for
    the singular covariances of ReLU features, where scipy's ``sqrtm(A @ B)``
    warns and needs a regularising epsilon.
    """
    import numpy as np

    a, b = np.asarray(features_a, "float64"), np.asarray(features_b, "float64")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(cov_a)
    sqrt_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    product = sqrt_a @ cov_b @ sqrt_a
    trace_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0, None)).sum()
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b)
                 - 2 * trace_covmean)


def kid(features_a, features_b, subsets: int = 10, subset_size: int = 1000,
        seed: int = 0) -> tuple:
    """Kernel inception distance: (mean, std) of unbiased MMD^2 over subsets."""
    import numpy as np

    a, b = np.asarray(features_a, "float64"), np.asarray(features_b, "float64")
    m = min(subset_size, len(a), len(b))
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        mmd = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
               + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
               - 2 * kxy.mean())
        values.append(mmd)
    return float(np.mean(values)), float(np.std(values))


def knn_radii(features, k: int = 3):
    """Distance from each point to its k-th nearest other point."""
    from sklearn.neighbors import NearestNeighbors

    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features)
    return distances[:, k]  # column 0 is the point itself


def share_inside(points, centres, radii, batch: int = 500) -> float:
    """Share of ``points`` within ``radii[j]`` of some ``centres[j]``; the distance
    matrix is built ``batch`` rows at a time so memory stays bounded."""
    import numpy as np

    points, centres = np.asarray(points, "float64"), np.asarray(centres, "float64")
    centre_norms = np.sum(centres ** 2, axis=1)
    inside = 0
    for start in range(0, len(points), batch):
        rows = points[start:start + batch]
        squared = (np.sum(rows ** 2, axis=1)[:, None] + centre_norms[None, :]
                   - 2.0 * rows @ centres.T)
        # Round-off can leave a tiny negative square for a point equal to a centre.
        inside += int(np.sum(np.any(squared <= radii[None, :] ** 2 + 1e-9, axis=1)))
    return inside / len(points)


def precision_recall(real_features, fake_features, k: int = 3) -> tuple:
    """(precision, recall) with k-NN manifolds (Kynkaanniemi et al. 2019)."""
    precision = share_inside(fake_features, real_features, knn_radii(real_features, k))
    recall = share_inside(real_features, fake_features, knn_radii(fake_features, k))
    return precision, recall


def coverage(probabilities, n_classes: int) -> list:
    """Share of samples predicted in each class (argmax of the classifier)."""
    import numpy as np

    predicted = np.argmax(probabilities, axis=1)
    return (np.bincount(predicted, minlength=n_classes) / len(predicted)).tolist()


# -------------------------------------------------------- domain classifier


def build_domain_classifier(n_classes: int = 10) -> "keras.Model":  # noqa: F821
    import keras

    inputs = keras.Input((28, 28, 1), name="image")
    x = inputs
    for i, filters in enumerate((32, 64), start=1):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                name=f"conv{i}a")(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                name=f"conv{i}b")(x)
        x = keras.layers.MaxPooling2D(name=f"pool{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(128, activation="relu", name=FEATURE_LAYER)(x)
    x = keras.layers.Dropout(0.3, name="dropout")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="class")(x)
    return keras.Model(inputs, outputs, name="domain_classifier")


# The reference extractor's recipe. Changing anything here changes the hash in
# its file name, so features from different recipes are never mixed.
REFERENCE_RECIPE = {"version": 1, "builder": "build_domain_classifier",
                    "images": "all training images (train + validation)",
                    "epochs": 4, "batch_size": 128, "optimizer": "Adam(1e-3)",
                    "loss": "sparse_categorical_crossentropy"}
REFERENCE_FOLDER = os.path.join("runs", "domain_classifier")


def recipe_hash(dataset: str, seed: int, recipe: dict = REFERENCE_RECIPE) -> str:
    import hashlib
    import json

    text = json.dumps({**recipe, "dataset": dataset, "seed": int(seed)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def reference_path(dataset: str, seed: int, folder: str = REFERENCE_FOLDER) -> str:
    return os.path.join(folder, f"{dataset}-ref-s{seed}-{recipe_hash(dataset, seed)}.keras")


def train_classifier(data, epochs: int, seed: int, verbose: int = 0, images=None,
                     labels=None, validation=True):
    """A seeded classifier trained on ``images`` (default ``data.x_train``);
    returns (model, test accuracy)."""
    import keras

    from accel import accelerate

    keras.utils.set_random_seed(seed)
    model = build_domain_classifier(len(data.class_names))
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    images = data.x_train if images is None else images
    labels = data.y_train if labels is None else labels
    accelerate(model).fit(images, labels, epochs=epochs, batch_size=128, verbose=verbose,
              validation_data=(data.x_val, data.y_val) if validation else None)
    return model, float(model.evaluate(data.x_test, data.y_test, verbose=0)[1])


def reference_extractor(dataset: str, data_dir=None, seed: int = 0, verbose: int = 0,
                        folder: str = REFERENCE_FOLDER):
    """(model, info) of the reference extractor for ``dataset`` and ``seed``:
    loaded from the cache, or trained by :data:`REFERENCE_RECIPE` on the full
    training split (loaded here, whatever subset the run uses) and cached."""
    import numpy as np

    from data.datasets import load_dataset
    from models.saving import load_keras_model, save_model
    from storage.files import read_json, write_json

    path = reference_path(dataset, seed, folder)
    info_path = os.path.splitext(path)[0] + ".json"
    if os.path.isfile(path) and os.path.isfile(info_path):
        print(f"reusing the reference extractor {path}", flush=True)
        return load_keras_model(path, "reference extractor"), read_json(info_path)
    full = load_dataset(dataset, data_dir=data_dir, val_size=0, seed=0)
    images = np.concatenate([full.x_train, full.x_val])
    labels = np.concatenate([full.y_train, full.y_val])
    model, accuracy = train_classifier(full, REFERENCE_RECIPE["epochs"], seed, verbose,
                                       images, labels, validation=False)
    info = {"path": path, "recipe_hash": recipe_hash(dataset, seed), "seed": seed,
            "dataset": dataset, "recipe": REFERENCE_RECIPE, "test_accuracy": accuracy,
            "train_images": int(len(images))}
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    save_model(model, path)
    write_json(info_path, info)
    print(f"trained the reference extractor (seed {seed}): test accuracy {accuracy:.4f}; "
          f"saved {path}", flush=True)
    return model, info


def domain_classifier(data, path: str, epochs: int = 4, verbose: int = 0, seed: int = 0):
    """The classifier saved at ``path``, trained on ``data`` and saved if absent
    (an explicit ``--classifier``; the default is :func:`reference_extractor`)."""
    from models.saving import load_keras_model, save_model
    from storage.files import write_json

    if os.path.isfile(path):
        print(f"reusing the domain classifier {path}", flush=True)
        return load_keras_model(path, "domain classifier")
    model, accuracy = train_classifier(data, epochs, seed, verbose)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    save_model(model, path)
    write_json(os.path.splitext(path)[0] + ".json",
               {"test_accuracy": accuracy, "epochs": epochs, "seed": seed,
                "train_images": int(len(data.x_train))})
    print(f"trained the domain classifier: test accuracy {accuracy:.4f}; saved {path}",
          flush=True)
    return model


def featurize(classifier, images):
    """(features, class probabilities) of images in [0, 1]."""
    import keras
    import numpy as np

    head = keras.Model(classifier.inputs,
                       [classifier.get_layer(FEATURE_LAYER).output, classifier.outputs[0]])
    features, probabilities = head.predict(images, batch_size=500, verbose=0)
    return np.asarray(features), np.asarray(probabilities)


def score(features, probabilities, reference_features, n_classes: int, seed: int,
          k: int = 3) -> dict:
    """Every statistic of one sample set against the reference features.
    Precision and recall use as many reference points as samples (seeded)."""
    import numpy as np

    shares = coverage(probabilities, n_classes)
    kid_mean, kid_std = kid(features, reference_features, seed=seed)
    rng = np.random.default_rng(seed)
    real = reference_features[rng.choice(len(reference_features),
                                         min(len(features), len(reference_features)),
                                         replace=False)]
    precision, recall = precision_recall(real, features, k)
    return {"fid": fid(features, reference_features), "kid": kid_mean, "kid_std": kid_std,
            "precision": precision, "recall": recall,
            "coverage": shares, "classes_covered": int(sum(s > 0.0 for s in shares)),
            "max_class_share": float(max(shares)), "n_samples": int(len(features))}


STATISTICS = ("fid", "kid", "precision", "recall")


def average_scores(scores: list) -> dict:
    """One row from the scores in several extractors: means, with ``<stat>_std``
    over extractors and the per-extractor values under ``by_extractor``."""
    import numpy as np

    row = dict(scores[0])
    if len(scores) > 1:
        # kid_std becomes the spread over extractors, as for the other statistics.
        row["kid_subset_std"] = float(np.mean([s["kid_std"] for s in scores]))
        for key in STATISTICS:
            values = [s[key] for s in scores]
            row[key], row[f"{key}_std"] = float(np.mean(values)), float(np.std(values))
        row["coverage"] = np.mean([s["coverage"] for s in scores], axis=0).tolist()
        row["max_class_share"] = float(max(row["coverage"]))
        row["classes_covered"] = min(s["classes_covered"] for s in scores)
        row["by_extractor"] = [{key: s[key] for key in STATISTICS} for s in scores]
    return row
