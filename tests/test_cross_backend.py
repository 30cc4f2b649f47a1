"""A .keras file saved on this backend loads on the other two and predicts the same."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import keras
from conftest import ROOT
from models.cae import CAEConfig, build_cae

OTHER_BACKENDS = [b for b in ("tensorflow", "jax", "torch") if b != keras.backend.backend()]

PREDICT = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, {root!r})
    import keras
    from models.saving import load_keras_model
    model = load_keras_model({model!r})
    x = np.load({inputs!r})
    np.save({outputs!r}, np.asarray(model.predict(x, verbose=0)))
    print(keras.backend.backend())
""")


def backend_installed(backend):
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
    return subprocess.run([sys.executable, "-c", f"import {module}"],
                          capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_saved_cae_predicts_the_same_on(backend, tmp_path, tiny_images):
    if not backend_installed(backend):
        if os.environ.get("REQUIRE_ALL_BACKENDS"):
            pytest.fail(f"backend {backend} is not installed")
        pytest.skip(f"backend {backend} is not installed (CI installs all three)")
    from models.saving import save_model

    cae = build_cae(CAEConfig(conv_filters=(4, 8, 8), dense_units=16, latent_dim=3,
                              dropout=0.1, l2=1e-4))
    cae.compile(optimizer="adam", loss="mse")
    cae.fit(tiny_images, tiny_images, epochs=1, batch_size=16, verbose=0)  # non-initial weights
    model_path = save_model(cae, str(tmp_path / "cae.keras"))
    np.save(tmp_path / "x.npy", tiny_images)
    expected = cae.predict(tiny_images, verbose=0)

    script = PREDICT.format(root=ROOT, model=model_path, inputs=str(tmp_path / "x.npy"),
                            outputs=str(tmp_path / "y.npy"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=dict(os.environ, KERAS_BACKEND=backend), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == backend
    got = np.load(tmp_path / "y.npy")
    assert np.max(np.abs(got - expected)) < 1e-4
