"""The MNIST digits: find the four IDX files (or download them), read and validate them.

Files are looked for in ``<data_dir>/``, ``<data_dir>/mnist/`` and torchvision's
``<data_dir>/MNIST/raw/``, gzip-compressed (``*.gz``) or raw. Downloads land in ``<data_dir>/mnist/``.

Every function takes an ``images`` argument, an :class:`IDXImageSet` (default :data:`MNIST`): another
set in the same four-file layout (Fashion-MNIST, :mod:`crevnet.data.fashion_mnist`) has its own file
checksums, mirrors and sub-folders, and goes through the same code.
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
    "MNIST",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "MNIST_SUBDIRS",
    "IDXImageSet",
    "MNISTDigits",
    "MNISTFile",
    "SplitFiles",
    "check_mnist",
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
class SplitFiles:
    """The images and labels files of one split."""

    images: MNISTFile
    labels: MNISTFile


MNIST_FILES: dict[str, SplitFiles] = {
    "train": SplitFiles(
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
    "test": SplitFiles(
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


@dataclass(frozen=True, eq=False)  # hashed by identity: one cache entry per set
class IDXImageSet:
    """A data set stored as MNIST is: train/test images and labels as four IDX files.

    Attributes:
        name: printed in messages ("MNIST", "Fashion-MNIST").
        files: split ("train", "test") -> its images and labels files with their checksums.
        mirrors: base URLs the files are downloaded from, tried in order.
        subdirs: folders below the data directory searched, in order ("" is the directory itself).
        download_subdir: folder below the data directory that downloads go to.
    """

    name: str
    files: dict[str, SplitFiles]
    mirrors: tuple[str, ...]
    subdirs: tuple[str, ...]
    download_subdir: str


MNIST = IDXImageSet("MNIST", MNIST_FILES, MNIST_MIRRORS, MNIST_SUBDIRS, "mnist")
"""The MNIST digits (the default of every function here)."""


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


def _all_files(images: IDXImageSet = MNIST) -> list[MNISTFile]:
    return [f for split in images.files.values() for f in (split.images, split.labels)]


def _split_files(split: str, images: IDXImageSet = MNIST) -> SplitFiles:
    try:
        return images.files[split]
    except KeyError:
        raise DataError(
            f"unknown {images.name} split {split!r}; expected one of {sorted(images.files)}"
        ) from None


def _candidates(data_dir: Path, spec: MNISTFile, images: IDXImageSet = MNIST) -> list[Path]:
    return [data_dir / sub / name for sub in images.subdirs for name in (spec.name, spec.raw_name)]


def find_mnist_file(data_dir: Path, spec: MNISTFile, images: IDXImageSet = MNIST) -> Path | None:
    """Return the first existing copy of ``spec`` below ``data_dir`` (see ``images.subdirs``)."""
    for path in _candidates(data_dir, spec, images):
        if path.is_file():
            return path
    return None


def _missing_message(data_dir: Path, missing: list[MNISTFile], why: str, images: IDXImageSet = MNIST) -> str:
    names = ", ".join(f.name for f in missing)
    return (
        f"{images.name} file(s) {names} not found in {data_dir} (also looked in "
        f"{', '.join(str(data_dir / s) for s in images.subdirs if s)}); {why}. "
        f"Put the four {images.name} .gz files in {data_dir / images.download_subdir}, or point "
        f"--data-dir / ${DATA_DIR_ENV} at a folder that holds them"
    )


def ensure_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    mirrors: tuple[str, ...] | None = None,
    opener: Opener | None = None,
    images: IDXImageSet = MNIST,
) -> dict[str, Path]:
    """Make sure the four MNIST (or ``images``) files are present, downloading the missing ones.

    Downloads go to ``<data_dir>/<images.download_subdir>/`` (``mnist/``), are MD5-verified and
    written atomically.

    Args:
        data_dir: Data directory (see ``resolve_data_dir``).
        download: If False, a missing file raises instead of being fetched.
        mirrors: Base URLs tried in order (default: ``images.mirrors``).
        opener: ``urlopen``-like callable (tests pass a stub); default ``urllib.request.urlopen``.
        images: which data set (default MNIST).

    Returns:
        Mapping from each file's ``.gz`` name to the path found or downloaded.

    Raises:
        DataError: A file is missing and downloading is disabled or failed.
        ChecksumError: A download did not match the published MD5.
    """
    root = resolve_data_dir(data_dir)
    mirrors = images.mirrors if mirrors is None else mirrors
    found = {spec.name: find_mnist_file(root, spec, images) for spec in _all_files(images)}
    missing = [spec for spec in _all_files(images) if found[spec.name] is None]
    if missing and not download:
        raise DataError(_missing_message(root, missing, "downloading is disabled", images))
    extra = {} if opener is None else {"opener": opener}
    for spec in missing:
        urls = [mirror + spec.name for mirror in mirrors]
        dest = root / images.download_subdir / spec.name
        try:
            found[spec.name] = download_file(urls, dest, spec.md5_gz, **extra)
        except ChecksumError:
            raise
        except DataError as err:
            raise DataError(_missing_message(root, [spec], f"the download failed ({err})", images)) from err
    return {name: path for name, path in found.items() if path is not None}


def verify_mnist_file(path: Path, spec: MNISTFile) -> bool:
    """True if ``path`` has the published MD5 of ``spec`` (gzip or raw form, by its name).

    A ``.gz`` whose own MD5 differs (recompressed, e.g. by a Linux distribution's package) passes when
    its decompressed content has the published raw MD5.
    """
    if not path.name.endswith(".gz"):
        return md5_of_file(path) == spec.md5_raw
    if md5_of_file(path) == spec.md5_gz:
        return True
    import gzip
    import hashlib

    digest = hashlib.md5()
    try:
        with gzip.open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except (OSError, EOFError):
        return False
    return digest.hexdigest() == spec.md5_raw


def _read_split(
    images_path: Path, labels_path: Path, split: str, images_set: IDXImageSet = MNIST
) -> MNISTDigits:
    files = _split_files(split, images_set)
    images = read_idx(images_path, expected_magic=files.images.magic)
    labels = read_idx(labels_path, expected_magic=files.labels.magic)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != files.images.count:
        raise DataError(
            f"{images_path}: shape {images.shape}; expected ({files.images.count}, 28, 28) "
            f"for the {images_set.name} {split} images"
        )
    if labels.shape != (files.labels.count,):
        raise DataError(
            f"{labels_path}: shape {labels.shape}; expected ({files.labels.count},) "
            f"for the {images_set.name} {split} labels"
        )
    if labels.max(initial=0) > 9:
        raise DataError(f"{labels_path}: label {int(labels.max())} found; expected labels 0..9")
    return MNISTDigits(images=images, labels=labels, split=split)


@functools.lru_cache(maxsize=4)
def _load_cached(root: Path, split: str, download: bool, images: IDXImageSet) -> MNISTDigits:
    files = _split_files(split, images)
    paths = ensure_mnist(root, download=download, images=images)
    return _read_split(paths[files.images.name], paths[files.labels.name], split, images)


def load_mnist(
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    images: IDXImageSet = MNIST,
) -> MNISTDigits:
    """Load one MNIST (or ``images``) split, validated (magic numbers, counts, 28×28, labels 0..9).

    Results are cached per (data directory, split, data set); the arrays are read-only.

    Args:
        split: "train" (60,000 digits) or "test" (10,000 digits).
        data_dir: Data directory (see ``resolve_data_dir``).
        download: Fetch missing files (MD5-checked); if False a missing file raises DataError.
        images: which data set (default MNIST; e.g. ``crevnet.data.fashion_mnist.FASHION_MNIST``).

    Returns:
        The split's images and labels.
    """
    _split_files(split, images)
    return _load_cached(resolve_data_dir(data_dir), split, download, images)


def check_mnist(
    data_dir: str | os.PathLike[str] | None = None, download: bool = True, images: IDXImageSet = MNIST
) -> list[str]:
    """Fetch the missing MNIST (or ``images``) files, check every file's MD5 and read every split.

    Args:
        data_dir: Data directory (see ``resolve_data_dir``).
        download: Allow downloading missing files.
        images: MNIST or Fashion-MNIST (``crevnet.data.fashion_mnist.image_set``).

    Returns:
        Lines for a terminal: the data directory, each file with its MD5 verdict, each split with its
        label counts.

    Raises:
        ChecksumError: a file does not have the published MD5 (every such file is named).
        DataError: files missing and not downloadable.
    """
    root = resolve_data_dir(data_dir)
    lines = [f"data dir: {root}"]
    paths = ensure_mnist(root, download=download, images=images)
    bad = []
    for split in images.files.values():
        for spec in (split.images, split.labels):
            path = paths[spec.name]
            ok = verify_mnist_file(path, spec)
            lines.append(f"{spec.name}: {path} (md5 {'ok' if ok else 'MISMATCH'})")
            if not ok:
                bad.append(str(path))
    if bad:
        raise ChecksumError(
            f"MD5 mismatch for {', '.join(bad)}; expected the published MNIST files "
            "(delete them to download again)"
        )
    for name in images.files:
        digits = load_mnist(name, root, download=False, images=images)
        counts = np.bincount(digits.labels, minlength=10).tolist()
        lines.append(f"{name}: {len(digits)} digits 28x28, label counts {counts}")
    return lines
