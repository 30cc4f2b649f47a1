"""Runs a tiny study (``main.py all`` on 200 ``digits`` images: a CAE, then a
denoising CAE started from it) and kills itself with SIGKILL (what ``kill -9`` sends: no
handler runs, nothing is cleaned up) at a chosen moment.

``python tests/study_kill_probe.py MOMENT <all's options>``, MOMENT one of:

* ``none``: run to the end;
* ``epoch:<step>:<n>``: right after a training of step ``<step>`` committed the
  backup of its epoch ``n``;
* ``step:<step>``: right after ``summary.json`` first lists ``<step>`` as done.
"""

import os
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

TINY_CAE = ["--conv-filters", "4", "8", "8", "--dense-units", "16", "--latent-dim", "3",
            "--epochs", "3", "--batch-size", "32"]
DATA = ["--train-size", "200", "--test-size", "80", "--verbose", "0"]
CAE = "{root}/cae/cae.keras"


def tiny_steps():
    from tasks.all import Step

    return [
        Step("cae", ["--out", "{root}/cae", *TINY_CAE, *DATA], []),
        Step("denoise", ["--out", "{root}/denoise", "--model", CAE, *TINY_CAE, *DATA,
                         "--noises", "none,gaussian:0.5", "--train-noise", "gaussian:0.5",
                         "--examples", "2"], [], needs=("cae",)),
    ]


def kill_at(moment: str) -> None:
    """Patches the JSON writer, before anything imports it, so that the process dies
    right after writing the file that marks ``moment``: a backup's commit mark
    ``<step>/backup/epoch-000<n>.json``, or ``summary.json``."""
    import storage.files

    kind, _, where = moment.partition(":")
    if kind not in ("epoch", "step") and moment != "none":
        raise SystemExit(f"unknown moment {moment!r}")
    write_json = storage.files.write_json

    def write_and_die(path, obj):
        written = write_json(path, obj)
        parts = os.path.normpath(os.path.abspath(path)).split(os.sep)
        if kind == "epoch":
            step, epoch = where.rsplit(":", 1)
            if parts[-3:-1] == [step, "backup"] and parts[-1] == f"epoch-{int(epoch):04d}.json":
                os.kill(os.getpid(), signal.SIGKILL)
        elif kind == "step" and parts[-1] == "summary.json":
            if any(r["step"] == where and r["status"] == "ok" for r in obj):
                os.kill(os.getpid(), signal.SIGKILL)
        return written

    storage.files.write_json = write_and_die


if __name__ == "__main__":
    kill_at(sys.argv[1])
    import main
    import tasks.all

    tasks.all.STEPS = tiny_steps()
    sys.exit(main.main(["all", "--dataset", "digits", *sys.argv[2:]]))
