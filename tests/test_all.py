"""main.py all: steps in order, a failed step does not stop independent ones."""

import json

import pytest

from tasks import all as study
from tasks.all import Step


def test_failed_step_skips_dependents_and_not_the_others(tmp_path, monkeypatch, capsys):
    import main as cli

    tiny_vae = ["--out", "{root}/vae", "--train-size", "64", "--test-size", "32",
                "--epochs", "1", "--latent-dim", "2", "--verbose", "0"]
    monkeypatch.setattr(study, "STEPS", [
        Step("cae", ["--out", "{root}/cae", "--epochs", "0"], []),  # argparse rejects it
        Step("latent", ["--out", "{root}/latent", "--model", "{root}/cae/cae.keras"], [],
             needs=("cae",)),
        Step("vae", tiny_vae, []),
    ])
    code = cli.main(["all", "--dataset", "digits", "--out", str(tmp_path)])
    assert code == 0
    summary = {r["step"]: r for r in json.loads((tmp_path / "summary.json").read_text())}
    assert summary["cae"]["status"] == "failed"
    assert summary["latent"]["status"] == "skipped" and "cae" in summary["latent"]["reason"]
    assert summary["vae"]["status"] == "ok"
    assert summary["vae"]["value"] < 0  # an ELBO read from the step's metrics.json
    assert (tmp_path / "vae" / "metrics.json").is_file()
    assert (tmp_path / "report.html").is_file()
    printed = capsys.readouterr().out
    assert "step 1/3: cae (then: latent, vae)" in printed
    assert "| vae | ok | test ELBO (nats) |" in printed


@pytest.mark.backend_independent
def test_unknown_step_is_a_one_line_error():
    from conftest import run_main
    from test_cli import assert_one_line_error

    assert_one_line_error(run_main("all", "--steps", "cae,paint"), "'cae,paint'", "paint",
                          "latent")


@pytest.mark.backend_independent
def test_quick_shrinks_every_step():
    for step in study.STEPS:
        argv = study.step_argv(step, "ROOT", study.AllConfig(quick=True))
        assert "--train-size" in argv, step.name
        assert all("{root}" not in a for a in argv)
        assert argv[-4:] == ["--dataset", "fashion_mnist", "--seed", "0"]  # DataConfig's
