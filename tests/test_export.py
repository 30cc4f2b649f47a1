"""main.py export: ONNX (run in onnxruntime) and SavedModel, through Keras's model.export."""

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
