"""`python main.py quality`: FID, KID, precision, recall and class coverage of the
samples of a GAN, a VAE and a CAE (the statistics: :mod:`evaluation.sample_quality`)."""

from __future__ import annotations

import argparse
import os
import time

from data.arguments import add_data_arguments
from runtime.args import non_negative_int, positive_int
from storage.run_folder import add_output_arguments


HELP = ("FID, KID, precision/recall and class coverage of GAN, VAE and CAE samples "
        "against real images")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from training.sampler_source import add_sampler_arguments

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

    from storage.files import save_figure

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
    from runtime.errors import UserError
    from training.sampler_source import VALID, load_sampler

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
    from evaluation.sample_quality import domain_classifier, reference_extractor

    if args.classifier:
        model = domain_classifier(data, args.classifier, epochs=args.classifier_epochs,
                                  verbose=args.verbose, seed=args.seed)
        return [(model, {"path": args.classifier, "recipe_hash": None,
                         "note": "a --classifier given by the user, not the reference"})]
    return [reference_extractor(data.name, args.data_dir, seed, args.verbose)
            for seed in args.extractor_seeds]


def run(args) -> str:
    from data.arguments import load_data
    from evaluation.sample_quality import average_scores, featurize, score
    from plots.figures import image_rows
    from runtime.backend import backend_name, seed_everything
    from storage.files import write_json, write_text
    from storage.run_folder import make_run_dir

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
