"""Per-epoch training backups that resume to the result of an uninterrupted run.

Keras's ``BackupAndRestore`` writes ``latest.weights.h5`` in place (a kill during
the write left a 0-byte file that no ``--resume`` could read) and keeps only the
weights: early stopping's best weights and patience, the learning-rate schedule's
counters, the data order and the history are lost, so a resumed run trained on to
a different model. :class:`TrainingBackup` keeps all of them, atomically:

* epoch ``n``'s state is ``epoch-000n.weights.h5`` (model and optimizers),
  ``epoch-000n.npz`` (early stopping's best weights, the random generators'
  states) and, written last as the commit mark, ``epoch-000n.json`` (history,
  callback counters, the run's settings); each file is written to a temporary
  name and renamed, and the previous epoch's files are removed only once the new
  ones are complete;
* when ``fit`` ends, the final weights are committed the same way with
  ``"finished": true``; the caller deletes the backup only after it has written
  every final file, so a kill during the final save is finished by ``--resume``;
* :class:`EpochFeed` draws epoch ``n``'s batch order from ``(seed, n)`` alone,
  so epoch ``n`` sees the same batches whether or not the run was interrupted
  (``fit``'s own shuffling continues a random stream that a restart resets).
"""

from __future__ import annotations

import contextlib
import os
import re
import time

import keras
import numpy as np

from cli.errors import UserError
from storage.feeds import IndexedFeed
from storage.files import _atomic, read_json, write_json
from storage.run_folder import record, remove_stale_temporaries, remove_written_folder

# The counters of the callbacks a resumed run must continue (None: still unset).
# A callback of the toolkit's own names its attributes in ``BACKUP_STATE`` instead.
CALLBACK_STATE = {
    "EarlyStopping": ("wait", "stopped_epoch", "best", "best_epoch"),
    "ReduceLROnPlateau": ("wait", "cooldown_counter", "best"),
}
_STATE_FILE = re.compile(r"epoch-(\d+)\.json$")


class EpochFeed(IndexedFeed):
    """``(x, y)`` in batches (``x`` alone when ``y`` is None: a VAE, a GAN),
    shuffled by a permutation drawn from ``(seed, epoch)``.

    :class:`TrainingBackup` sets the epoch at its start; give ``fit``
    ``storage.feeds.for_fit(feed)``.
    """

    def __init__(self, x, y, batch_size: int, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.set_epoch(0)

    def draw_orders(self, epoch: int) -> dict:
        # The order only; each batch gathers its own rows. A permuted copy of the
        # whole set per epoch (150 MB for Fashion-MNIST) lands in fresh memory,
        # whose first touch cost 0.6-1.7 s a copy on a 2-core VM.
        return {"order": np.random.default_rng([self.seed, epoch]).permutation(len(self.x))}

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def batch(self, i, orders, take):
        rows = orders["order"][i * self.batch_size:(i + 1) * self.batch_size]
        x = take(self.x, rows)
        if self.y is None:
            return x
        return self.pack(x, x if self.y is self.x else take(self.y, rows))

    def pack(self, x, y):
        """A batch of inputs ``x`` and targets ``y``, as ``fit`` gets it."""
        return x, y


def _seed_states(model) -> list:
    """The state variables of every SeedGenerator in ``model`` (noise, dropout):
    ``save_weights`` leaves them out. ``Layer.variables`` lists them beside the
    weights."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def _state_names(callback) -> tuple:
    """The attributes of ``callback`` a resumed run must continue."""
    return CALLBACK_STATE.get(type(callback).__name__, getattr(callback, "BACKUP_STATE", ()))


class TrainingBackup(keras.callbacks.Callback):
    """Saves the whole training state after every epoch; restores it on ``fit``'s start.

    Put it last in the callbacks: it records the states the others left at the end
    of an epoch and restores theirs after their own ``on_train_begin`` reset them.

    Args:
        folder: the backup folder (created when first written).
        feed: the :class:`EpochFeed` given to ``fit``.
        watched: the callbacks whose counters are kept (see ``CALLBACK_STATE``).
        settings: the options a resumed run must share with this one,
            ``{option name: value}`` (see :func:`check_same_settings`).
    """

    def __init__(self, folder: str, feed: EpochFeed, watched=(), settings: dict | None = None):
        super().__init__()
        self.folder, self.feed, self.watched = folder, feed, list(watched)
        self.settings = settings
        self.history: dict = {}
        self.wall_s = 0.0  # training time before the current fit (add_wall_time adds fit's)
        self._fit_start = None
        self.finished = False
        self.stopped = False  # a callback (early stopping) ended training at that epoch
        self.initial_epoch = 0  # where fit starts: set by whoever restores
        self._pending = None  # a state loaded by restore(), applied in on_train_begin

    # ------------------------------------------------------------ restoring

    def restore(self, train_model) -> int:
        """Loads the newest complete state into ``train_model``; returns its epoch
        (0 when there is none): pass it to ``fit`` as ``initial_epoch`` (``epochs``
        when :attr:`stopped`: fit then only runs the callbacks' ends, which put the
        best weights back, as the uninterrupted run did)."""
        for epoch in sorted(_committed_epochs(self.folder), reverse=True):
            try:
                state, arrays = self._read(epoch, train_model)
            except (OSError, ValueError, KeyError):
                continue  # a damaged state: the epoch before it still serves
            self._pending = (state, arrays)
            self.history = state["history"]
            self.wall_s = state["wall_s"]
            self.finished = state["finished"]
            self.stopped = state.get("stopped", False)
            return epoch
        return 0

    def _read(self, epoch: int, train_model):
        stem = os.path.join(self.folder, f"epoch-{epoch:04d}")
        state = read_json(stem + ".json")
        if train_model.optimizer is not None and not train_model.optimizer.built:
            train_model.optimizer.build(train_model.trainable_variables)
        train_model.load_weights(stem + ".weights.h5")
        with np.load(stem + ".npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
        for i, variable in enumerate(_seed_states(train_model)):
            variable.assign(arrays[f"seed{i}"])
        return state, arrays

    def on_train_begin(self, logs=None):
        self._fit_start = time.perf_counter()
        if self._pending is None:
            return
        state, arrays = self._pending
        self._pending = None
        # Now, not in restore(): fit's set-up draws from torch's generator (its data
        # loader's seed) before this, once per fit, which the run had done before.
        set_global_generators(arrays)
        for callback in self.watched:
            name = type(callback).__name__
            for attr, value in state["callbacks"].get(name, {}).items():
                if value is not None:
                    setattr(callback, attr, value)
            if name == "EarlyStopping" and "best0" in arrays:
                n = sum(1 for k in arrays if k.startswith("best"))
                callback.best_weights = [arrays[f"best{i}"] for i in range(n)]

    # --------------------------------------------------------------- saving

    def on_epoch_begin(self, epoch, logs=None):
        self.feed.set_epoch(epoch)

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.stopped = bool(getattr(self.model, "stop_training", False))
        self._commit(epoch + 1)

    def on_train_end(self, logs=None):
        # After EarlyStopping put its best weights back: these are the final ones.
        self.finished = True
        self._commit(len(next(iter(self.history.values()), [])) + 1)

    def add_wall_time(self, seconds: float) -> None:
        self.wall_s += seconds

    def discard(self) -> None:
        """Deletes the backup: once every final file is written, or when the
        run diverged (nothing worth resuming). Its own files go, and the folder
        with them where the run folder lists it (or it is left empty)."""
        for epoch in _committed_epochs(self.folder):
            remove_state(self.folder, epoch)
        remove_written_folder(self.folder, strict=False)
        if os.path.isdir(self.folder):
            remove_stale_temporaries(self.folder)
            with contextlib.suppress(OSError):
                os.rmdir(self.folder)  # only an empty folder goes

    def _wall_so_far(self) -> float:
        """Training time up to now: a resumed run adds the killed run's saved epochs'."""
        if self._fit_start is None:
            return self.wall_s
        return self.wall_s + time.perf_counter() - self._fit_start

    def _commit(self, epoch: int) -> None:
        record(self.folder, "folders")  # the run folder's: --overwrite deletes it whole
        os.makedirs(self.folder, exist_ok=True)
        stem = os.path.join(self.folder, f"epoch-{epoch:04d}")
        _atomic_weights(self.model, stem + ".weights.h5")
        arrays = {f"seed{i}": keras.ops.convert_to_numpy(v)
                  for i, v in enumerate(_seed_states(self.model))}
        arrays.update(global_generators())
        callbacks = {}
        for callback in self.watched:
            name = type(callback).__name__
            callbacks[name] = {a: _plain(getattr(callback, a, None))
                               for a in _state_names(callback)}
            if name == "EarlyStopping" and callback.best_weights is not None:
                arrays.update({f"best{i}": w for i, w in enumerate(callback.best_weights)})
        _atomic(stem + ".npz", lambda tmp: np.savez(tmp, **arrays))
        settings = {"settings": self.settings} if self.settings else {}
        write_json(stem + ".json", {"epoch": epoch, "finished": self.finished,
                                    "stopped": self.stopped, "wall_s": self._wall_so_far(),
                                    "history": self.history,
                                    "callbacks": callbacks, **settings})  # the commit mark
        for older in _committed_epochs(self.folder):
            if older < epoch:
                remove_state(self.folder, older)


def global_generators() -> dict:
    """The backend's global random state, as arrays: on torch, Keras's dropout
    without a seed draws from torch's own generator, not from a SeedGenerator
    the model holds (jax and tensorflow draw from the layer's)."""
    if keras.backend.backend() != "torch":
        return {}
    import torch

    states = {"torch_rng": torch.get_rng_state().numpy()}
    if torch.cuda.is_available():
        states.update({f"torch_cuda_rng{i}": state.numpy()
                       for i, state in enumerate(torch.cuda.get_rng_state_all())})
    return states


def set_global_generators(arrays: dict) -> None:
    """Puts back what :func:`global_generators` saved (on the backend that saved it)."""
    if "torch_rng" not in arrays or keras.backend.backend() != "torch":
        return
    import torch

    torch.set_rng_state(torch.from_numpy(arrays["torch_rng"]))
    for key, state in arrays.items():
        if key.startswith("torch_cuda_rng") and torch.cuda.is_available():
            device = int(key[len("torch_cuda_rng"):])
            if device < torch.cuda.device_count():
                torch.cuda.set_rng_state(torch.from_numpy(state), device)


def _atomic_weights(model, path: str) -> None:
    """``save_weights`` to a temporary file, then rename (Keras wants the name to
    end in ``.weights.h5``, so common's writer cannot name the temporary file)."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name[:-len('.weights.h5')]}.tmp{os.getpid()}.weights.h5")
    try:
        model.save_weights(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _plain(value):
    """A callback counter as JSON (NumPy scalars to Python); None stays None."""
    return value.item() if hasattr(value, "item") else value


def _committed_epochs(folder: str) -> list:
    if not os.path.isdir(folder):
        return []
    return [int(m.group(1)) for m in map(_STATE_FILE.match, os.listdir(folder)) if m]


def remove_state(folder: str, epoch: int) -> None:
    # The commit mark goes first: a kill in between leaves no half-listed state.
    for ext in (".json", ".npz", ".weights.h5"):
        path = os.path.join(folder, f"epoch-{epoch:04d}{ext}")
        if os.path.exists(path):
            os.remove(path)


def has_backup(folder: str) -> bool:
    """Whether ``folder`` holds a committed state to resume from."""
    return bool(_committed_epochs(folder))


def _finished(folder: str) -> bool:
    """Whether ``folder``'s run wrote its metrics and then removed its backup."""
    return (os.path.isfile(os.path.join(folder, "metrics.json"))
            and not has_backup(os.path.join(folder, "backup")))


def resume_folder(task: str, out: str | None) -> str:
    """The folder ``task --resume --out out`` continues, the one rule of every
    resumable task: ``--out`` must name an existing folder (the interrupted
    run's). UserError otherwise."""
    if out is None:
        raise UserError(f"--resume needs --out DIR, the folder of the {task} run to continue")
    if not os.path.isdir(out):
        raise UserError(f"--resume: {out!r} is no folder; give the folder of the interrupted "
                        f"{task} run, or leave out --resume to start a new run")
    return out


def check_not_finished(task: str, out: str) -> None:
    """A single training's finished run (its metrics written, its backup removed)
    is not resumed: UserError saying how to train it again."""
    if _finished(out):
        raise UserError(f"--resume: {out!r} holds a finished {task} run (its metrics.json "
                        f"is written, no backup is left); give another --out, or "
                        f"--overwrite to train it again")


def never_saved(folder: str | None) -> bool:
    """Whether ``folder`` holds a run stopped before it saved anything that took
    time to make (no committed epoch, no metrics, no model): training there
    again from the start loses nothing."""
    if folder is None or not os.path.isdir(folder):
        return False
    if has_backup(os.path.join(folder, "backup")) or _finished(folder):
        return False
    return not any(name == "metrics.json" or name.endswith(".keras")
                   for name in os.listdir(folder))


def saved_settings(folder: str) -> dict | None:
    """The settings recorded in the backup ``folder``'s newest committed state
    (None: none)."""
    for epoch in sorted(_committed_epochs(folder), reverse=True):
        try:
            return read_json(os.path.join(folder, f"epoch-{epoch:04d}.json")).get("settings")
        except (OSError, ValueError, AttributeError):
            continue
    return None


def check_same_settings(folder: str, settings: dict) -> None:
    """UserError naming the first option of ``settings`` (``{option name: value}``)
    whose value differs from the one the backup ``folder`` was trained with."""
    saved = saved_settings(folder) or {}
    out = os.path.dirname(os.path.normpath(folder)) or "."  # the folder --resume names
    for key, value in settings.items():
        if key in saved and saved[key] != _json_value(value):
            option = "--" + key.replace("_", "-")
            was = _with(option, saved[key])
            raise UserError(f"--resume: {out!r} was trained {was}, not {_with(option, value)}; "
                            f"resume it {was}")


def _json_value(value):
    """``value`` as it reads back from JSON (tuples become lists)."""
    return [_json_value(v) for v in value] if isinstance(value, (list, tuple)) else value


def _with(option: str, value) -> str:
    """How a command line gives ``option`` the ``value``: "with --width 4",
    "with --spectral-norm", "without --d-lr"."""
    if value is None or value is False:
        return f"without {option}"
    if value is True:
        return f"with {option}"
    shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
    return f"with {option} {shown}"


def run_settings(data, seed: int, *configs) -> dict:
    """The settings a resumed run must share with the interrupted one, for
    :class:`TrainingBackup`: the data (its name and sizes), the seed, the
    precision and every field of the dataclasses ``configs`` but ``epochs`` (a
    resumed run may train for more)."""
    import dataclasses

    settings = {"dataset": data.name, "train_size": int(len(data.x_train)),
                "val_size": int(len(data.x_val)), "seed": seed,
                "precision": keras.config.dtype_policy().name}
    for config in configs:
        settings.update({k: v for k, v in dataclasses.asdict(config).items() if k != "epochs"})
    return settings
