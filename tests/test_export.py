"""main.py export: ONNX (run in onnxruntime) and SavedModel, through Keras's model.export;
an existing output is replaced only with --overwrite and only where export wrote it."""

import warnings

import numpy as np
import pytest

import keras
from models.cae import CAEConfig, build_cae
from models.vae import build_vae

BACKEND = keras.backend.backend()


def _export(capsys, *args):
    import main as cli

    code = cli.main(["export", *args])
    return code, capsys.readouterr()


@pytest.fixture
def saved(tmp_path, tiny_images):
    """A trained tiny CAE and a VAE encoder (two outputs), saved by the toolkit."""
    from models.saving import save_model

    cae = build_cae(CAEConfig(conv_filters=(4, 8, 8), dense_units=16, latent_dim=3))
    cae.compile(optimizer="adam", loss="mse")
    cae.fit(tiny_images, tiny_images, epochs=1, batch_size=16, verbose=0)
    vae = build_vae(latent_dim=2, width=4)
    return {"cae": (save_model(cae, str(tmp_path / "cae.keras")), cae),
            "vae_encoder": (save_model(vae.encoder, str(tmp_path / "encoder.keras")),
                            vae.encoder),
            "vae": save_model(vae, str(tmp_path / "vae.keras"))}


@pytest.mark.parametrize("name", ["cae", "vae_encoder"])
def test_onnx_export_runs_in_onnxruntime_to_keras_outputs(name, saved, tmp_path, capsys,
                                                          tiny_images):
    import onnxruntime

    path, model = saved[name]
    out = str(tmp_path / f"{name}.onnx")
    code, printed = _export(capsys, "--model", path, "--format", "onnx", "--out", out)
    assert code == 0, printed.err[-2000:]
    assert "onnxruntime reproduces Keras's outputs" in printed.out
    session = onnxruntime.InferenceSession(out, providers=["CPUExecutionProvider"])
    x = tiny_images[:5]  # another batch size than the export traced
    got = session.run(None, {session.get_inputs()[0].name: x})
    want = model.predict(x, verbose=0)
    want = want if isinstance(want, list) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert np.max(np.abs(g - w)) <= 1e-4


def test_saved_model_export_serves_keras_outputs_or_names_a_backend(saved, tmp_path, capsys,
                                                                    tiny_images):
    path, model = saved["cae"]
    out = str(tmp_path / "cae_saved_model")
    code, printed = _export(capsys, "--model", path, "--format", "saved_model", "--out", out)
    if BACKEND == "torch":  # Keras needs torch_xla for it
        assert code == 2
        lines = printed.err.strip().splitlines()
        assert len(lines) == 1 and "--backend tensorflow" in lines[0] and "torch" in lines[0]
        return
    assert code == 0, printed.err[-2000:]
    import tensorflow as tf

    loaded = tf.saved_model.load(out)  # kept: its variables live as long as it does
    served = loaded.serve(tf.constant(tiny_images[:5]))
    assert np.max(np.abs(np.asarray(served) - model.predict(tiny_images[:5], verbose=0))) <= 1e-4


def test_training_wrapper_is_refused_in_one_line(saved, tmp_path, capsys):
    code, printed = _export(capsys, "--model", saved["vae"], "--format", "onnx",
                            "--out", str(tmp_path / "vae.onnx"))
    assert code == 2
    lines = printed.err.strip().splitlines()
    assert len(lines) == 1 and "training wrapper" in lines[0] and "encoder.keras" in lines[0]


# ------------------------------------------- never delete what export did not write


def _one_line_error(code, printed):
    assert code == 2, printed.err[-2000:]
    lines = printed.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in printed.err, printed.err
    return lines[0]


def _leftovers(folder):
    import os

    return [n for n in os.listdir(folder) if n.startswith(".export-")]


@pytest.mark.parametrize("fmt", ["onnx", "saved_model"])
def test_existing_folder_at_out_is_refused_and_kept(saved, tmp_path, capsys, fmt):
    path, _ = saved["cae"]
    folder = tmp_path / ("mine.onnx" if fmt == "onnx" else "mine")
    folder.mkdir()
    (folder / "notes.md").write_text("my notes")
    # On torch a SavedModel is refused first, for its backend: the folder stays all the same.
    named = "the torch backend" if BACKEND == "torch" and fmt == "saved_model" else str(folder)
    for extra in ([], ["--overwrite"]):
        code, printed = _export(capsys, "--model", path, "--format", fmt,
                                "--out", str(folder), *extra)
        assert named in _one_line_error(code, printed)
    assert [p.name for p in folder.iterdir()] == ["notes.md"]
    assert (folder / "notes.md").read_text() == "my notes" and not _leftovers(tmp_path)


def test_onnx_is_replaced_only_with_overwrite_and_only_if_export_wrote_it(saved, tmp_path,
                                                                         capsys):
    path, _ = saved["cae"]
    foreign = tmp_path / "foreign.onnx"
    foreign.write_bytes(b"someone else's model")
    for extra in ([], ["--overwrite"]):
        code, printed = _export(capsys, "--model", path, "--format", "onnx",
                                "--out", str(foreign), *extra)
        assert "foreign.onnx" in _one_line_error(code, printed)
    assert foreign.read_bytes() == b"someone else's model"

    out = tmp_path / "cae.onnx"
    code, printed = _export(capsys, "--model", path, "--format", "onnx", "--out", str(out))
    assert code == 0, printed.err[-2000:]
    first = out.stat().st_ino
    code, printed = _export(capsys, "--model", path, "--format", "onnx", "--out", str(out))
    assert "exists" in _one_line_error(code, printed) and "--overwrite" in printed.err
    assert out.stat().st_ino == first
    code, printed = _export(capsys, "--model", path, "--format", "onnx", "--out", str(out),
                            "--overwrite")
    assert code == 0, printed.err[-2000:]
    assert out.stat().st_ino != first and not _leftovers(tmp_path)  # a new file renamed in


@pytest.mark.skipif(BACKEND == "torch", reason="Keras writes a SavedModel on tensorflow and jax")
def test_saved_model_folder_holding_anything_else_is_never_replaced(saved, tmp_path, capsys):
    path, _ = saved["cae"]
    out = tmp_path / "cae_saved_model"
    code, printed = _export(capsys, "--model", path, "--format", "saved_model", "--out", str(out))
    assert code == 0, printed.err[-2000:]
    (out / "notes.md").write_text("mine")
    code, printed = _export(capsys, "--model", path, "--format", "saved_model", "--out", str(out),
                            "--overwrite")
    assert "not a SavedModel folder" in _one_line_error(code, printed)
    assert (out / "notes.md").read_text() == "mine" and (out / "saved_model.pb").is_file()
    (out / "notes.md").unlink()
    (out / "saved_model.pb").write_bytes(b"old")
    code, printed = _export(capsys, "--model", path, "--format", "saved_model", "--out", str(out),
                            "--overwrite")
    assert code == 0, printed.err[-2000:]
    assert (out / "saved_model.pb").read_bytes() != b"old" and not _leftovers(tmp_path)


@pytest.mark.skipif(BACKEND == "torch", reason="Keras writes a SavedModel on tensorflow and jax")
def test_saved_model_in_a_run_folder_is_listed_file_by_file(saved, tmp_path, capsys):
    """Once in place, the export's folder is sealed in its run's marker: --overwrite
    of the run deletes the SavedModel's files and keeps a note put there later."""
    import json
    import os

    from storage.run_folder import RUN_MARK, make_run_dir

    path, _ = saved["cae"]
    run = tmp_path / "run"
    make_run_dir("cae", str(run))
    out = run / "cae_saved_model"
    code, printed = _export(capsys, "--model", path, "--format", "saved_model", "--out", str(out))
    assert code == 0, printed.err[-2000:]
    marker = json.loads((run / RUN_MARK).read_text())
    assert "cae_saved_model" not in marker["folders"]
    assert os.path.join("cae_saved_model", "saved_model.pb") in marker["files"]
    (out / "notes.md").write_text("mine")
    make_run_dir("cae", str(run), overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["notes.md"]


def test_impossible_outputs_are_one_line_and_leave_nothing(saved, tmp_path, capsys):
    path, _ = saved["cae"]
    (tmp_path / "a_file").write_text("x")
    cases = {
        str(tmp_path / "missing" / "m.onnx"): "does not exist",
        str(tmp_path / "a_file" / "m.onnx"): "does not exist (or is no folder)",
        str(tmp_path / "m.txt"): "ending in .onnx",
        "/proc/m.onnx": "cannot write",
    }
    before = sorted(p.name for p in tmp_path.iterdir())
    for out, fragment in cases.items():
        code, printed = _export(capsys, "--model", path, "--format", "onnx", "--out", out)
        assert fragment in _one_line_error(code, printed), out
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_model_never_built_is_one_line(tmp_path, capsys):
    import keras

    path = str(tmp_path / "unbuilt.keras")
    with warnings.catch_warnings():  # Keras warns that the model is not built: the point
        warnings.simplefilter("ignore")
        keras.Sequential([keras.layers.Dense(3)]).save(path)
    code, printed = _export(capsys, "--model", path, "--format", "onnx",
                            "--out", str(tmp_path / "u.onnx"))
    assert "never built" in _one_line_error(code, printed)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unbuilt.keras"]


def test_large_weights_land_in_one_self_contained_file(tmp_path, capsys, tiny_images):
    """jax2onnx keeps a tensor over 1 MB in a .onnx.data file beside the model; the
    exported file must hold it (a lone .onnx without it cannot run)."""
    import keras
    import onnxruntime

    from models.saving import save_model

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Dense(400, activation="relu")(keras.layers.Flatten()(inputs))  # 1.25 MB
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    path = save_model(model, str(tmp_path / "wide.keras"))
    out = tmp_path / "export" / "wide.onnx"
    out.parent.mkdir()
    code, printed = _export(capsys, "--model", path, "--format", "onnx", "--out", str(out))
    assert code == 0, printed.err[-2000:]
    assert [p.name for p in out.parent.iterdir()] == ["wide.onnx"]
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: tiny_images[:4]})[0]
    assert np.max(np.abs(got - model.predict(tiny_images[:4], verbose=0))) <= 1e-4
