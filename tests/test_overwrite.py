"""--overwrite deletes only what the toolkit wrote: run folders list their files in
their marker, a folder without one is never emptied, a failed run removes only
what it made."""

import json
import os

import pytest

from conftest import run_main

pytestmark = pytest.mark.backend_independent


def _marker(folder):
    return json.loads((folder / ".run.json").read_text())


def _finished_run(folder, task="cae"):
    """A run as a task leaves it, written through the toolkit's own writers: files,
    a figure-sized file in a sub-folder, a backup handed to another writer."""
    from storage.files import write_json, write_text
    from storage.run_folder import make_run_dir, record

    out = make_run_dir(task, str(folder))
    write_json(os.path.join(out, "metrics.json"), {"task": task})
    write_text(os.path.join(out, "cae.keras"), "model")
    os.makedirs(os.path.join(out, "samples"))
    write_text(os.path.join(out, "samples", "grid.png"), "png")
    backup = os.path.join(out, "backup")
    record(backup, "folders")
    os.makedirs(backup)
    (folder / "backup" / "epoch-0001.weights.h5").write_text("weights")  # not via files.py
    return out


class TestMarker:
    def test_lists_every_file_the_toolkit_wrote_and_nothing_else(self, tmp_path):
        _finished_run(tmp_path / "run")
        (tmp_path / "run" / "notes.md").write_text("mine")
        marker = _marker(tmp_path / "run")
        assert marker["task"] == "cae"
        assert sorted(marker["files"]) == ["cae.keras", "metrics.json",
                                           os.path.join("samples", "grid.png")]
        assert marker["folders"] == ["backup"] and marker["runs"] == []

    def test_file_is_listed_before_it_is_written(self, tmp_path):
        """A kill during the write leaves the path listed: --overwrite still finds it."""
        from storage.files import _atomic
        from storage.run_folder import make_run_dir

        out = make_run_dir("cae", str(tmp_path / "run"))

        def killed(tmp):
            assert "model.keras" in _marker(tmp_path / "run")["files"]
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            _atomic(os.path.join(out, "model.keras"), killed)

    def test_files_outside_run_folders_are_listed_nowhere(self, tmp_path):
        from storage.files import write_text

        write_text(str(tmp_path / "report.html"), "<html>")
        assert not (tmp_path / ".run.json").exists()

    def test_a_run_inside_a_run_is_listed_and_keeps_its_own_files(self, tmp_path):
        from storage.files import write_text
        from storage.run_folder import make_run_dir

        root = make_run_dir("all", str(tmp_path / "study"))
        step = make_run_dir("cae", os.path.join(root, "cae"))
        write_text(os.path.join(step, "metrics.json"), "{}")
        assert _marker(tmp_path / "study")["runs"] == ["cae"]
        assert _marker(tmp_path / "study")["files"] == []
        assert _marker(tmp_path / "study" / "cae")["files"] == ["metrics.json"]

    def test_a_resumed_run_keeps_the_listing(self, tmp_path):
        from storage.files import write_text
        from storage.run_folder import make_run_dir

        out = make_run_dir("cae", str(tmp_path / "run"))
        write_text(os.path.join(out, "config.json"), "{}")
        make_run_dir("cae", out, resume=True)
        assert _marker(tmp_path / "run")["files"] == ["config.json"]


class TestOverwrite:
    def test_deletes_what_the_run_wrote_and_keeps_everything_else(self, tmp_path, capsys):
        from storage.run_folder import make_run_dir

        run = tmp_path / "run"
        _finished_run(run)
        (run / "notes.md").write_text("my notes")
        (run / "mine").mkdir()
        (run / "mine" / "plot.py").write_text("print(1)")
        (run / "samples" / "favourite.png").write_text("kept")  # mine, in its folder
        assert make_run_dir("vae", str(run), overwrite=True) == str(run)
        left = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
        assert left == [".run.json", "mine", os.path.join("mine", "plot.py"), "notes.md",
                        "samples", os.path.join("samples", "favourite.png")]
        assert _marker(run) == {"task": "vae", "files": [], "folders": [], "runs": []}
        printed = capsys.readouterr().out.strip().splitlines()
        assert printed == [f"--overwrite kept what no run of this toolkit wrote in {run}: "
                           f"mine, notes.md, samples"]

    def test_empties_the_folders_it_made(self, tmp_path):
        from storage.run_folder import make_run_dir

        _finished_run(tmp_path / "run")
        make_run_dir("cae", str(tmp_path / "run"), overwrite=True)
        assert os.listdir(tmp_path / "run") == [".run.json"]

    def test_cleans_the_runs_inside_a_run(self, tmp_path):
        from storage.run_folder import make_run_dir

        root = make_run_dir("all", str(tmp_path / "study"))
        _finished_run(tmp_path / "study" / "cae")
        (tmp_path / "study" / "vae").mkdir()
        (tmp_path / "study" / "vae" / "notes.md").write_text("mine")
        make_run_dir("all", root, overwrite=True)
        assert not (tmp_path / "study" / "cae").exists()
        assert (tmp_path / "study" / "vae" / "notes.md").read_text() == "mine"

    def test_a_sealed_folder_keeps_what_a_user_put_there_later(self, tmp_path, capsys):
        from storage.run_folder import make_run_dir, seal

        run = tmp_path / "run"
        _finished_run(run)
        (run / "backup" / "logs").mkdir()  # another writer's sub-folder
        (run / "backup" / "logs" / "events.out").write_text("logs")
        seal(str(run))
        marker = _marker(run)
        assert marker["folders"] == []
        assert {os.path.join("backup", "epoch-0001.weights.h5"), os.path.join("backup", "logs"),
                os.path.join("backup", "logs", "events.out")} <= set(marker["files"])
        (run / "backup" / "notes.md").write_text("mine")  # after the task ended
        make_run_dir("cae", str(run), overwrite=True)
        left = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
        assert left == [".run.json", "backup", os.path.join("backup", "notes.md")]
        assert capsys.readouterr().out.strip().endswith(f"in {run}: backup")

    def test_a_task_that_ends_well_seals_its_run_and_a_failed_one_does_not(
            self, tmp_path, monkeypatch):
        import main as cli
        from storage.run_folder import make_run_dir, record
        from tasks import cae

        def run(args):  # a task that hands a folder to another writer
            out = make_run_dir("cae", args.out)
            logs = os.path.join(out, "logs")
            record(logs, "folders")
            os.makedirs(logs)
            with open(os.path.join(logs, "events.out"), "w") as f:
                f.write("logs")
            if args.epochs == 2:
                raise KeyboardInterrupt
            return out

        monkeypatch.setattr(cae, "run", run)
        assert cli.main(["cae", "--out", str(tmp_path / "ok")]) == 0
        marker = _marker(tmp_path / "ok")
        assert marker["folders"] == [] and os.path.join("logs", "events.out") in marker["files"]
        assert cli.main(["cae", "--epochs", "2", "--out", str(tmp_path / "killed")]) == 130
        assert _marker(tmp_path / "killed")["folders"] == ["logs"]  # resumable, listed whole

    def test_refuses_a_folder_without_a_marker(self, tmp_path):
        """A user's own project folder: nothing in it is deleted, nothing written."""
        from cli.errors import UserError
        from storage.run_folder import make_run_dir

        (tmp_path / "config.json").write_text('{"my": "project"}')
        (tmp_path / "src").mkdir()
        (tmp_path / "src" / "model.keras").write_text("mine")
        for overwrite in (False, True):
            with pytest.raises(UserError, match="holds an earlier run: give another --out; "
                                                "it has no .run.json .*--overwrite cannot"):
                make_run_dir("cae", str(tmp_path), overwrite=overwrite)
        assert sorted(os.listdir(tmp_path)) == ["config.json", "src"]

    def test_refuses_a_non_empty_folder_that_holds_no_run(self, tmp_path):
        from cli.errors import UserError
        from storage.run_folder import make_run_dir

        (tmp_path / "notes.md").write_text("mine")
        with pytest.raises(UserError, match="did not make .* holds notes.md; give a new or "
                                            "empty folder"):
            make_run_dir("cae", str(tmp_path))
        assert os.listdir(tmp_path) == ["notes.md"]

    def test_an_empty_folder_is_taken(self, tmp_path):
        from storage.run_folder import make_run_dir

        assert make_run_dir("cae", str(tmp_path)) == str(tmp_path)

    def test_refuses_a_run_written_before_markers_listed_files(self, tmp_path):
        from cli.errors import UserError
        from storage.run_folder import make_run_dir

        (tmp_path / ".run.json").write_text('{"task": "cae"}')
        (tmp_path / "cae.keras").write_text("model")
        for overwrite in (False, True):
            with pytest.raises(UserError, match="holds an earlier cae run: give another "
                                                "--out; it was written before run folders "
                                                "listed their files"):
                make_run_dir("cae", str(tmp_path), overwrite=overwrite)
        assert (tmp_path / "cae.keras").read_text() == "model"

    def test_never_follows_a_listed_path_out_of_the_folder(self, tmp_path):
        from storage.run_folder import make_run_dir

        outside = tmp_path / "outside.txt"
        outside.write_text("not the run's")
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "elsewhere" / "f.txt").write_text("not the run's")
        run = tmp_path / "run"
        run.mkdir()
        os.symlink(tmp_path / "elsewhere", run / "link")
        (run / ".run.json").write_text(json.dumps(
            {"task": "cae", "files": ["../outside.txt", str(outside),
                                      os.path.join("link", "f.txt")],
             "folders": ["..", "link"], "runs": []}))
        make_run_dir("cae", str(run), overwrite=True)
        assert outside.read_text() == "not the run's"
        assert (tmp_path / "elsewhere" / "f.txt").read_text() == "not the run's"

    def test_end_to_end_a_users_project_folder_is_refused_in_one_line(self, tmp_path):
        (tmp_path / "config.json").write_text('{"my": "project"}')
        (tmp_path / "notes").mkdir()
        result = run_main("cae", "--dataset", "digits", "--epochs", "1", "--out",
                          str(tmp_path), "--overwrite")
        assert result.returncode == 2, result.stderr
        errors = result.stderr.strip().splitlines()
        assert len(errors) == 1 and "--out" in errors[0] and "Traceback" not in result.stderr
        assert sorted(os.listdir(tmp_path)) == ["config.json", "notes"]


class TestFailedRun:
    def test_removes_only_what_this_process_made(self, tmp_path):
        from storage import run_folder
        from storage.files import write_text
        from storage.run_folder import make_run_dir

        failed = make_run_dir("cae", str(tmp_path / "failed"))
        write_text(os.path.join(failed, "config.json"), "{}")
        foreign = make_run_dir("cae", str(tmp_path / "foreign"))
        (tmp_path / "foreign" / "config.json").write_text("someone else's")
        existing = tmp_path / "existing"
        existing.mkdir()
        make_run_dir("cae", str(existing))
        run_folder.discard_unfinished()
        assert not os.path.exists(failed)
        assert os.listdir(foreign) == ["config.json"]
        assert existing.is_dir() and os.listdir(existing) == []  # not made here: kept


class TestWrittenFolders:
    """A training backup or a trial's logs is replaced only where the toolkit
    wrote it: a folder of the same name that a user put in a run folder stays."""

    def _users_backup(self, tmp_path):
        from storage.run_folder import make_run_dir, remove_written_folder

        out = _finished_run(tmp_path / "run")
        remove_written_folder(os.path.join(out, "backup"))  # as a finished training does
        make_run_dir("cae", out, overwrite=True)  # the user's next run in the folder
        mine = tmp_path / "run" / "backup"
        mine.mkdir()
        (mine / "thesis.tex").write_text("mine")
        return out, mine

    def test_a_listed_folder_is_removed_and_unlisted(self, tmp_path):
        from storage.run_folder import remove_written_folder

        out = _finished_run(tmp_path / "run")
        remove_written_folder(os.path.join(out, "backup"))
        assert not (tmp_path / "run" / "backup").exists()
        assert _marker(tmp_path / "run")["folders"] == []
        assert (tmp_path / "run" / "metrics.json").exists()

    def test_overwrite_keeps_a_users_folder_where_a_finished_backup_was(self, tmp_path):
        from storage.training_backup import TrainingBackup

        out = _finished_run(tmp_path / "run")
        TrainingBackup(os.path.join(out, "backup"), None).discard()
        assert not (tmp_path / "run" / "backup").exists()
        (tmp_path / "run" / "backup").mkdir()
        (tmp_path / "run" / "backup" / "thesis.tex").write_text("mine")
        result = run_main("cae", "--dataset", "digits", "--epochs", "1", "--train-size",
                          "200", "--test-size", "100", "--verbose", "0", "--out", out,
                          "--overwrite")
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and "backup" in result.stderr
        assert (tmp_path / "run" / "backup" / "thesis.tex").read_text() == "mine"

    def test_a_folder_of_listed_files_is_removed(self, tmp_path):
        from storage.files import write_json
        from storage.run_folder import make_run_dir, remove_written_folder

        out = make_run_dir("classify", str(tmp_path / "run"))
        os.makedirs(os.path.join(out, "backup"))
        write_json(os.path.join(out, "backup", "owner.json"), {"phase": "cae"})
        remove_written_folder(os.path.join(out, "backup"))
        assert not (tmp_path / "run" / "backup").exists()

    def test_a_users_folder_is_refused_and_kept(self, tmp_path):
        from cli.errors import UserError
        from storage.run_folder import remove_written_folder

        out, mine = self._users_backup(tmp_path)
        with pytest.raises(UserError, match="did not write"):
            remove_written_folder(str(mine))
        assert (mine / "thesis.tex").read_text() == "mine"
        (mine / "thesis.tex").unlink()
        with pytest.raises(UserError):  # outside any run folder: never the toolkit's
            remove_written_folder(str(tmp_path))

    def test_a_fresh_training_keeps_a_users_backup_folder(self, tmp_path):
        from cli.errors import UserError
        from training.resume import start_backup

        out, mine = self._users_backup(tmp_path)
        with pytest.raises(UserError, match="backup"):
            start_backup(None, None, out, resume=False, epochs=1, settings={})
        assert (mine / "thesis.tex").read_text() == "mine"

    def test_a_phase_keeps_a_users_backup_folder(self, tmp_path):
        from cli.errors import UserError
        from training.phases import PhasedRun

        out, mine = self._users_backup(tmp_path)
        with pytest.raises(UserError, match="backup"):
            PhasedRun(out, resume=False).start("cae")
        assert (mine / "thesis.tex").read_text() == "mine"
