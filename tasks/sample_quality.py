"""`python main.py quality`: FID, KID, precision, recall and class coverage of samples.

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

import argparse
import os
import time

from tasks.common import (add_data_arguments, add_output_arguments, non_negative_int,
                          positive_int)

HELP = ("FID, KID, precision/recall and class coverage of GAN, VAE and CAE samples "
        "against real images")

FEATURE_LAYER = "features"


# --------------------------------------------------------------- statistics


def fid(features_a, features_b) -> float:
    """Frechet distance between Gaussians fitted to two feature sets."""
    import numpy as np
    from scipy import linalg

    a, b = np.asarray(features_a, "float64"), np.asarray(features_b, "float64")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():  # near-singular product: regularise
        eps = 1e-6 * np.eye(len(cov_a))
        covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = np.real(covmean)  # drops round-off imaginary parts
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * covmean))


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

    keras.utils.set_random_seed(seed)
    model = build_domain_classifier(len(data.class_names))
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    images = data.x_train if images is None else images
    labels = data.y_train if labels is None else labels
    model.fit(images, labels, epochs=epochs, batch_size=128, verbose=verbose,
              validation_data=(data.x_val, data.y_val) if validation else None)
    return model, float(model.evaluate(data.x_test, data.y_test, verbose=0)[1])


def reference_extractor(dataset: str, data_dir=None, seed: int = 0, verbose: int = 0,
                        folder: str = REFERENCE_FOLDER):
    """(model, info) of the reference extractor for ``dataset`` and ``seed``:
    loaded from the cache, or trained by :data:`REFERENCE_RECIPE` on the full
    training split (loaded here, whatever subset the run uses) and cached."""
    import numpy as np

    from tasks.common import load_keras_model, read_json, save_model, write_json
    from tasks.data import load_dataset

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
    from tasks.common import load_keras_model, save_model, write_json

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


# --------------------------------------------------------------------- task


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from tasks.generate import add_sampler_arguments

    add_data_arguments(parser)
    group = parser.add_argument_group("models to score (any subset)")
    group.add_argument("--gan", metavar="FILE.keras", help="a GAN generator.keras")
    group.add_argument("--vae", metavar="FILE.keras", help="a VAE vae.keras or decoder.keras")
    group.add_argument("--cae", metavar="FILE.keras",
                       help="a CAE cae.keras: its decoder is fed samplers fitted to the "
                            "training codes (saved beside it)")
    add_sampler_arguments(group, several=True)
    parser.add_argument("--n", type=positive_int, default=10000,
                        help="samples per model and sampler (default 10000)")
    parser.add_argument("--extractor-seeds", type=non_negative_int, nargs="+", default=[0],
                        metavar="SEED",
                        help="seeds of the reference extractors to score in; several give "
                             "mean and std (default 0)")
    parser.add_argument("--classifier", default=None, metavar="FILE.keras",
                        help="score in this classifier instead of the reference extractor "
                             "(trained on the run's training images if absent)")
    parser.add_argument("--classifier-epochs", type=positive_int, default=4,
                        help="epochs when a --classifier is trained (default 4)")
    parser.add_argument("--verbose", type=non_negative_int, default=0,
                        help="Keras progress while training the classifier (default 0)")
    add_output_arguments(parser, "quality")


def _cell(row: dict, key: str, digits: int, scale: float = 1.0) -> str:
    text = f"{scale * row[key]:.{digits}f}"
    if f"{key}_std" in row:
        text += f" ± {scale * row[f'{key}_std']:.{digits}f}"
    return text


def markdown_table(rows: dict, class_names) -> str:
    lines = ["| samples | FID | KID | precision | recall | classes covered | "
             "largest class share |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in rows.items():
        top = class_names[max(range(len(r["coverage"])), key=r["coverage"].__getitem__)]
        lines.append(f"| {name} | {_cell(r, 'fid', 2)} | {_cell(r, 'kid', 3)} | "
                     f"{_cell(r, 'precision', 3)} | {_cell(r, 'recall', 3)} | "
                     f"{r['classes_covered']}/{len(class_names)} "
                     f"| {100 * r['max_class_share']:.1f}% ({top}) |")
    lines += ["", "Class shares (%):", "",
              "| samples | " + " | ".join(class_names) + " |",
              "| --- |" + " ---: |" * len(class_names)]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * s:.1f}" for s in r["coverage"])
                     + " |")
    return "\n".join(lines) + "\n"


def coverage_figure(rows: dict, class_names, path: str) -> str:
    import matplotlib.pyplot as plt
    import numpy as np

    from tasks.common import save_figure

    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(rows)
    x = np.arange(len(class_names))
    for k, (name, r) in enumerate(rows.items()):
        ax.bar(x + k * width, 100 * np.asarray(r["coverage"]), width, label=name)
    ax.axhline(100 / len(class_names), color="k", lw=0.8, ls="--", label="uniform")
    ax.set_xticks(x + 0.4 - width / 2, class_names, rotation=30, ha="right")
    ax.set_ylabel("share of samples (%)")
    ax.set_title("Class coverage: classes the domain classifier assigns to samples")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def load_samplers(args, data) -> dict:
    """{row name: image sampler} for every given model and each sampler fitting it."""
    from tasks.errors import UserError
    from tasks.generate import load_sampler
    from tasks.samplers import VALID

    samplers = {}
    for kind, path in (("gan", args.gan), ("vae", args.vae), ("cae", args.cae)):
        if not path:
            continue
        names = [n for n in (args.samplers or VALID[kind]) if n in VALID[kind]]
        if not names:
            raise UserError(f"--samplers {','.join(args.samplers)} has none for a "
                            f"{kind.upper()}; valid: {', '.join(VALID[kind])}")
        for name in names:
            sampler = load_sampler(path, sampler=name, components=args.components,
                                   refit=args.refit, seed=args.seed, option=kind,
                                   training_images=lambda: data.x_train)
            label = f"K={args.components}" if name == "gmm" else ""
            samplers[f"{kind.upper()} + {name}" + (f" ({label})" if label else "")] = sampler
    return samplers


def extractors(args, data) -> list:
    """[(model, info)] of the feature extractors to score in."""
    if args.classifier:
        model = domain_classifier(data, args.classifier, epochs=args.classifier_epochs,
                                  verbose=args.verbose, seed=args.seed)
        return [(model, {"path": args.classifier, "recipe_hash": None,
                         "note": "a --classifier given by the user, not the reference"})]
    return [reference_extractor(data.name, args.data_dir, seed, args.verbose)
            for seed in args.extractor_seeds]


def run(args) -> str:
    from tasks.common import (backend_name, load_data, make_run_dir, seed_everything,
                              write_json, write_text)
    from tasks.figures import image_rows

    out = make_run_dir("quality", args.out, overwrite=args.overwrite)
    seed_everything(args.seed)
    data = load_data(args)
    samplers = load_samplers(args, data)
    images = {"floor: test split": data.x_test}
    seconds = {}
    for name, sampler in samplers.items():
        start = time.perf_counter()
        images[name] = sampler.sample(args.n, seed=args.seed)
        seconds[name] = time.perf_counter() - start
    n_classes = len(data.class_names)
    scores = {name: [] for name in images}
    infos = []
    for classifier, info in extractors(args, data):
        infos.append(info)
        train_features, _ = featurize(classifier, data.x_train)
        for name, batch in images.items():
            features, probs = featurize(classifier, batch)
            scores[name].append(score(features, probs, train_features, n_classes, args.seed))
            print(f"{name} (extractor {info.get('recipe_hash')}): FID "
                  f"{scores[name][-1]['fid']:.2f}", flush=True)
    rows = {}
    for name, values in scores.items():
        sampler = samplers.get(name)
        rows[name] = {"model": sampler.kind if sampler else "real",
                      "sampler": sampler.name if sampler else None,
                      **average_scores(values)}
        if name in seconds:
            rows[name]["sampling_seconds"] = seconds[name]

    result = {"dataset": data.name, "reference": f"training split ({len(data.x_train)} "
              f"images)", "extractors": infos,
              "extractor": {k: infos[0].get(k) for k in ("path", "recipe_hash",
                                                         "test_accuracy")},
              "kid_scale": "raw unbiased MMD^2, cubic kernel, no scaling",
              "precision_recall_k": 3, "class_names": data.class_names,
              "models": {"gan": args.gan, "vae": args.vae, "cae": args.cae}, "rows": rows}
    write_json(os.path.join(out, "quality.json"), result)
    write_json(os.path.join(out, "metrics.json"), {
        "task": "quality", "backend": backend_name(), **result,
        "gan_fid_below_vae_fid": bool(rows["GAN + prior"]["fid"] < rows["VAE + prior"]["fid"])
        if "GAN + prior" in rows and "VAE + prior" in rows else None})
    table = markdown_table(rows, data.class_names)
    spread = ("over the extractors" if len(infos) > 1 else
              "of KID over 10 subsets of 1000 images")
    write_text(os.path.join(out, "quality.md"),
               f"# Sample quality on {data.name}\n\nReference: {result['reference']}; "
               f"features: penultimate layer of {extractor_text(infos)}. KID is raw "
               f"(unscaled) MMD^2; precision and recall use k = 3 nearest neighbours; "
               f"± is the std {spread}.\n\n" + table)
    coverage_figure(rows, data.class_names, os.path.join(out, "coverage.png"))
    image_rows([batch[:10] for batch in images.values()], ["real (test)", *samplers],
               os.path.join(out, "samples.png"), "Real test images and samples of each model")
    print(table)
    return out


def extractor_text(infos: list) -> str:
    parts = []
    for info in infos:
        if info.get("recipe_hash"):
            parts.append(f"reference extractor {os.path.basename(info['path'])} (recipe "
                         f"hash {info['recipe_hash']}, seed {info['seed']}, test accuracy "
                         f"{info['test_accuracy']:.4f})")
        else:
            parts.append(f"{info['path']} ({info['note']})")
    return "; ".join(parts)
