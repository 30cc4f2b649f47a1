"""Trains the CAE, the VAE and the GAN for two steps on one device and on N
simulated CPU devices (``--distribute data_parallel``) from the same weights on
the same global batches; prints, as JSON, each model's logged losses and final
weights' largest difference between the two runs.

Run in a fresh process (the device count must be set before the backend loads):
``KERAS_BACKEND=jax python tests/distribute_probe.py 2``.
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
DEVICES = int(sys.argv[1]) if len(sys.argv) > 1 else 2

from startup import start  # noqa: E402

# As main.py: the simulated devices before the backend loads, Keras's
# data-parallel fixes, and the speed settings where acceleration is on.
start(["--cpu-devices", str(DEVICES), "--distribute", "data_parallel"],
      os.environ.get("KERAS_BACKEND", "tensorflow"))
import keras  # noqa: E402
import numpy as np  # noqa: E402

from runtime import compute  # noqa: E402

BATCH = 8  # the global batch: split DEVICES ways
rng = np.random.default_rng(0)
IMAGES = rng.uniform(0, 1, (2 * BATCH, 28, 28, 1)).astype("float32")


def build(name):
    from models.cae import CAEConfig, build_cae
    from models.gan import build_gan, to_gan_range
    from models.vae import build_vae

    if name == "cae":
        model = build_cae(CAEConfig(conv_filters=(4, 4, 4), dense_units=8, latent_dim=2))
        model.compile(keras.optimizers.Adam(1e-2), loss="mse")
        return model, (IMAGES, IMAGES)
    if name == "vae":
        model = build_vae(latent_dim=2, width=4, seed=0)
        model.compile(keras.optimizers.Adam(1e-2))
        return model, (IMAGES,)
    model = build_gan(latent_dim=4, width=2, seed=0)
    model.compile(keras.optimizers.Adam(1e-2, name="d"), keras.optimizers.Adam(1e-2, name="g"))
    return model, (to_gan_range(IMAGES),)


def train(name, distribute):
    compute.configure(compute.ComputeConfig(precision="float32", distribute=distribute,
                                            cpu_devices=DEVICES if distribute != "none"
                                            else None))
    keras.utils.set_random_seed(0)
    with compute.task_scope():
        model, data = build(name)
        history = model.fit(*data, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    weights = [keras.ops.convert_to_numpy(w) for w in model.weights]
    return {k: [float(x) for x in v] for k, v in history.history.items()}, weights, \
        compute.describe()


results = {}
for name in ("cae", "vae", "gan"):
    # data_parallel first: TensorFlow's simulated devices are set by the first
    # configure of the process, and a one-device run leaves them alone.
    many_logs, many_weights, info = train(name, "data_parallel")
    one_logs, one_weights, _ = train(name, "none")
    results[name] = {
        "one_device": one_logs, "devices": info["devices"], "strategy": info["strategy"],
        "data_parallel": many_logs,
        "weight_max_abs_diff": max(float(np.max(np.abs(a - b)))
                                   for a, b in zip(one_weights, many_weights)),
    }
print(json.dumps(results))
