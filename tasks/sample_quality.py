"""`python main.py quality`: FID, KID and class coverage of generated images.

A domain classifier (a small CNN trained once on the real training split and
saved to ``runs/domain_classifier/<dataset>.keras``, reused when present) gives
each image a feature vector (its penultimate layer) and a predicted class.

* FID: Frechet distance between Gaussians fitted to the features of the
  samples and of the training split (``scipy.linalg.sqrtm``).
* KID: unbiased MMD^2 with the cubic polynomial kernel
  ``k(x, y) = (x.y / d + 1)^3``, averaged over random subsets.
* Coverage: the share of samples the classifier puts in each class.

The floor row compares the real test split with the training split.
"""

from __future__ import annotations

import argparse
import os
import time

from tasks.common import (add_data_arguments, add_output_arguments, non_negative_int,
                          positive_int)

HELP = "FID, KID and class coverage of GAN, VAE and CAE samples against real images"

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


def domain_classifier(data, path: str, epochs: int = 4, verbose: int = 0):
    """The classifier saved at ``path``, trained on ``data`` and saved if absent."""
    import keras

    from tasks.common import load_keras_model, save_model, write_json

    if os.path.isfile(path):
        print(f"reusing the domain classifier {path}", flush=True)
        return load_keras_model(path, "domain classifier")
    model = build_domain_classifier(len(data.class_names))
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
              epochs=epochs, batch_size=128, verbose=verbose)
    accuracy = float(model.evaluate(data.x_test, data.y_test, verbose=0)[1])
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    save_model(model, path)
    write_json(os.path.splitext(path)[0] + ".json",
               {"test_accuracy": accuracy, "epochs": epochs,
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


def score(features, probabilities, reference_features, n_classes: int, seed: int) -> dict:
    shares = coverage(probabilities, n_classes)
    kid_mean, kid_std = kid(features, reference_features, seed=seed)
    return {"fid": fid(features, reference_features), "kid": kid_mean, "kid_std": kid_std,
            "coverage": shares, "classes_covered": int(sum(s > 0.0 for s in shares)),
            "max_class_share": float(max(shares)), "n_samples": int(len(features))}


# --------------------------------------------------------------------- task


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    group = parser.add_argument_group("models to score (any subset)")
    group.add_argument("--gan", metavar="FILE.keras", help="a GAN generator.keras")
    group.add_argument("--vae", metavar="FILE.keras", help="a VAE vae.keras or decoder.keras")
    group.add_argument("--cae", metavar="FILE.keras",
                       help="a CAE cae.keras: its decoder is fed a Gaussian fitted to "
                            "the training codes (saved as latent_gaussian.json beside it)")
    parser.add_argument("--n", type=positive_int, default=10000,
                        help="samples per model (default 10000)")
    parser.add_argument("--classifier", default=None, metavar="FILE.keras",
                        help="domain classifier to use or create (default "
                             "runs/domain_classifier/<dataset>.keras)")
    parser.add_argument("--classifier-epochs", type=positive_int, default=4,
                        help="epochs when the domain classifier is trained (default 4)")
    parser.add_argument("--verbose", type=non_negative_int, default=0,
                        help="Keras progress while training the classifier (default 0)")
    add_output_arguments(parser, "quality")


def markdown_table(rows: dict, class_names) -> str:
    lines = ["| samples | FID | KID (x1e3) | classes covered | largest class share |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, r in rows.items():
        top = class_names[max(range(len(r["coverage"])), key=r["coverage"].__getitem__)]
        lines.append(f"| {name} | {r['fid']:.2f} | {1e3 * r['kid']:.2f} ± "
                     f"{1e3 * r['kid_std']:.2f} | {r['classes_covered']}/{len(class_names)} "
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


def run(args) -> str:
    import numpy as np

    from tasks.common import (backend_name, load_data, make_run_dir, seed_everything,
                              write_json, write_text)
    from tasks.errors import UserError
    from tasks.figures import image_rows
    from tasks.generate import GAUSSIAN_FILE, fit_latent_gaussian, load_sampler

    out = make_run_dir("quality", args.out, overwrite=args.overwrite)
    seed_everything(args.seed)
    data = load_data(args)
    samplers = {}
    if args.gan:
        samplers["GAN"] = load_sampler(args.gan, option="gan")
    if args.vae:
        samplers["VAE"] = load_sampler(args.vae, option="vae")
    if args.cae:
        from models.cae import split_cae
        from tasks.common import load_keras_model

        cae = load_keras_model(args.cae, "--cae model")
        try:
            encoder, decoder = split_cae(cae)
        except ValueError as e:
            raise UserError(f"--cae {args.cae!r}: {e}") from None
        gaussian = fit_latent_gaussian(encoder, data.x_train)
        write_json(os.path.join(os.path.dirname(args.cae), GAUSSIAN_FILE), gaussian)
        samplers["CAE + Gaussian"] = load_sampler(args.cae, gaussian)
    for name, sampler in samplers.items():
        expected = {"GAN": "gan", "VAE": "vae", "CAE + Gaussian": "cae"}[name]
        if sampler.kind != expected:
            raise UserError(f"--{expected} got a {sampler.kind.upper()} model; give a "
                            f"{expected.upper()} model")

    # The shared cache holds classifiers trained on the whole training split only:
    # one trained on a --train-size subset stays in this run's folder.
    classifier_path = args.classifier or (
        os.path.join(out, "domain_classifier.keras") if args.train_size else
        os.path.join("runs", "domain_classifier", f"{args.dataset}.keras"))
    classifier = domain_classifier(data, classifier_path, epochs=args.classifier_epochs,
                                   verbose=args.verbose)
    n_classes = len(data.class_names)
    train_features, _ = featurize(classifier, data.x_train)
    test_features, test_probs = featurize(classifier, data.x_test)
    rows = {"floor: test split": score(test_features, test_probs, train_features, n_classes,
                                       args.seed)}
    examples = [data.x_test[:10]]
    for name, sampler in samplers.items():
        start = time.perf_counter()
        images = sampler.sample(args.n, seed=args.seed)
        features, probs = featurize(classifier, images)
        rows[name] = score(features, probs, train_features, n_classes, args.seed)
        rows[name]["seconds"] = time.perf_counter() - start
        examples.append(images[:10])
        print(f"{name}: FID {rows[name]['fid']:.2f}", flush=True)

    result = {"dataset": data.name, "reference": f"training split ({len(data.x_train)} "
              f"images)", "classifier": classifier_path, "class_names": data.class_names,
              "models": {"gan": args.gan, "vae": args.vae, "cae": args.cae}, "rows": rows}
    write_json(os.path.join(out, "quality.json"), result)
    write_json(os.path.join(out, "metrics.json"), {
        "task": "quality", "backend": backend_name(), **result,
        "gan_fid_below_vae_fid": bool(rows["GAN"]["fid"] < rows["VAE"]["fid"])
        if "GAN" in rows and "VAE" in rows else None})
    table = markdown_table(rows, data.class_names)
    write_text(os.path.join(out, "quality.md"),
               f"# Sample quality on {data.name}\n\nReference: {result['reference']}; "
               f"features: {classifier_path} (penultimate layer).\n\n" + table)
    coverage_figure(rows, data.class_names, os.path.join(out, "coverage.png"))
    image_rows(examples, ["real (test)", *samplers], os.path.join(out, "samples.png"),
               "Real test images and samples of each model")
    print(table)
    return out
