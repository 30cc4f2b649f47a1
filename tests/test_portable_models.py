"""Saved inference models load with plain Keras, without this toolkit.

A tiny study (every task that saves a model) writes its ``.keras`` files; a fresh
Python process that cannot import the toolkit (``python -I``, working folder
elsewhere) loads each inference model with ``keras.saving.load_model`` and must
predict what the toolkit's loader predicts. Files written by earlier versions (with
their custom transposed convolution) still load inside the toolkit.
"""

import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import keras
from conftest import ROOT

FIXTURES = os.path.join(ROOT, "tests", "fixtures")
# Files whose model has a custom train_step: they need `import models` (README).
TRAINING_WRAPPERS = {os.path.join("vae", "vae.keras")}

TINY = ["--dataset", "digits", "--train-size", "64", "--test-size", "32", "--verbose", "0"]
# `tune` is left out for time: its best.keras is build_cae's CAE, as `cae` writes.
STUDY = {
    "cae": ["--epochs", "1", "--conv-filters", "4", "8", "8", "--dense-units", "16",
            "--latent-dim", "3"],
    "classify": ["--encoder", "{root}/cae/cae.keras", "--max-trials", "1",
                 "--tuning-epochs", "1", "--epochs", "1", "--fine-tune-epochs", "1",
                 "--baseline-epochs", "1", "--semi-supervised-epochs", "1",
                 "--min-steps", "1", "--batch-size", "32",
                 "--skip-label-efficiency"],  # label smoothing and augmentation on (defaults)
    # latent 3: no manifold figure
    "vae": ["--epochs", "1", "--latent-dim", "3", "--width", "4", "--dense-units", "16"],
    "gan": ["--epochs", "1", "--latent-dim", "4", "--width", "2"],
    "quality": ["--gan", "{root}/gan/generator.keras", "--vae", "{root}/vae/vae.keras",
                "--cae", "{root}/cae/cae.keras", "--n", "64", "--classifier-epochs", "1",
                # a subset classifier in the run, as `all --quick` does (the reference
                # extractor is cached outside the run)
                "--classifier", "{root}/quality/domain_classifier.keras"],
}

# Run with `python -I` (no PYTHONPATH, no script folder on sys.path) in a folder
# outside the repository: plain Keras only.
PLAIN_KERAS = textwrap.dedent("""
    import json, sys
    import numpy as np
    try:
        import models  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        sys.exit("the toolkit is importable: the test proves nothing")
    import keras
    jobs = json.load(open("jobs.json"))
    outputs = {}
    for name, (model_path, inputs_path) in jobs.items():
        model = keras.saving.load_model(model_path)  # compile=True, the default
        x = np.load(inputs_path)
        if inputs_path.endswith(".npz"):  # a model of several inputs
            x = [x[f"arr_{i}"] for i in range(len(x.files))]
        y = model.predict(x, verbose=0)
        for i, part in enumerate(y if isinstance(y, list) else [y]):
            outputs[f"{name}:{i}"] = np.asarray(part)
    np.savez("outputs.npz", **outputs)
    print(keras.backend.backend())
""")


def _run_study(root):
    import main as cli

    for task, args in STUDY.items():
        argv = [task, *TINY, "--out", os.path.join(root, task),
                *(a.format(root=root) for a in args)]
        assert cli.main(argv) == 0, f"main.py {' '.join(argv)} failed"


def _saved_models(root):
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in ("tuner", "backup")]  # KerasTuner's trials
        found += [os.path.relpath(os.path.join(folder, f), root) for f in files
                  if f.endswith(".keras")]
    return sorted(found)


@pytest.mark.slow
def test_every_saved_inference_model_loads_and_predicts_without_the_toolkit(tmp_path):
    from models.saving import load_keras_model

    root = tmp_path / "study"
    _run_study(str(root))
    saved = _saved_models(str(root))
    expected = {os.path.join("cae", f) for f in ("cae.keras", "encoder.keras", "decoder.keras")}
    expected |= {os.path.join("classify", f) for f in
                 ("classifier_frozen.keras", "classifier_fine_tuned.keras", "baseline.keras",
                  "classifier_semi_supervised.keras")}
    expected |= {os.path.join("vae", "encoder.keras"), os.path.join("vae", "decoder.keras"),
                 os.path.join("gan", "generator.keras"),
                 os.path.join("gan", "discriminator.keras"),
                 os.path.join("quality", "domain_classifier.keras")}
    # quality fits every sampler beside its model: the flow's velocity network too
    expected |= {os.path.join(kind, "latent_flow.keras") for kind in ("cae", "vae")}
    assert expected <= set(saved), sorted(expected - set(saved))

    rng = np.random.default_rng(0)
    jobs, toolkit = {}, {}
    for name in saved:
        if name in TRAINING_WRAPPERS:
            continue
        path = str(root / name)
        config = zipfile.ZipFile(path).read("config.json").decode()
        assert "unsupervised28" not in config, f"{name} names a class of this toolkit"
        model = load_keras_model(path)
        shapes = model.input_shape if isinstance(model.input_shape, list) else None
        if shapes:  # several inputs (the flow sampler's codes and time)
            x = [rng.random((8, *shape[1:])).astype("float32") for shape in shapes]
            inputs = str(root / f"{name.replace(os.sep, '_')}.npz")
            np.savez(inputs, *x)
        else:
            x = rng.random((8, *model.input_shape[1:])).astype("float32")
            inputs = str(root / f"{name.replace(os.sep, '_')}.npy")
            np.save(inputs, x)
        jobs[name] = [path, inputs]
        y = model.predict(x, verbose=0)
        for i, part in enumerate(y if isinstance(y, list) else [y]):
            toolkit[f"{name}:{i}"] = np.asarray(part)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "jobs.json").write_text(json.dumps(jobs))
    result = subprocess.run([sys.executable, "-I", "-c", PLAIN_KERAS], cwd=elsewhere,
                            capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, KERAS_BACKEND=keras.backend.backend()))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == keras.backend.backend()
    plain = np.load(elsewhere / "outputs.npz")
    assert sorted(plain.files) == sorted(toolkit)
    for key, want in toolkit.items():
        assert np.max(np.abs(plain[key] - want)) <= 1e-4, key


@pytest.mark.parametrize("name,inputs", [("cae", "x"), ("generator", "z")])
def test_files_written_with_the_old_custom_layer_still_load_in_the_toolkit(name, inputs):
    """Fixtures written by an earlier version (tests/fixtures/make_old_layer_fixtures.py)."""
    from models.saving import load_keras_model

    path = os.path.join(FIXTURES, f"old_layer_{name}.keras")
    assert b"unsupervised28>Conv2DTranspose" in zipfile.ZipFile(path).read("config.json")
    model = load_keras_model(path)
    recorded = np.load(os.path.join(FIXTURES, "old_layer_outputs.npz"))
    got = model.predict(recorded[inputs], verbose=0)
    assert np.max(np.abs(got - recorded[name])) <= 1e-5
    # Loaded as Keras's own layer: re-saving it writes a plain-Keras file.
    layers = [layer for m in [model, *[s for s in model.layers if isinstance(s, keras.Model)]]
              for layer in m.layers]
    transposed = [layer for layer in layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert len(transposed) == 3
    assert all(type(layer) is keras.layers.Conv2DTranspose for layer in transposed)


def test_old_cae_file_works_with_the_latent_and_generate_loaders():
    from training.cae_source import load_cae
    from training.sampler_source import load_sampler

    _, encoder, decoder = load_cae(os.path.join(FIXTURES, "old_layer_cae.keras"))
    assert decoder.output_shape == (None, 28, 28, 1)
    sampler = load_sampler(os.path.join(FIXTURES, "old_layer_generator.keras"))
    assert sampler.kind == "gan" and sampler.latent_dim == 2


def test_flow_prior_network_loads_and_predicts_without_the_toolkit(tmp_path):
    """The flow sampler's velocity network (latent_flow.keras) is plain Keras."""
    from models.samplers import FlowSampler

    codes = np.random.default_rng(0).standard_normal((64, 3)).astype("float32")
    FlowSampler(3, epochs=1, width=8).fit(codes).save(str(tmp_path))
    path = str(tmp_path / FlowSampler.FILE)
    assert "unsupervised28" not in zipfile.ZipFile(path).read("config.json").decode()
    rng = np.random.default_rng(1)
    inputs = {"x_t": rng.standard_normal((8, 3)).astype("float32"),
              "t": rng.random((8, 1)).astype("float32")}
    want = FlowSampler.load(str(tmp_path), 3).velocity.predict(
        [inputs["x_t"], inputs["t"]], verbose=0)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = textwrap.dedent("""
        import sys
        import numpy as np
        try:
            import models  # noqa: F401
        except ModuleNotFoundError:
            pass
        else:
            sys.exit("the toolkit is importable: the test proves nothing")
        import keras
        model = keras.saving.load_model(sys.argv[1])
        inputs = np.load(sys.argv[2])
        np.save("velocity.npy", model.predict([inputs["x_t"], inputs["t"]], verbose=0))
    """)
    np.savez(elsewhere / "inputs.npz", **inputs)
    result = subprocess.run([sys.executable, "-I", "-c", script, path, "inputs.npz"],
                            cwd=elsewhere, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, KERAS_BACKEND=keras.backend.backend()))
    assert result.returncode == 0, result.stderr[-3000:]
    got = np.load(elsewhere / "velocity.npy")
    assert got.shape == (8, 3)
    np.testing.assert_allclose(got, want, atol=1e-5)
