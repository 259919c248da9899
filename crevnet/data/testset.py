"""Moving MNIST test sets: the standard file, a seeded surrogate, or any ``.npy`` in the same layout.

The standard test set (Srivastava et al. 2015) is ``mnist_test_seq.npy``: (T, N, H, W) =
(20, 10000, 64, 64) uint8, frames 0-9 in and 10-19 to predict. Where it is absent a **surrogate**
stands in: ``generate_surrogate`` draws sequences with ``StandardGenerator`` from the MNIST *test*
digits, sequence ``i`` seeded by ``sequence_rng(seed, i)``, so the first N sequences of a larger
surrogate equal a smaller one and the same seed always gives the same bytes. Reports print
``TestSet.name`` so that a surrogate number is never mistaken for a standard one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from crevnet.data.download import md5_of_file
from crevnet.data.fashion_mnist import image_set
from crevnet.data.generator import StandardGenerator, sequence_rng
from crevnet.data.mnist import load_mnist
from crevnet.data.paths import DATA_DIR_ENV, resolve_data_dir
from crevnet.errors import ChecksumError, DataError

__all__ = [
    "STANDARD_BASELINES",
    "STANDARD_FILE",
    "STANDARD_MD5",
    "STANDARD_SHAPE",
    "STANDARD_SUBDIRS",
    "SURROGATE_NUM",
    "SURROGATE_SEED",
    "SurrogateFile",
    "TestSet",
    "find_standard_file",
    "generate_surrogate",
    "load_sequence_file",
    "load_test_set",
    "write_surrogate",
]

STANDARD_FILE = "mnist_test_seq.npy"
STANDARD_BASELINES: tuple[str, ...] = ("zeros", "copy_last")
"""Keys of the baselines (:data:`crevnet.evaluation.baselines.BASELINES`) a test set is scored against
unless it names others: black frames and the last frame copied."""
STANDARD_SHAPE = (20, 10000, 64, 64)  # (T, N, H, W)
STANDARD_MD5 = "be083ec986bfe91a449d63653c411eb2"
# Looked for below the data directory in this order ("" is the directory itself).
STANDARD_SUBDIRS: tuple[str, ...] = ("", "moving_mnist", "MovingMNIST")
SURROGATE_SEED = 1234  # default seed of the surrogate test set
SURROGATE_NUM = 10000  # default number of surrogate sequences, as in the standard file
SURROGATE_FRAMES = 20


def find_standard_file(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the path of ``mnist_test_seq.npy`` below the data directory, or None."""
    root = resolve_data_dir(data_dir)
    for sub in STANDARD_SUBDIRS:
        path = root / sub / STANDARD_FILE
        if path.is_file():
            return path
    return None


def load_sequence_file(
    path: str | os.PathLike[str],
    expected_shape: tuple[int, int, int, int] | None = None,
    md5: str | None = None,
) -> np.ndarray:
    """Open a Moving MNIST file in the standard layout, memory-mapped and validated.

    Args:
        path: A ``.npy`` file holding a (T, N, H, W) uint8 array.
        expected_shape: If given, the exact shape required (``STANDARD_SHAPE`` for the standard file).
        md5: If given, the file's MD5 is computed (slow for 800 MB) and must equal it.

    Returns:
        A copy-on-write memory map (pages are read on demand; the file is never modified).

    Shape:
        (T, N, H, W) uint8.

    Raises:
        DataError: Missing file, not an .npy, wrong number of dimensions, dtype or shape.
        ChecksumError: ``md5`` given and different.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found (expected a (T, N, H, W) uint8 .npy)")
    try:
        array = np.load(path, mmap_mode="c", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path}: not a readable .npy file ({err}); expected (T, N, H, W) uint8") from err
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path}: expected a single array in .npy format, not an archive")
    want = "(T, N, H, W)" if expected_shape is None else str(expected_shape)
    if array.ndim != 4 or min(array.shape) == 0:
        raise DataError(f"{path}: array of shape {array.shape}; expected {want} uint8, non-empty")
    if array.dtype != np.uint8:
        raise DataError(f"{path}: dtype {array.dtype}; expected uint8 {want}")
    if expected_shape is not None and array.shape != tuple(expected_shape):
        raise DataError(f"{path}: shape {array.shape}; expected {want} = (T, N, H, W) uint8")
    if md5 is not None:
        got = md5_of_file(path)
        if got != md5:
            raise ChecksumError(f"{path}: MD5 {got}; expected {md5}")
    return array


def generate_surrogate(
    num: int = SURROGATE_NUM,
    seed: int = SURROGATE_SEED,
    data_dir: str | os.PathLike[str] | None = None,
    num_frames: int = SURROGATE_FRAMES,
    download: bool = True,
    images: str = "mnist",
) -> np.ndarray:
    """Generate the surrogate test set from the MNIST test digits with ``StandardGenerator``.

    Args:
        num: Number of sequences N.
        seed: Seed; sequence ``i`` uses ``sequence_rng(seed, i)``.
        data_dir: Where the MNIST files are (see ``resolve_data_dir``).
        num_frames: Frames per sequence T.
        download: Allow downloading missing MNIST files.
        images: "mnist", or "fashion_mnist" for Moving Fashion-MNIST (its test images).

    Returns:
        The sequences in the standard layout.

    Shape:
        (T, N, 64, 64) uint8.
    """
    if num < 1:
        raise DataError(f"surrogate: --num must be >= 1, got {num}")
    if seed < 0:
        raise DataError(f"surrogate: --seed must be >= 0, got {seed}")
    digits = load_mnist("test", data_dir, download=download, images=image_set(images)).images
    generator = StandardGenerator()
    size = generator.canvas_size
    out = np.empty((num_frames, num, size, size), dtype=np.uint8)
    for i in range(num):
        out[:, i] = generator.generate(digits, sequence_rng(seed, i), num_frames)
    return out


class _VideoDataset(Dataset[torch.Tensor]):
    def __init__(self, videos: torch.Tensor) -> None:
        self.videos = videos

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.videos[index].to(torch.float32) / 255.0  # (T, 1, H, W)


@dataclass(frozen=True, eq=False)
class TestSet:
    """A Moving MNIST test set.

    ``videos`` stays uint8 (the standard set is 800 MB as uint8, 3.3 GB as float); use
    ``float_batches`` or ``dataset()`` to get float32 in [0, 1]. For the standard file it is a
    view on a memory map, so only the sequences used are read from disk.

    Shape:
        videos: (N, T, 1, H, W) uint8.
    """

    __test__ = False  # not a pytest test class

    videos: torch.Tensor  # (N, T, 1, H, W) uint8
    name: str  # printed by every report, e.g. "surrogate test set (seed 1234, N=500)"
    is_surrogate: bool  # True when generated rather than the standard file
    path: Path | None = None  # the file read, if any
    # keys of crevnet.evaluation.baselines.BASELINES this set is scored against (a folder of clips:
    # crevnet.data.video_folder.FOLDER_BASELINES)
    baselines: tuple[str, ...] = STANDARD_BASELINES

    def __len__(self) -> int:
        return len(self.videos)

    def float_batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        """Yield consecutive batches as float32 in [0, 1]. Shape: (B, T, 1, H, W)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for start in range(0, len(self.videos), batch_size):
            yield self.videos[start : start + batch_size].to(torch.float32) / 255.0

    def dataset(self) -> Dataset[torch.Tensor]:
        """A Dataset of float32 videos in [0, 1]. Shape: item (T, 1, H, W)."""
        return _VideoDataset(self.videos)


def _as_test_videos(array: np.ndarray, num: int | None, source: str) -> torch.Tensor:
    total = array.shape[1]
    if num is not None and not 1 <= num <= total:
        raise DataError(f"{source}: asked for {num} sequences; it holds {total} (expected 1..{total})")
    part = array[:, : total if num is None else num]
    return torch.from_numpy(part).permute(1, 0, 2, 3).unsqueeze(2)  # (N, T, 1, H, W)


def load_test_set(
    spec: str,
    data_dir: str | os.PathLike[str] | None = None,
    num: int | None = None,
    seed: int = SURROGATE_SEED,
    verify_md5: bool = False,
    download: bool = True,
    images: str = "mnist",
) -> TestSet:
    """Load the test set named by ``spec``.

    Args:
        spec: "standard" (``mnist_test_seq.npy`` in the data directory, shape
            (20, 10000, 64, 64)), "surrogate" (generated in memory, byte-identical to
            ``crevnet data surrogate`` with the same seed), or a path to a (T, N, H, W) uint8 ``.npy``.
        data_dir: Data directory (see ``resolve_data_dir``).
        num: Use only the first ``num`` sequences (default: all; the surrogate default is 10000).
        seed: Surrogate seed (ignored otherwise).
        verify_md5: Check the standard file's MD5 (reads 800 MB).
        download: Allow downloading MNIST for the surrogate.
        images: "mnist", or "fashion_mnist": the surrogate is Moving Fashion-MNIST (there is no
            standard Moving Fashion-MNIST file).

    Returns:
        The test set; ``name`` says which one it is.

    Raises:
        DataError: The standard file is absent (the message says where to put it) or invalid.
    """
    if spec == "standard" and images != "mnist":
        raise DataError(
            f"test set 'standard': there is no standard file for images {images!r}; use 'surrogate' "
            "(seeded, generated from its test images) or a (T, N, H, W) uint8 .npy"
        )
    if spec == "standard":
        path = find_standard_file(data_dir)
        if path is None:
            root = resolve_data_dir(data_dir)
            raise DataError(
                f"the standard Moving MNIST test set {STANDARD_FILE} was not found in {root} (or its "
                f"subfolders {', '.join(s for s in STANDARD_SUBDIRS if s)}); download it "
                f"(819,200,128 bytes, MD5 {STANDARD_MD5}) into {root}/, point ${DATA_DIR_ENV} "
                "or --data-dir at its folder, or use the 'surrogate' test set"
            )
        array = load_sequence_file(path, STANDARD_SHAPE, STANDARD_MD5 if verify_md5 else None)
        videos = _as_test_videos(array, num, str(path))
        return TestSet(videos, f"standard ({STANDARD_FILE}, N={len(videos)})", False, path)
    if spec == "surrogate":
        array = generate_surrogate(
            SURROGATE_NUM if num is None else num, seed, data_dir, download=download, images=images
        )
        videos = _as_test_videos(array, None, "surrogate")
        which = "" if images == "mnist" else f" of Moving {image_set(images).name}"
        return TestSet(videos, f"surrogate test set{which} (seed {seed}, N={len(videos)})", True)
    path = Path(spec)
    if path.suffix != ".npy":
        raise DataError(
            f"test set {spec!r}: expected 'standard', 'surrogate' or a path to a (T, N, H, W) uint8 .npy"
        )
    array = load_sequence_file(path)
    videos = _as_test_videos(array, num, str(path))
    return TestSet(videos, f"file {path} (N={len(videos)})", False, path.resolve())


class SurrogateFile(NamedTuple):
    """A surrogate test set written by :func:`write_surrogate`."""

    path: Path
    shape: tuple[int, ...]  # (T, N, H, W), uint8
    md5: str


def write_surrogate(
    path: str | os.PathLike[str],
    num: int = SURROGATE_NUM,
    seed: int = SURROGATE_SEED,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    images: str = "mnist",
) -> SurrogateFile:
    """Write :func:`generate_surrogate`'s test set to a ``.npy`` file, atomically.

    Args:
        path: the output, ending in ``.npy``.
        num, seed, data_dir, download, images: as for :func:`generate_surrogate`.

    Returns:
        The file, its array's shape and its MD5.

    Raises:
        DataError: ``path`` does not end in ``.npy``, or see :func:`generate_surrogate`.
        OutputError: the file could not be written.
    """
    from crevnet.io.atomic import atomic_write

    path = Path(path)
    if path.suffix != ".npy":
        raise DataError(f"--out {path}: expected a path ending in .npy")
    videos = generate_surrogate(num, seed, data_dir, download=download, images=images)
    with atomic_write(path) as handle:
        np.save(handle, videos, allow_pickle=False)
    return SurrogateFile(path, tuple(videos.shape), md5_of_file(path))
