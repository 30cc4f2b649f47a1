"""`python main.py cae`: train the convolutional autoencoder end to end."""

from __future__ import annotations

import dataclasses
import os

from configs.cae import CAEConfig
from data.arguments import DataConfig
from runtime.compute import ComputeConfig
from cli.options import add_config, from_args, option, section, to_dict
from storage.run_folder import OutputConfig, verbose_option
from training.cae import CAETraining

HELP = "train the convolutional autoencoder (CAE) and save cae/encoder/decoder .keras"


@dataclasses.dataclass
class CaeTaskConfig:
    """One ``cae`` run."""

    data: DataConfig = section(DataConfig, "data")
    cae: CAEConfig = section(CAEConfig, "CAE")
    training: CAETraining = section(CAETraining, "CAE")
    compute: ComputeConfig = section(ComputeConfig, "compute")
    output: OutputConfig = section(OutputConfig, "output")
    resume: bool = option(
        False, action="store_true",
        help="continue the interrupted run in --out (an existing folder) from its last "
             "finished epoch")
    verbose: int = verbose_option()


def add_arguments(parser) -> None:
    add_config(parser, CaeTaskConfig, task="cae")


CONFIG = CaeTaskConfig


def run(args) -> str:
    return train(from_args(CaeTaskConfig, args))


def train(config: CaeTaskConfig) -> str:
    """Trains the CAE of ``config`` into its run folder, which it returns."""
    from data.arguments import load_data
    from runtime.backend import seed_everything
    from storage.training_backup import has_backup
    from training.cae import check_same_config, train_cae
    from training.resume import run_folder

    out = run_folder("cae", config.output.out, config.resume, config.output.overwrite)
    if config.resume and has_backup(os.path.join(out, "backup")):
        check_same_config(out, config.cae)
    seed = config.data.seed
    seed_everything(seed)
    data = load_data(config.data)
    _, metrics = train_cae(data, config.cae, out, config.training, resume=config.resume,
                           verbose=config.verbose, seed=seed, run_config=to_dict(config))
    print(f"test MSE {metrics['test_mse']:.5f}, PSNR {metrics['test_psnr_db']:.2f} dB, "
          f"{metrics['epochs']} epochs in {metrics['wall_time_s']:.0f} s on {metrics['backend']}")
    return out
