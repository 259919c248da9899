"""Moving MNIST data and clip I/O.

``import crevnet.data`` loads numpy and torch only. ``MovingMNISTDataModule`` (lightning) and the
clip readers/writers (OpenCV) are imported on first use of those names.

``VideoFolderDataModule`` (lightning, OpenCV) trains on a folder of your own clips.

Main entry points: ``load_mnist`` (validated MNIST digits, downloaded if missing),
``StandardGenerator`` / ``CrevNetGenerator`` (Moving MNIST generators), ``MovingMNIST`` (torch
Dataset), ``load_test_set`` ("standard", "surrogate" or a ``.npy``), ``MovingMNISTDataModule``,
``read_clip`` / ``write_gif`` / ``write_mp4`` / ``write_contact_sheet``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from crevnet.data.dataset import MovingMNIST
from crevnet.data.download import download_file, md5_of_file
from crevnet.data.generator import (
    CrevNetGenerator,
    Motion,
    MovingMNISTGenerator,
    StandardGenerator,
    sequence_rng,
)
from crevnet.data.idx import read_idx, read_idx_bytes
from crevnet.data.mnist import (
    MNIST_FILES,
    MNIST_MIRRORS,
    MNISTDigits,
    MNISTFile,
    ensure_mnist,
    load_mnist,
    verify_mnist_file,
)
from crevnet.data.paths import DATA_DIR_ENV, resolve_data_dir
from crevnet.data.sampler import EpochSampler
from crevnet.data.testset import (
    STANDARD_FILE,
    STANDARD_MD5,
    STANDARD_SHAPE,
    SURROGATE_NUM,
    SURROGATE_SEED,
    TestSet,
    find_standard_file,
    generate_surrogate,
    load_sequence_file,
    load_test_set,
)
from crevnet.io.atomic import atomic_path, atomic_write, atomic_write_bytes

if TYPE_CHECKING:
    from crevnet.data.datamodule import MovingMNISTDataModule
    from crevnet.data.folder_datamodule import VideoFolderDataModule
    from crevnet.data.video import (
        error_frames,
        read_clip,
        write_contact_sheet,
        write_frames,
        write_gif,
        write_mp4,
        write_npy,
        write_video,
    )

# Names served lazily so that importing crevnet.data does not import lightning or cv2.
_LAZY = {
    "MovingMNISTDataModule": "crevnet.data.datamodule",
    "VideoFolderDataModule": "crevnet.data.folder_datamodule",
    "error_frames": "crevnet.data.video",
    "read_clip": "crevnet.data.video",
    "write_contact_sheet": "crevnet.data.video",
    "write_frames": "crevnet.data.video",
    "write_gif": "crevnet.data.video",
    "write_mp4": "crevnet.data.video",
    "write_npy": "crevnet.data.video",
    "write_video": "crevnet.data.video",
}

__all__ = [
    "DATA_DIR_ENV",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "STANDARD_FILE",
    "STANDARD_MD5",
    "STANDARD_SHAPE",
    "SURROGATE_NUM",
    "SURROGATE_SEED",
    "CrevNetGenerator",
    "EpochSampler",
    "MNISTDigits",
    "MNISTFile",
    "Motion",
    "MovingMNIST",
    "MovingMNISTDataModule",
    "MovingMNISTGenerator",
    "StandardGenerator",
    "TestSet",
    "VideoFolderDataModule",
    "atomic_path",
    "atomic_write",
    "atomic_write_bytes",
    "download_file",
    "ensure_mnist",
    "error_frames",
    "find_standard_file",
    "generate_surrogate",
    "load_mnist",
    "load_sequence_file",
    "load_test_set",
    "md5_of_file",
    "read_clip",
    "read_idx",
    "read_idx_bytes",
    "resolve_data_dir",
    "sequence_rng",
    "verify_mnist_file",
    "write_contact_sheet",
    "write_frames",
    "write_gif",
    "write_mp4",
    "write_npy",
    "write_video",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'crevnet.data' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
