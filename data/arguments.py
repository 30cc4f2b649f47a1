"""The data options every task shares (:class:`DataConfig`), and the dataset
they name."""

from __future__ import annotations

import dataclasses

from data.datasets import DATASETS, DEFAULT_VAL_SIZE, DIGITS_DATA_DIR
from cli.args import positive_int, random_seed
from cli.options import option


@dataclasses.dataclass
class DataConfig:
    """Which images a task reads, how they are split, and the run's seed."""

    dataset: str = option(
        "fashion_mnist", choices=DATASETS,
        help="which images: fashion_mnist, mnist, or digits (scikit-learn's bundled "
             "digits, offline, for smoke runs)")
    data_dir: str | None = option(
        None, metavar="DIR",
        help="folder with the four IDX .gz files (train-images-idx3-ubyte.gz, ...); "
             "tried before Debian's dataset-fashion-mnist package and tensorflow-datasets")
    val_size: int = option(
        DEFAULT_VAL_SIZE, type=positive_int, metavar="N",
        help="training images held out (seeded) for validation; a smaller split shares "
             "its images with every larger one; 12 000 leave 48 000 of Fashion-MNIST's "
             "60 000 for training")
    train_size: int | None = option(
        None, type=positive_int, metavar="N", default_help="all after the validation split",
        help="train on a seeded subset of N images (quick runs)")
    test_size: int | None = option(
        None, type=positive_int, metavar="N", default_help="the whole test split",
        help="evaluate on the first N test images")
    seed: int = option(
        0, type=random_seed,
        help="seeds the split, the weights and the shuffling; the same seed on the same "
             "backend repeats the same metrics")

    def __post_init__(self):
        if self.data_dir is not None and self.dataset == "digits":
            raise ValueError(DIGITS_DATA_DIR)  # it would be ignored: say so before any work


def load_data(config: DataConfig):
    """The dataset named by ``config``, printed in one line."""
    from data.datasets import load_dataset

    data = load_dataset(config.dataset, data_dir=config.data_dir, val_size=config.val_size,
                        seed=config.seed, train_limit=config.train_size,
                        test_limit=config.test_size)
    print(data.summary(), flush=True)
    if data.notes:  # sizes the data could not give, and what was used instead
        print("note: " + "; ".join(data.notes), flush=True)
    return data
