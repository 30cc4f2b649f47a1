"""startup/tf_data.py: Keras's tf.data pipelines run without tf.data's autotuner,
whose thread kept fit, evaluate and predict from returning (tensorflow only)."""

import numpy as np
import pytest
import keras

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="tf.data pipelines feed Keras on tensorflow only")


@pytest.fixture
def data_adapters(monkeypatch):
    """Keras's adapter factory, unpatched for the test and restored after it."""
    from keras.src.trainers import data_adapters

    original = data_adapters.get_data_adapter
    while getattr(original, "_without_autotune", False):
        original = original.__wrapped__
    monkeypatch.setattr(data_adapters, "get_data_adapter", original)
    return data_adapters


def _autotune(dataset) -> bool:
    return dataset.options().autotune.enabled is not False  # None: tf.data's default, on


class Batches(keras.utils.PyDataset):
    def __init__(self, x):
        super().__init__()
        self.x = x

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return self.x[i * 4:(i + 1) * 4], self.x[i * 4:(i + 1) * 4]


def test_keras_pipelines_lose_the_autotuner_and_keep_their_batches(data_adapters):
    from startup.tf_data import without_autotune_stall

    x = np.arange(10 * 3, dtype="float32").reshape(10, 3)
    before = data_adapters.get_data_adapter(x, batch_size=4, shuffle=False).get_tf_dataset()
    assert _autotune(before)  # Keras's own pipeline: the autotuner is on

    assert without_autotune_stall()
    adapter = data_adapters.get_data_adapter(x, batch_size=4, shuffle=False)
    dataset = adapter.get_tf_dataset()
    assert not _autotune(dataset)
    batches = [b[0].numpy() if isinstance(b, tuple) else b.numpy() for b in dataset]
    np.testing.assert_array_equal(np.concatenate(batches), x)  # every row, in order
    assert [len(b) for b in batches] == [4, 4, 2]

    assert not _autotune(data_adapters.get_data_adapter(Batches(x)).get_tf_dataset())


def test_a_users_tf_dataset_keeps_its_options(data_adapters):
    import tensorflow as tf

    from startup.tf_data import without_autotune_stall

    assert without_autotune_stall()
    assert without_autotune_stall()  # a second call wraps nothing twice
    assert not getattr(data_adapters.get_data_adapter.__wrapped__, "_without_autotune", False)
    own = tf.data.Dataset.from_tensor_slices(np.zeros((8, 3), "float32")).batch(4)
    assert _autotune(data_adapters.get_data_adapter(own).get_tf_dataset())


def test_fit_evaluate_predict_run_through_the_patched_pipelines(data_adapters, tiny_images):
    from startup.tf_data import without_autotune_stall

    without_autotune_stall()
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(4), keras.layers.Dense(28 * 28),
                              keras.layers.Reshape((28, 28, 1))])
    model.compile("adam", "mse")
    x = tiny_images[:32]
    history = model.fit(x, x, validation_data=(x[:8], x[:8]), batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["val_loss"][0])
    assert np.isfinite(model.evaluate(x, x, batch_size=8, verbose=0))
    assert model.predict(x, batch_size=8, verbose=0).shape == x.shape


def test_main_turns_it_on_for_the_tensorflow_backend(data_adapters, tmp_path, monkeypatch):
    import main

    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert not getattr(data_adapters.get_data_adapter, "_without_autotune", False)
    main.main(["report", str(tmp_path)])  # any command: the set-up comes first
    assert getattr(data_adapters.get_data_adapter, "_without_autotune", False)
