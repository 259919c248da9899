"""The MNIST digits: find the four IDX files (or download them), read and validate them.

Files are looked for in ``<data_dir>/``, ``<data_dir>/mnist/`` and torchvision's
``<data_dir>/MNIST/raw/``, gzip-compressed (``*.gz``) or raw. Downloads land in ``<data_dir>/mnist/``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crevnet.data.download import Opener, download_file, md5_of_file
from crevnet.data.idx import read_idx
from crevnet.data.paths import DATA_DIR_ENV, resolve_data_dir
from crevnet.errors import ChecksumError, DataError

__all__ = [
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "MNIST_SUBDIRS",
    "MNISTDigits",
    "MNISTFile",
    "ensure_mnist",
    "find_mnist_file",
    "load_mnist",
    "verify_mnist_file",
]

MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
# Searched in this order below the data directory ("" is the directory itself).
MNIST_SUBDIRS: tuple[str, ...] = ("", "mnist", "MNIST/raw")


@dataclass(frozen=True)
class MNISTFile:
    """One of the four MNIST files and its published checksums."""

    name: str  # file name of the gzip-compressed original, e.g. "train-images-idx3-ubyte.gz"
    md5_gz: str  # MD5 of the .gz file
    md5_raw: str  # MD5 of the gunzipped file
    magic: int  # IDX magic number: 2051 images, 2049 labels
    count: int  # number of images or labels

    @property
    def raw_name(self) -> str:
        """The name of the uncompressed file."""
        return self.name.removesuffix(".gz")


@dataclass(frozen=True)
class _SplitFiles:
    images: MNISTFile
    labels: MNISTFile


MNIST_FILES: dict[str, _SplitFiles] = {
    "train": _SplitFiles(
        images=MNISTFile(
            "train-images-idx3-ubyte.gz",
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "6bbc9ace898e44ae57da46a324031adb",
            2051,
            60000,
        ),
        labels=MNISTFile(
            "train-labels-idx1-ubyte.gz",
            "d53e105ee54ea40749a09fcbcd1e9432",
            "a25bea736e30d166cdddb491f175f624",
            2049,
            60000,
        ),
    ),
    "test": _SplitFiles(
        images=MNISTFile(
            "t10k-images-idx3-ubyte.gz",
            "9fb629c4189551a2d022fa330f9573f3",
            "2646ac647ad5339dbf082846283269ea",
            2051,
            10000,
        ),
        labels=MNISTFile(
            "t10k-labels-idx1-ubyte.gz",
            "ec29112dd5afa0611ce80d1b7f02629c",
            "27ae3e4e09519cfbb04c329615203637",
            2049,
            10000,
        ),
    ),
}


@dataclass(frozen=True)
class MNISTDigits:
    """One MNIST split.

    Shape:
        images: (N, 28, 28) uint8, read-only. labels: (N,) uint8 in 0..9, read-only.
    """

    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) uint8
    split: str  # "train" or "test"

    def __len__(self) -> int:
        return len(self.images)


def _all_files() -> list[MNISTFile]:
    return [f for split in MNIST_FILES.values() for f in (split.images, split.labels)]


def _split_files(split: str) -> _SplitFiles:
    try:
        return MNIST_FILES[split]
    except KeyError:
        raise DataError(f"unknown MNIST split {split!r}; expected one of {sorted(MNIST_FILES)}") from None


def _candidates(data_dir: Path, spec: MNISTFile) -> list[Path]:
    return [data_dir / sub / name for sub in MNIST_SUBDIRS for name in (spec.name, spec.raw_name)]


def find_mnist_file(data_dir: Path, spec: MNISTFile) -> Path | None:
    """Return the first existing copy of ``spec`` below ``data_dir`` (see ``MNIST_SUBDIRS``)."""
    for path in _candidates(data_dir, spec):
        if path.is_file():
            return path
    return None


def _missing_message(data_dir: Path, missing: list[MNISTFile], why: str) -> str:
    names = ", ".join(f.name for f in missing)
    return (
        f"MNIST file(s) {names} not found in {data_dir} (also looked in "
        f"{', '.join(str(data_dir / s) for s in MNIST_SUBDIRS if s)}); {why}. "
        f"Put the four MNIST .gz files in {data_dir / 'mnist'}, or point --data-dir / "
        f"${DATA_DIR_ENV} at a folder that holds them"
    )


def ensure_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    mirrors: tuple[str, ...] = MNIST_MIRRORS,
    opener: Opener | None = None,
) -> dict[str, Path]:
    """Make sure the four MNIST files are present, downloading the missing ones.

    Downloads go to ``<data_dir>/mnist/``, are MD5-verified and written atomically.

    Args:
        data_dir: Data directory (see ``resolve_data_dir``).
        download: If False, a missing file raises instead of being fetched.
        mirrors: Base URLs tried in order.
        opener: ``urlopen``-like callable (tests pass a stub); default ``urllib.request.urlopen``.

    Returns:
        Mapping from each file's ``.gz`` name to the path found or downloaded.

    Raises:
        DataError: A file is missing and downloading is disabled or failed.
        ChecksumError: A download did not match the published MD5.
    """
    root = resolve_data_dir(data_dir)
    found = {spec.name: find_mnist_file(root, spec) for spec in _all_files()}
    missing = [spec for spec in _all_files() if found[spec.name] is None]
    if missing and not download:
        raise DataError(_missing_message(root, missing, "downloading is disabled"))
    extra = {} if opener is None else {"opener": opener}
    for spec in missing:
        urls = [mirror + spec.name for mirror in mirrors]
        try:
            found[spec.name] = download_file(urls, root / "mnist" / spec.name, spec.md5_gz, **extra)
        except ChecksumError:
            raise
        except DataError as err:
            raise DataError(_missing_message(root, [spec], f"the download failed ({err})")) from err
    return {name: path for name, path in found.items() if path is not None}


def verify_mnist_file(path: Path, spec: MNISTFile) -> bool:
    """True if ``path`` has the published MD5 of ``spec`` (gzip or raw form, by its name)."""
    expected = spec.md5_gz if path.name.endswith(".gz") else spec.md5_raw
    return md5_of_file(path) == expected


def _read_split(images_path: Path, labels_path: Path, split: str) -> MNISTDigits:
    files = _split_files(split)
    images = read_idx(images_path, expected_magic=files.images.magic)
    labels = read_idx(labels_path, expected_magic=files.labels.magic)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != files.images.count:
        raise DataError(
            f"{images_path}: shape {images.shape}; expected ({files.images.count}, 28, 28) "
            f"for the MNIST {split} images"
        )
    if labels.shape != (files.labels.count,):
        raise DataError(
            f"{labels_path}: shape {labels.shape}; expected ({files.labels.count},) "
            f"for the MNIST {split} labels"
        )
    if labels.max(initial=0) > 9:
        raise DataError(f"{labels_path}: label {int(labels.max())} found; expected labels 0..9")
    return MNISTDigits(images=images, labels=labels, split=split)


@functools.lru_cache(maxsize=4)
def _load_cached(root: Path, split: str, download: bool) -> MNISTDigits:
    files = _split_files(split)
    paths = ensure_mnist(root, download=download)
    return _read_split(paths[files.images.name], paths[files.labels.name], split)


def load_mnist(
    split: str, data_dir: str | os.PathLike[str] | None = None, download: bool = True
) -> MNISTDigits:
    """Load one MNIST split, validated (magic numbers, counts, 28×28, labels 0..9).

    Results are cached per (data directory, split); the arrays are read-only.

    Args:
        split: "train" (60,000 digits) or "test" (10,000 digits).
        data_dir: Data directory (see ``resolve_data_dir``).
        download: Fetch missing files (MD5-checked); if False a missing file raises DataError.

    Returns:
        The split's images and labels.
    """
    _split_files(split)
    return _load_cached(resolve_data_dir(data_dir), split, download)
