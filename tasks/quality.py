"""`python main.py quality`: FID, KID, precision, recall and class coverage of the
samples of a GAN, a VAE and a CAE (the statistics: :mod:`evaluation.sample_quality`)."""

from __future__ import annotations

import dataclasses
import os
import time

from data.arguments import DataConfig
from cli.args import non_negative_int, positive_int
from cli.options import add_config, from_args, option, section, to_dict
from storage.run_folder import OutputConfig
from training.sampler_source import SamplersConfig

HELP = ("FID, KID, precision/recall and class coverage of GAN, VAE and CAE samples "
        "against real images")
# Samples per model and sampler: FID is customarily computed from 50 000, and each
# set is kept in memory as float32 images (157 MB per 50 000, plus its features).
MAX_SAMPLES = 50_000

MODELS = "models to score (any subset)"  # the argument group of the models and samplers


@dataclasses.dataclass
class ScoredModels:
    """The saved models whose samples ``quality`` scores (any subset)."""

    gan: str | None = option(None, metavar="FILE.keras", help="a GAN generator.keras")
    vae: str | None = option(None, metavar="FILE.keras", help="a VAE vae.keras or decoder.keras")
    cae: str | None = option(
        None, metavar="FILE.keras",
        help="a CAE cae.keras: its decoder is fed samplers fitted to the training codes "
             "(saved beside it)")


@dataclasses.dataclass
class QualityConfig:
    """One ``quality`` run."""

    data: DataConfig = section(DataConfig, "data")
    models: ScoredModels = section(ScoredModels, MODELS)
    sampling: SamplersConfig = section(SamplersConfig, MODELS)
    n: int = option(10000, type=positive_int,
                    help=f"samples per model and sampler, at most {MAX_SAMPLES}")
    extractor_seeds: tuple = option(
        (0,), type=non_negative_int, nargs="+", metavar="SEED",
        help="seeds of the reference extractors to score in; several give mean and std")
    classifier: str | None = option(
        None, metavar="FILE.keras",
        help="score in this classifier instead of the reference extractor (trained on the "
             "run's training images if absent)")
    classifier_epochs: int = option(4, type=positive_int,
                                    help="epochs when a --classifier is trained")
    verbose: int = option(0, type=non_negative_int,
                          help="Keras progress while training the classifier")
    output: OutputConfig = section(OutputConfig, "output")

    def __post_init__(self):
        self.extractor_seeds = tuple(self.extractor_seeds)
        for name in ("n", "classifier_epochs"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer. "
                                 f"Received: {name}={value}")
        if not self.extractor_seeds or min(self.extractor_seeds) < 0:
            raise ValueError(f"extractor_seeds must be one or more integers >= 0. "
                             f"Received: extractor_seeds={list(self.extractor_seeds)}")
        if self.n > MAX_SAMPLES:
            raise ValueError(f"--n {self.n}: at most {MAX_SAMPLES} samples per model and "
                             f"sampler (FID's customary count; each set is held in memory)")


def add_arguments(parser) -> None:
    add_config(parser, QualityConfig, task="quality")


def _cell(row: dict, key: str, digits: int, scale: float = 1.0) -> str:
    text = f"{scale * row[key]:.{digits}f}"
    if f"{key}_std" in row:
        text += f" ± {scale * row[f'{key}_std']:.{digits}f}"
    return text


def add_floor_ratios(rows: dict) -> None:
    """``fid_over_floor`` on each sampler row of a model that has a reconstruction
    floor: how far the sampler is from the best its decoder can do."""
    floors = {r["model"]: r["fid"] for r in rows.values() if r["sampler"] == "reconstruction"}
    for r in rows.values():
        if r["model"] in floors and r["sampler"] != "reconstruction" and floors[r["model"]] > 0:
            r["fid_over_floor"] = r["fid"] / floors[r["model"]]


def markdown_table(rows: dict, class_names) -> str:
    lines = ["| samples | FID | FID / own floor | KID | precision | recall | classes covered | "
             "largest class share |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in rows.items():
        top = class_names[max(range(len(r["coverage"])), key=r["coverage"].__getitem__)]
        ratio = f"{r['fid_over_floor']:.2f}" if "fid_over_floor" in r else ""
        lines.append(f"| {name} | {_cell(r, 'fid', 2)} | {ratio} | {_cell(r, 'kid', 3)} | "
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


def load_samplers(models: ScoredModels, config: SamplersConfig, data, seed: int = 0) -> dict:
    """{row name: image sampler} for every given model and each sampler fitting it."""
    from cli.errors import UserError
    from training.sampler_source import VALID, load_sampler

    samplers = {}
    for kind, path in (("gan", models.gan), ("vae", models.vae), ("cae", models.cae)):
        if not path:
            continue
        names = [n for n in (config.samplers or VALID[kind]) if n in VALID[kind]]
        if not names:
            raise UserError(f"--samplers {','.join(config.samplers)} has none for a "
                            f"{kind.upper()}; valid: {', '.join(VALID[kind])}")
        for name in names:
            sampler = load_sampler(path, sampler=name, components=config.components,
                                   refit=config.refit, seed=seed, option=kind,
                                   flow_steps=config.flow_steps,
                                   flow_solver=config.flow_solver,
                                   training_images=lambda: data.x_train)
            samplers[f"{kind.upper()} + {name}{sampler_label(name, config)}"] = sampler
    return samplers


def sampler_label(name: str, config: SamplersConfig) -> str:
    """What a row name says of a sampler's settings, e.g. `` (K=10)``."""
    if name == "gmm":
        return f" (K={config.components})"
    if name == "flow":
        return f" ({config.flow_steps} {config.flow_solver} steps)"
    return ""


def floor_name(kind: str) -> str:
    return f"{kind.upper()} floor: reconstructions"


def sample_sets(samplers: dict, data, n: int, seed: int) -> tuple:
    """The image sets to score, in table order, and the seconds each took.

    Returns ``(images, sources, seconds)``: ``images`` maps a row name to its
    images, ``sources`` the row name to ``(model kind, sampler name)``. First the
    test split; then per model its reconstructions of the first ``n`` test
    images (where the file holds an encoder: the floor no sampler of that
    decoder can beat), then each of its samplers' ``n`` samples.
    """
    images = {"floor: test split": data.x_test}
    sources = {"floor: test split": ("real", None)}
    seconds = {}
    for name, sampler in samplers.items():
        floor = floor_name(sampler.kind)
        if sampler.encoder is not None and floor not in images:
            start = time.perf_counter()
            images[floor] = sampler.reconstruct(data.x_test[:n])
            seconds[floor] = time.perf_counter() - start
            sources[floor] = (sampler.kind, "reconstruction")
        start = time.perf_counter()
        images[name] = sampler.sample(n, seed=seed)
        seconds[name] = time.perf_counter() - start
        sources[name] = (sampler.kind, sampler.name)
    return images, sources, seconds


def extractors(config: QualityConfig, data) -> list:
    """[(model, info)] of the feature extractors to score in."""
    from evaluation.sample_quality import domain_classifier, reference_extractor

    if config.classifier:
        model = domain_classifier(data, config.classifier, epochs=config.classifier_epochs,
                                  verbose=config.verbose, seed=config.data.seed)
        return [(model, {"path": config.classifier, "recipe_hash": None,
                         "note": "a --classifier given by the user, not the reference"})]
    return [reference_extractor(data.name, config.data.data_dir, seed, config.verbose)
            for seed in config.extractor_seeds]


CONFIG = QualityConfig


def run(args) -> str:
    return quality(from_args(QualityConfig, args))


def quality(config: QualityConfig) -> str:
    """Scores the samples of the models of ``config`` into its run folder, which
    it returns."""
    from data.arguments import load_data
    from evaluation.sample_quality import average_scores, featurize, score
    from plots.figures import image_rows
    from runtime.backend import backend_name, seed_everything
    from cli.errors import UserError
    from storage.files import write_json, write_text
    from storage.run_folder import make_run_dir

    if not any(dataclasses.astuple(config.models)):  # the test split alone: nothing to say
        raise UserError("no model to score: give --gan, --vae or --cae (or several)")
    seed = config.data.seed
    out = make_run_dir("quality", config.output.out, overwrite=config.output.overwrite)
    seed_everything(seed)
    data = load_data(config.data)
    samplers = load_samplers(config.models, config.sampling, data, seed)
    images, sources, seconds = sample_sets(samplers, data, config.n, seed)
    n_classes = len(data.class_names)
    scores = {name: [] for name in images}
    infos = []
    for classifier, info in extractors(config, data):
        infos.append(info)
        train_features, _ = featurize(classifier, data.x_train)
        for name, batch in images.items():
            features, probs = featurize(classifier, batch)
            scores[name].append(score(features, probs, train_features, n_classes, seed))
            print(f"{name} (extractor {info.get('recipe_hash')}): FID "
                  f"{scores[name][-1]['fid']:.2f}", flush=True)
    rows = {}
    for name, values in scores.items():
        model, sampler = sources[name]
        rows[name] = {"model": model, "sampler": sampler, **average_scores(values)}
        if name in seconds:
            rows[name]["sampling_seconds"] = seconds[name]
        if name in samplers and samplers[name].fit_seconds is not None:
            rows[name]["fit_seconds"] = samplers[name].fit_seconds
    add_floor_ratios(rows)

    result = {"dataset": data.name, "reference": f"training split ({len(data.x_train)} "
              f"images)", "extractors": infos,
              "extractor": {k: infos[0].get(k) for k in ("path", "recipe_hash",
                                                         "test_accuracy")},
              "kid_scale": "raw unbiased MMD^2, cubic kernel, no scaling",
              "precision_recall_k": 3, "class_names": data.class_names,
              "models": dataclasses.asdict(config.models), "rows": rows}
    write_json(os.path.join(out, "quality.json"), result)
    write_json(os.path.join(out, "metrics.json"), {
        "task": "quality", "backend": backend_name(), **result, "config": to_dict(config),
        "gan_fid_below_vae_fid": bool(rows["GAN + prior"]["fid"] < rows["VAE + prior"]["fid"])
        if "GAN + prior" in rows and "VAE + prior" in rows else None})
    table = markdown_table(rows, data.class_names)
    spread = ("over the extractors" if len(infos) > 1 else
              "of KID over 10 subsets of 1000 images")
    write_text(os.path.join(out, "quality.md"),
               f"# Sample quality on {data.name}\n\nReference: {result['reference']}; "
               f"features: penultimate layer of {extractor_text(infos)}. KID is raw "
               f"(unscaled) MMD^2; precision and recall use k = 3 nearest neighbours; "
               f"± is the std {spread}. Floors: the test split, and each autoencoder's "
               f"reconstructions of test images (decode(encode(x)), a VAE's posterior "
               f"means), which no latent sampler of that decoder can beat; FID / own "
               f"floor is a sampler's FID over its decoder's reconstruction FID.\n\n"
               + table)
    coverage_figure(rows, data.class_names, os.path.join(out, "coverage.png"))
    image_rows([batch[:10] for batch in images.values()],
               ["real (test)", *list(images)[1:]],
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
