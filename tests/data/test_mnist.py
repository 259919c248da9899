"""Finding, downloading (from fake local mirrors only) and loading the MNIST files."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from crevnet.data import MNIST_FILES, download_file, ensure_mnist, load_mnist, resolve_data_dir
from crevnet.data.mnist import find_mnist_file
from crevnet.errors import ChecksumError, DataError

ALL = [f for split in MNIST_FILES.values() for f in (split.images, split.labels)]
SMALL = MNIST_FILES["test"].labels  # 4.5 kB: the file the download tests fetch


def _link_all_but(shared: Path, folder: Path, skip: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for spec in ALL:
        if spec.name != skip:
            (folder / spec.name).symlink_to(shared / "mnist" / spec.name)


@pytest.mark.parametrize("sub", ["", "mnist", "MNIST/raw"])
def test_files_are_found_in_each_layout(shared_data: Path, tmp_path: Path, sub: str) -> None:
    _link_all_but(shared_data, tmp_path / sub)
    paths = ensure_mnist(tmp_path, download=False)
    assert {p.parent for p in paths.values()} == {tmp_path / sub}
    labels = load_mnist("test", tmp_path, download=False).labels
    assert labels[:3].tolist() == [7, 2, 1]


def test_uncompressed_files_are_accepted(shared_data: Path, tmp_path: Path) -> None:
    import gzip

    _link_all_but(shared_data, tmp_path / "mnist", skip=SMALL.name)
    raw = tmp_path / "mnist" / SMALL.raw_name
    raw.write_bytes(gzip.decompress((shared_data / "mnist" / SMALL.name).read_bytes()))
    assert find_mnist_file(tmp_path, SMALL) == raw
    assert len(load_mnist("test", tmp_path, download=False).labels) == 10000


def test_missing_offline_says_where_to_put_the_files(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        ensure_mnist(tmp_path, download=False)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and "downloading is disabled" in message
    assert str(tmp_path / "mnist") in message and "CREVNET_DATA_DIR" in message


def test_download_from_a_local_mirror(shared_data: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(shared_data / "mnist" / SMALL.name, mirror / SMALL.name)
    data = tmp_path / "data"
    _link_all_but(shared_data, data / "mnist", skip=SMALL.name)
    # The first mirror does not have the file; the second does.
    mirrors = ((tmp_path / "nowhere").as_uri() + "/", mirror.as_uri() + "/")
    paths = ensure_mnist(data, download=True, mirrors=mirrors)
    target = data / "mnist" / SMALL.name
    assert paths[SMALL.name] == target and not target.is_symlink()
    assert target.read_bytes() == (shared_data / "mnist" / SMALL.name).read_bytes()
    assert sorted(p.name for p in (data / "mnist").iterdir()) == sorted(s.name for s in ALL)


def test_checksum_mismatch_leaves_nothing_behind(shared_data: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / SMALL.name).write_bytes(b"not the labels" * 100)
    data = tmp_path / "data"
    _link_all_but(shared_data, data / "mnist", skip=SMALL.name)
    before = sorted(os.listdir(data / "mnist"))
    with pytest.raises(ChecksumError, match=rf"{SMALL.name}.*expected MD5 {SMALL.md5_gz}"):
        ensure_mnist(data, download=True, mirrors=(mirror.as_uri() + "/",))
    assert sorted(os.listdir(data / "mnist")) == before


class _Interrupted:
    """A response that sends some bytes and then fails, like a dropped connection."""

    def __init__(self, error: BaseException) -> None:
        self.stream = io.BytesIO(b"x" * 5000)
        self.error = error
        self.reads = 0

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        if self.reads > 1:
            raise self.error
        return self.stream.read(100)

    def __enter__(self) -> _Interrupted:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize("error", [ConnectionResetError("reset"), KeyboardInterrupt()])
def test_interrupted_download_leaves_nothing(tmp_path: Path, error: BaseException) -> None:
    dest = tmp_path / "out" / "file.gz"
    expected = DataError if isinstance(error, OSError) else KeyboardInterrupt
    with pytest.raises(expected):
        download_file(
            ["http://mirror.invalid/file.gz"], dest, "0" * 32, opener=lambda url, timeout: _Interrupted(error)
        )
    assert list((tmp_path / "out").iterdir()) == []


def test_loaded_arrays_are_read_only(shared_data: Path) -> None:
    images = load_mnist("test", shared_data, download=False).images
    with pytest.raises(ValueError):
        images[0, 0, 0] = 1
    assert isinstance(images, np.ndarray)


def test_data_dir_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo_root = Path(__file__).resolve().parents[2]
    assert resolve_data_dir() == repo_root / "data"  # running from the checkout
    monkeypatch.setenv("CREVNET_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"  # the argument wins


def test_unknown_split() -> None:
    with pytest.raises(DataError, match="unknown MNIST split 'validation'"):
        load_mnist("validation")


def test_an_unreachable_mirror_is_reported_as_a_network_failure_not_a_write_failure(tmp_path: Path) -> None:
    import urllib.error

    def unreachable(url: str, timeout: float) -> None:
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    dest = tmp_path / "out" / "file.gz"
    with pytest.raises(DataError) as caught:
        download_file(["http://mirror.invalid/file.gz"], dest, "0" * 32, opener=unreachable)
    message = str(caught.value)
    assert (
        "http://mirror.invalid/file.gz: <urlopen error" in message and "Name or service not known" in message
    )
    assert "cannot write" not in message  # the folder is writable; the network is what failed
    assert list((tmp_path / "out").iterdir()) == []
