"""Data loading: IDX parsing and validation, sources, splits."""

import gzip
import os
import struct

import numpy as np
import pytest

from data import datasets as data
from cli.errors import UserError

pytestmark = pytest.mark.backend_independent  # see conftest.py


def write_idx(path, array):
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(
        struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def make_idx_dir(folder, n_train=50, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28)),
        "train_labels": rng.integers(0, 10, n_train),
        "test_images": rng.integers(0, 256, (n_test, 28, 28)),
        "test_labels": rng.integers(0, 10, n_test),
    }
    for key, filename in data.IDX_FILES.items():
        write_idx(os.path.join(folder, filename), arrays[key])
    return arrays


class TestIdx:
    def test_round_trip(self, tmp_path):
        arrays = make_idx_dir(tmp_path)
        x_tr, y_tr, x_te, y_te = data.load_idx_dir(str(tmp_path))
        np.testing.assert_array_equal(x_tr, arrays["train_images"])
        np.testing.assert_array_equal(y_te, arrays["test_labels"])

    def test_bad_magic_is_a_clear_error(self, tmp_path):
        path = tmp_path / "x.gz"
        with gzip.open(path, "wb") as f:
            f.write(b"\x12\x34\x08\x03" + b"\x00" * 20)
        with pytest.raises(UserError, match="magic number"):
            data.read_idx(str(path), 3)

    def test_truncated_body_is_a_clear_error(self, tmp_path):
        path = tmp_path / "x.gz"
        write_idx(path, np.zeros((5, 28, 28)))
        raw = gzip.open(path).read()
        with gzip.open(path, "wb") as f:
            f.write(raw[:-100])
        with pytest.raises(UserError, match="truncated"):
            data.read_idx(str(path), 3)

    def test_broken_gzip_is_a_clear_error(self, tmp_path):
        path = tmp_path / "x.gz"
        path.write_bytes(b"not gzip at all")
        with pytest.raises(UserError, match="corrupt"):
            data.read_idx(str(path), 3)

    def test_wrong_dimensions(self, tmp_path):
        path = tmp_path / "x.gz"
        write_idx(path, np.zeros(7))
        with pytest.raises(UserError, match="1 dimensions, expected 3"):
            data.read_idx(str(path), 3)

    def test_images_and_labels_must_agree(self, tmp_path):
        make_idx_dir(tmp_path)
        write_idx(tmp_path / data.IDX_FILES["train_labels"], np.zeros(49))
        with pytest.raises(UserError, match="disagree"):
            data.load_idx_dir(str(tmp_path))


class TestLoadDataset:
    def test_data_dir_split_and_scaling(self, tmp_path):
        make_idx_dir(tmp_path, n_train=50)
        ds = data.load_dataset("mnist", data_dir=str(tmp_path), val_size=10, seed=3)
        assert ds.x_train.shape == (40, 28, 28, 1) and ds.x_val.shape == (10, 28, 28, 1)
        assert ds.x_test.shape == (20, 28, 28, 1)
        assert ds.x_train.dtype == np.float32
        assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
        again = data.load_dataset("mnist", data_dir=str(tmp_path), val_size=10, seed=3)
        np.testing.assert_array_equal(ds.x_val, again.x_val)
        other = data.load_dataset("mnist", data_dir=str(tmp_path), val_size=10, seed=4)
        assert not np.array_equal(ds.x_val, other.x_val)

    def test_smaller_validation_split_is_part_of_larger(self, tmp_path):
        # Why runs with different --val-size compare on shared images.
        make_idx_dir(tmp_path, n_train=50)
        small = data.load_dataset("mnist", data_dir=str(tmp_path), val_size=5, seed=3)
        large = data.load_dataset("mnist", data_dir=str(tmp_path), val_size=10, seed=3)
        np.testing.assert_array_equal(small.x_val, large.x_val[:5])
        np.testing.assert_array_equal(small.y_val, large.y_val[:5])
        moved = {x.tobytes() for x in large.x_val[5:]}
        assert len(small.x_train) == 45
        assert moved <= {x.tobytes() for x in small.x_train}

    def test_digits_offline(self):
        ds = data.load_dataset("digits", seed=0)
        assert ds.x_train.shape[1:] == (28, 28, 1)
        assert len(ds.x_train) + len(ds.x_val) + len(ds.x_test) == 1797
        assert set(np.unique(ds.y_train)) == set(range(10))
        assert ds.x_train.max() > 0.9  # real strokes, scaled to [0, 1]

    def test_unknown_dataset(self):
        with pytest.raises(UserError, match="unknown dataset 'cifar'.*fashion_mnist"):
            data.load_dataset("cifar")

    def test_missing_data_dir(self, tmp_path):
        with pytest.raises(UserError, match="not a directory"):
            data.load_dataset("mnist", data_dir=str(tmp_path / "nowhere"))

    def test_no_source_names_each_source(self, monkeypatch):
        monkeypatch.setattr(data, "debian_dataset_dir", lambda package: None)

        def offline(name):
            raise ConnectionError("no network")
        monkeypatch.setattr(data, "load_tfds", offline)
        with pytest.raises(UserError) as info:
            data.load_dataset("fashion_mnist")
        message = str(info.value)
        assert "dataset-fashion-mnist" in message and "tensorflow-datasets" in message
        assert "--data-dir" in message and "\n" not in message

    def test_train_limit(self, tmp_path):
        make_idx_dir(tmp_path, n_train=50)
        ds = data.load_dataset("mnist", data_dir=str(tmp_path), val_size=10, train_limit=8)
        assert len(ds.x_train) == 8 and len(ds.x_val) == 2


class TestSizesTheDataCannotGive:
    """A size larger than the data is never cut without a word: the Dataset's notes
    say what was used instead, and the task prints them in one line."""

    def test_sizes_within_the_data_leave_no_note(self, tmp_path):
        make_idx_dir(tmp_path, n_train=50, n_test=20)
        ds = data.load_dataset("mnist", data_dir=str(tmp_path), val_size=10, test_limit=20)
        assert ds.notes == []

    def test_train_and_test_sizes_past_the_data_say_what_was_used(self, tmp_path):
        make_idx_dir(tmp_path, n_train=50, n_test=20)
        ds = data.load_dataset("mnist", data_dir=str(tmp_path), val_size=10,
                               train_limit=1000, test_limit=500)
        assert len(ds.x_train) == 40 and len(ds.x_test) == 20
        assert ds.notes == [
            "--train-size 1000 is more than the 40 training images left after validation: "
            "training on all 40",
            "--test-size 500 is more than the 20 test images: testing on all 20"]

    def test_validation_cut_by_train_size_is_said(self, tmp_path):
        make_idx_dir(tmp_path, n_train=50)
        ds = data.load_dataset("mnist", data_dir=str(tmp_path), val_size=10, train_limit=8)
        assert ds.notes == ["--train-size 8: validating on 2 held-out images (a quarter "
                            "of it) of the 10"]

    def test_digits_validation_cap_is_said(self):
        ds = data.load_dataset("digits", val_size=12000)
        assert len(ds.x_val) == 1437 // 5
        assert ds.notes == ["--val-size 12000 is more than digits can spare: holding out "
                            "287, a fifth of its 1437 training images"]

    def test_load_data_prints_the_notes_in_one_line(self, capsys):
        from data.arguments import DataConfig, load_data

        load_data(DataConfig(dataset="digits", train_size=5000, test_size=4000))
        lines = capsys.readouterr().out.strip().splitlines()
        assert len(lines) == 2 and lines[1].startswith("note: --val-size 12000 is more")
        assert "--train-size 5000" in lines[1] and "--test-size 4000" in lines[1]

    def test_data_dir_with_digits_is_refused(self, tmp_path):
        from data.arguments import DataConfig

        with pytest.raises(ValueError, match="--data-dir reads the IDX files .* digits "
                                             "comes with scikit-learn"):
            DataConfig(dataset="digits", data_dir=str(tmp_path))
        with pytest.raises(UserError, match="drop --data-dir"):
            data.load_dataset("digits", data_dir=str(tmp_path))


def test_mixed_noise_with_the_amount_alone_is_refused():
    from data.noise_spec import parse_noise

    with pytest.raises(ValueError, match="'mixed:0.1' gives the amount but not sigma; "
                                         "give both, mixed:0.1:SIGMA"):
        parse_noise("mixed:0.1")
    assert parse_noise("mixed").name == "mixed:0.1:0.3"  # the documented default
    assert parse_noise("mixed:0.2:0.5").name == "mixed:0.2:0.5"
