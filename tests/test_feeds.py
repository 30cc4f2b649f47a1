"""storage/feeds.py: on tensorflow, fit gets a tf.data pipeline with the very
batches of the PyDataset feed, epoch by epoch; elsewhere, the feed itself."""

import keras
import numpy as np
import pytest

on_tensorflow = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                   reason="the tf.data pipeline feeds tensorflow only")


def _feeds():
    """One feed of each kind the toolkit trains with, on tiny arrays."""
    from storage.training_backup import EpochFeed
    from training.phases import epoch_feed
    from training.semi_supervised import LabelledUnlabelledFeed

    x = np.arange(10, dtype="float32").reshape(10, 1)
    labels = np.arange(10, dtype="int32") % 3
    return {
        "inputs and targets": EpochFeed(x, labels, batch_size=4, seed=3),
        "autoencoder": EpochFeed(x, x, batch_size=4, seed=3),
        "images alone": EpochFeed(x, None, batch_size=4, seed=3),
        "images as a tuple": epoch_feed(x, None, 4, seed=3),
        "labelled and unlabelled": LabelledUnlabelledFeed(x[:4], labels[:4], x, 2, 3, seed=3),
    }


def _numpy(batch):
    return keras.tree.map_structure(lambda t: np.asarray(t).tolist(), batch)


@on_tensorflow
@pytest.mark.parametrize("kind", list(_feeds()))
def test_pipeline_gives_the_feeds_batches_in_each_epochs_order(kind):
    feed = _feeds()[kind]
    dataset = feed.tf_dataset()
    seen = []
    for epoch in (0, 1, 2):
        feed.set_epoch(epoch)
        expected = [_numpy(feed[i]) for i in range(len(feed))]
        got = [_numpy(batch) for batch in dataset]
        assert got == expected, epoch
        seen.append(got)
    assert seen[0] != seen[1]  # the order follows the epoch


@on_tensorflow
def test_fit_trains_on_the_batches_of_each_epochs_order():
    """Through Keras's own epoch loop: fit recreates the iterator after the
    callback set the epoch, so epoch n trains on epoch n's batches."""
    from storage.feeds import for_fit
    from storage.training_backup import EpochFeed
    from training.classifier import EpochOrder

    seen = []

    class Recorder(keras.Model):
        def train_step(self, data):
            seen.append(np.asarray(data[0]).ravel().tolist())
            return {"batches": keras.ops.convert_to_tensor(float(len(seen)))}

    x = np.arange(10, dtype="float32").reshape(10, 1)
    feed = EpochFeed(x, x, batch_size=4, seed=3)
    inputs = keras.Input((1,))
    model = Recorder(inputs, keras.layers.Dense(1)(inputs))
    model.compile(run_eagerly=True)
    data = for_fit(feed)
    assert not isinstance(data, keras.utils.PyDataset)
    model.fit(data, epochs=3, shuffle=False, verbose=0, callbacks=[EpochOrder(feed)])
    expected = []
    for epoch in range(3):
        feed.set_epoch(epoch)
        expected += [feed[i][0].ravel().tolist() for i in range(len(feed))]
    assert seen == expected


def test_the_switch_and_other_backends_feed_the_pydataset(monkeypatch):
    from runtime.acceleration import ENV
    from storage.feeds import for_fit

    feed = _feeds()["autoencoder"]
    monkeypatch.setenv(ENV, "0")
    assert for_fit(feed) is feed
    monkeypatch.delenv(ENV)
    expect_pydataset = keras.backend.backend() != "tensorflow"
    assert (for_fit(feed) is feed) == expect_pydataset
