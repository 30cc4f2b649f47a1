"""Runs that train several models one after another ("phases") and resume where
they stopped: ``denoise``, ``classify``, ``latent --sweep``, ``tune``'s final
retraining.

* The phase in training keeps its whole state, saved after every epoch
  (``storage.training_backup``), in the run folder's ``backup/``, where
  ``main.py``'s Ctrl-C message looks; ``backup/phase.json`` names the phase it
  belongs to.
* A phase that ends writes its files, then its record (``phases/<name>.json``,
  or a CAE run's own ``metrics.json``), and only then removes the backup. A
  phase with a record and no backup of its own is finished: ``--resume`` reuses
  it instead of training it again. A backup of another phase (one killed between
  its record and the backup's removal) is removed when the next phase starts.
* ``phases/options.json`` keeps the options the run started with: a resume with
  other options would mix two runs, and is refused naming the first that differs.

Each phase seeds its own initial weights (``phase_seed``), so a phase that
starts afresh on ``--resume`` (killed before its first backup) trains the model
the uninterrupted run trained, whichever phases before it were reused.
"""

from __future__ import annotations

import dataclasses
import os

from runtime.backend import layer_seed
from cli.errors import UserError
from storage.files import read_json, write_json
from storage.run_folder import remove_written_folder

BACKUP = "backup"
RECORDS = "phases"
OWNER = "phase.json"
#: Options a resumed run may change: where it writes and what it prints.
FREE_OPTIONS = ("out", "overwrite", "resume", "verbose")


def resume_folder(task: str, out: str | None, resume: bool) -> str | None:
    """``--out`` checked for ``--resume``: it must name the interrupted run's folder."""
    from storage.training_backup import resume_folder as resumed_folder

    return resumed_folder(task, out) if resume else out


def phase_seed(seed: int, index: int) -> int:
    """The seed of the ``index``-th phase's initial weights (the first: ``seed``)."""
    return layer_seed(seed, 7919 * index)


class PhasedRun:
    """The phases of one run folder.

    Args:
        out: the run folder (made by ``storage.run_folder.make_run_dir``).
        resume: reuse finished phases and continue the interrupted one; without
            it every phase trains afresh.
    """

    def __init__(self, out: str, resume: bool):
        self.out, self.resume = out, resume
        self.backup_dir = os.path.join(out, BACKUP)
        self.options = None

    # ----------------------------------------------------------- the options

    def check_options(self, options: dict) -> None:
        """On resume, refuses options (``cli.options.to_dict`` of the task's
        config) that differ from those the run started with; they are recorded
        when the first phase starts (a run that fails before leaves no file)."""
        self.options = options
        path = os.path.join(self.out, RECORDS, "options.json")
        if self.resume and os.path.isfile(path):
            try:
                saved = read_json(path)
            except (OSError, ValueError):
                saved = None
            if isinstance(saved, dict):
                _same_options(self.out, _leaves(saved), _leaves(options))

    def record_options(self) -> None:
        """Writes the options given to :meth:`check_options`, unless they are recorded."""
        path = os.path.join(self.out, RECORDS, "options.json")
        if self.options is not None and not os.path.isfile(path):
            write_json(self.file("options.json"), self.options)

    # ------------------------------------------------------------ the phases

    def owner(self) -> dict | None:
        """``{"phase": ..., "tag": ...}`` of the state in ``backup/``, or None."""
        try:
            owner = read_json(os.path.join(self.backup_dir, OWNER))
        except (OSError, ValueError):
            return None
        return owner if isinstance(owner, dict) else None

    def _owns_backup(self, phase: str, tag=None) -> bool:
        return self.owner() == {"phase": phase, "tag": tag}

    def finished(self, phase: str, record: str | None = None, tag=None) -> bool:
        """Whether ``phase`` (with ``tag``) finished in an earlier process: its
        ``record`` file (default ``phases/<phase>.json``, which must carry ``tag``)
        exists and ``backup/`` holds no state of its own."""
        if not self.resume or self._owns_backup(phase, tag):
            return False
        if record is not None:
            return os.path.isfile(record)
        saved = self.record(phase)
        return saved is not None and saved.get("tag") == tag

    def record(self, phase: str) -> dict | None:
        """The record ``phase`` wrote when it finished, or None."""
        try:
            saved = read_json(os.path.join(self.out, RECORDS, _file_name(phase) + ".json"))
        except (OSError, ValueError):
            return None
        return saved if isinstance(saved, dict) else None

    def file(self, name: str) -> str:
        """The path of a file about to be written in ``phases/`` (made here)."""
        os.makedirs(os.path.join(self.out, RECORDS), exist_ok=True)
        return os.path.join(self.out, RECORDS, name)

    def start(self, phase: str, tag=None) -> str:
        """Claims ``backup/`` for ``phase``: another phase's state is removed, and
        without ``resume`` this phase's too. Returns the folder, to be restored
        from (an empty or missing one restores nothing: the phase starts afresh)."""
        self.record_options()
        if not (self.resume and self._owns_backup(phase, tag)):
            remove_written_folder(self.backup_dir)
        if self.owner() is None:
            os.makedirs(self.backup_dir, exist_ok=True)
            write_json(os.path.join(self.backup_dir, OWNER), {"phase": phase, "tag": tag})
        return self.backup_dir

    def resumes(self, phase: str, tag=None) -> bool:
        """Whether ``backup/`` holds a finished epoch of ``phase`` (call after
        :meth:`start`)."""
        from storage.training_backup import has_backup

        return self._owns_backup(phase, tag) and has_backup(self.backup_dir)

    def finish(self, phase: str, record: dict | None = None, tag=None) -> None:
        """Writes ``phase``'s record (unless it wrote its own), then removes its
        backup: call once every file of the phase is written."""
        self.record_options()
        if record is not None:
            write_json(self.file(_file_name(phase) + ".json"), {**record, "tag": tag})
        if self._owns_backup(phase, tag):
            remove_written_folder(self.backup_dir)


def _file_name(phase: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in phase)


def _leaves(options: dict, prefix: str = "") -> dict:
    """Nested option sections as one level: ``{"data": {"seed": 0}}`` -> ``{"seed": 0}``."""
    flat = {}
    for key, value in options.items():
        if isinstance(value, dict):
            flat.update(_leaves(value))
        else:
            flat[key] = value
    return flat


def _same_options(out: str, saved: dict, given: dict) -> None:
    for key, value in given.items():
        if key in FREE_OPTIONS or key not in saved or saved[key] == value:
            continue
        option = "--" + key.replace("_", "-")
        was = _shown(saved[key])
        raise UserError(f"--resume: {out!r} was run with {option} {was}, not "
                        f"{_shown(value)}; resume it with {option} {was}, or give a new --out")


def _shown(value) -> str:
    if isinstance(value, list):
        return ",".join(_shown(v) for v in value) if value else "(none)"
    if isinstance(value, dict):
        return str(value.get("name", value))
    return str(value)


def cae_phase(run: PhasedRun, phase: str, index: int, data, config, training, folder: str,
              *, noise=None, start_from=None, verbose: int = 1, seed: int = 0):
    """The CAE of ``phase``, trained into ``folder`` (its own run of ``train_cae``,
    whose ``metrics.json`` is the phase's record) or, finished earlier, loaded.

    Args:
        run: the :class:`PhasedRun`.
        phase, index: the phase's name and its place in the run (seeds its weights).
        data, config, training: the Dataset, ``CAEConfig`` and ``CAETraining``.
        folder: where the CAE's files go.
        noise: a noise layer: a denoising CAE (see ``training.cae.train_cae``).
        start_from: a CAE whose weights this one starts from; a resumed phase
            starts from its backup instead.
        verbose, seed: as for ``train_cae`` (``seed``: the batch order).

    Returns:
        ``(cae, path of its cae.keras)``.
    """
    import keras

    from storage.run_folder import remove_stale_temporaries
    from training.cae import train_cae
    from training.callbacks import StartFrom
    from training.cae_source import load_cae

    path = os.path.join(folder, "cae.keras")
    if run.finished(phase, os.path.join(folder, "metrics.json")):
        print(f"reusing the finished {phase} CAE {path}", flush=True)
        return load_cae(path)[0], path
    backup_dir = run.start(phase)
    resumed = run.resumes(phase)
    os.makedirs(folder, exist_ok=True)
    remove_stale_temporaries(folder)  # a killed save's torn files
    keras.utils.set_random_seed(phase_seed(seed, index))
    kind = "denoising CAE" if noise is not None else "CAE"
    print(f"training a {kind} (latent {config.latent_dim}) into {folder}", flush=True)
    start = (StartFrom(start_from),) if start_from is not None and not resumed else ()
    model, _ = train_cae(data, config, folder, training, resume=True, verbose=verbose,
                         noise=noise, extra_callbacks=start, seed=seed, backup_dir=backup_dir)
    run.finish(phase)
    return model, path


def epoch_feed(x, y, batch_size: int, seed: int):
    """A ``storage.training_backup.EpochFeed`` of ``(x, y)``; of ``(x,)`` where ``y``
    is None (a model trained on images alone: the VAE, the GAN)."""
    from storage.training_backup import EpochFeed

    class ImagesFeed(EpochFeed):
        def pack(self, x, y):
            return (x,)

    return EpochFeed(x, y, batch_size, seed) if y is not None \
        else ImagesFeed(x, x, batch_size, seed)


def with_latent_dim(config, latent_dim: int | None):
    """``config`` (a ``CAEConfig``) with another latent size, when one is given."""
    return config if latent_dim is None else dataclasses.replace(config, latent_dim=latent_dim)
