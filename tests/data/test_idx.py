"""IDX parsing and validation against the genuine MNIST files and broken copies of them."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from crevnet.data import load_mnist, read_idx
from crevnet.errors import DataError

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_test_split_matches_published_facts(shared_data: Path) -> None:
    digits = load_mnist("test", shared_data, download=False)
    assert digits.images.shape == (10000, 28, 28) and digits.images.dtype == np.uint8
    assert np.bincount(digits.labels, minlength=10).tolist() == TEST_COUNTS
    assert digits.images.mean() == pytest.approx(33.79, abs=0.005)
    assert digits.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_train_split_matches_published_facts(shared_data: Path) -> None:
    digits = load_mnist("train", shared_data, download=False)
    assert digits.images.shape == (60000, 28, 28)
    assert np.bincount(digits.labels, minlength=10).tolist() == TRAIN_COUNTS
    assert digits.images.mean() == pytest.approx(33.32, abs=0.005)


def test_raw_and_gzip_give_the_same_array(shared_data: Path, tmp_path: Path) -> None:
    gz = shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz"
    raw = tmp_path / "t10k-labels-idx1-ubyte"
    raw.write_bytes(gzip.decompress(gz.read_bytes()))
    # The published MD5 of the uncompressed file: the gunzip is the original.
    assert hashlib.md5(raw.read_bytes()).hexdigest() == "27ae3e4e09519cfbb04c329615203637"
    from_raw, from_gz = read_idx(raw, expected_magic=2049), read_idx(gz, expected_magic=2049)
    assert from_raw.shape == (10000,)
    np.testing.assert_array_equal(from_raw, from_gz)
    # Independent parse of the header and payload.
    buf = raw.read_bytes()
    assert int.from_bytes(buf[4:8], "big") == 10000
    np.testing.assert_array_equal(from_raw, np.frombuffer(buf, np.uint8, offset=8))


def test_generic_idx_dtypes(tmp_path: Path) -> None:
    values = (np.arange(6) - 3).astype(">i4").reshape(2, 3)
    path = tmp_path / "ints.idx"
    path.write_bytes(
        bytes([0, 0, 0x0C, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + values.tobytes()
    )
    np.testing.assert_array_equal(read_idx(path), values)


def test_truncated_gzip_names_the_file(shared_data: Path, tmp_path: Path) -> None:
    data = (shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()
    bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz.*truncated gzip"):
        read_idx(bad)


def test_wrong_magic_says_what_was_expected(shared_data: Path, tmp_path: Path) -> None:
    # A labels file where images are expected.
    labels = shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz"
    with pytest.raises(DataError, match=r"t10k-labels.*wrong magic number 2049.*expected 2051"):
        read_idx(labels, expected_magic=2051)
    junk = tmp_path / "junk.idx"
    junk.write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(DataError, match=r"junk\.idx.*not an IDX file"):
        read_idx(junk)


def test_size_mismatch_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "short-idx1-ubyte"
    path.write_bytes(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + bytes(7))
    with pytest.raises(DataError, match=r"short-idx1-ubyte: 7 data bytes.*expected 10"):
        read_idx(path)
