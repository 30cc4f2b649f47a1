"""The data options every task shares, and the dataset they name."""

from __future__ import annotations

import argparse

from data.datasets import DATASETS, DEFAULT_VAL_SIZE
from runtime.args import positive_int, random_seed


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """--dataset, --data-dir, --val-size, --train-size, --test-size, --seed."""
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", default="fashion_mnist", choices=DATASETS,
                       help="which images: fashion_mnist (default), mnist, or digits "
                            "(scikit-learn's bundled digits, offline, for smoke runs)")
    group.add_argument("--data-dir", default=None, metavar="DIR",
                       help="folder with the four IDX .gz files (train-images-idx3-ubyte.gz, "
                            "...); tried before Debian's dataset-fashion-mnist package and "
                            "tensorflow-datasets")
    group.add_argument("--val-size", type=positive_int, default=DEFAULT_VAL_SIZE, metavar="N",
                       help="training images held out (seeded) for validation; a smaller "
                            "split shares its images with every larger one (default 12 000, "
                            "leaving 48 000 of Fashion-MNIST's 60 000 to train on)")
    group.add_argument("--train-size", type=positive_int, default=None, metavar="N",
                       help="train on a seeded subset of N images (quick runs); default all "
                            "after the validation split")
    group.add_argument("--test-size", type=positive_int, default=None, metavar="N",
                       help="evaluate on the first N test images; default all 10 000")
    group.add_argument("--seed", type=random_seed, default=0,
                       help="seeds the split, the weights and the shuffling; the same seed "
                            "on the same backend repeats the same metrics (default 0)")


def load_data(args):
    """The dataset named by the data arguments, printed in one line."""
    from data.datasets import load_dataset

    data = load_dataset(args.dataset, data_dir=args.data_dir, val_size=args.val_size,
                        seed=args.seed, train_limit=args.train_size, test_limit=args.test_size)
    print(data.summary(), flush=True)
    return data
