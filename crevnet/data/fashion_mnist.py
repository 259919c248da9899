"""Fashion-MNIST (Xiao, Rasul, Vollgraf 2017): MNIST's layout with clothing images, for Moving Fashion-MNIST.

The four files have the same names, sizes (60,000 + 10,000 images of 28×28) and IDX format as MNIST,
so the MNIST code reads them (:data:`FASHION_MNIST` is its :class:`~crevnet.data.mnist.IDXImageSet`).
Because the names clash with MNIST's, they are never looked for in the data directory itself, only in
``<data_dir>/fashion_mnist/``, ``<data_dir>/fashion-mnist/`` (the folder Debian's
``dataset-fashion-mnist`` package installs under ``/usr/share/datasets/``) and torchvision's
``<data_dir>/FashionMNIST/raw/``. Missing files are downloaded from the official mirror when online,
MD5-checked. The ``.gz`` checksums are the published ones; the raw checksums (of the decompressed
files) were computed from Debian's package, whose ``.gz`` files are recompressed but hold the same
bytes.

:data:`IMAGE_SETS` names the sets the Moving MNIST generator can draw from: ``"mnist"`` and
``"fashion_mnist"`` (OpenSTL's ``mfmnist`` benchmark is the standard generator fed with Fashion-MNIST).
"""

from __future__ import annotations

from typing import Literal

from crevnet.data.mnist import MNIST, IDXImageSet, MNISTFile, SplitFiles
from crevnet.errors import DataError

__all__ = ["FASHION_MNIST", "FASHION_MNIST_MIRRORS", "IMAGE_SETS", "ImageSetName", "image_set"]

FASHION_MNIST_MIRRORS: tuple[str, ...] = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
)

FASHION_MNIST = IDXImageSet(
    name="Fashion-MNIST",
    files={
        "train": SplitFiles(
            images=MNISTFile(
                "train-images-idx3-ubyte.gz",
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                2051,
                60000,
            ),
            labels=MNISTFile(
                "train-labels-idx1-ubyte.gz",
                "25c81989df183df01b3e8a0aad5dffbe",
                "9018921c3c673c538a1fc5bad174d6f9",
                2049,
                60000,
            ),
        ),
        "test": SplitFiles(
            images=MNISTFile(
                "t10k-images-idx3-ubyte.gz",
                "bef4ecab320f06d8554ea6380940ec79",
                "8181f5470baa50b63fa0f6fddb340f0a",
                2051,
                10000,
            ),
            labels=MNISTFile(
                "t10k-labels-idx1-ubyte.gz",
                "bb300cfdad3c16e7a12a480ee83cd310",
                "15d484375f8d13e6eb1aabb0c3f46965",
                2049,
                10000,
            ),
        ),
    },
    mirrors=FASHION_MNIST_MIRRORS,
    subdirs=("fashion_mnist", "fashion-mnist", "FashionMNIST/raw"),
    download_subdir="fashion_mnist",
)
"""Fashion-MNIST's four files (never looked for in the data directory itself: MNIST's names)."""

ImageSetName = Literal["mnist", "fashion_mnist"]
IMAGE_SETS: dict[str, IDXImageSet] = {"mnist": MNIST, "fashion_mnist": FASHION_MNIST}
"""Name (as configs write it) -> the image set."""


def image_set(name: str) -> IDXImageSet:
    """The image set called ``name`` ("mnist" or "fashion_mnist").

    Raises:
        DataError: an unknown name.
    """
    try:
        return IMAGE_SETS[name]
    except KeyError:
        raise DataError(
            f"images {name!r}: unknown image set; expected one of {', '.join(IMAGE_SETS)}"
        ) from None
