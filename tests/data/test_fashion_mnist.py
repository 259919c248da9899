"""Moving Fashion-MNIST: the MNIST code on another IDX image set, tested with tiny IDX files (no network)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from crevnet.data import fashion_mnist
from crevnet.data.datamodule import MovingMNISTDataModule
from crevnet.data.fashion_mnist import FASHION_MNIST, image_set
from crevnet.data.mnist import MNISTFile, SplitFiles, ensure_mnist, load_mnist, verify_mnist_file
from crevnet.data.testset import load_test_set
from crevnet.errors import ChecksumError, DataError

COUNTS = {"train": 12, "test": 6}
TRAIN_LEVEL, TEST_LEVEL = 90, 170  # every pixel of a tiny train / test image


def _idx(array: np.ndarray) -> bytes:
    kind = 3 if array.ndim == 3 else 1
    header = bytes([0, 0, 8, kind]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _tiny_files(folder: Path) -> dict[str, SplitFiles]:
    """Write tiny train/test IDX files (the real names, gzip) into ``folder``; return their specs."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, count in COUNTS.items():
        real = FASHION_MNIST.files[split]
        level = TRAIN_LEVEL if split == "train" else TEST_LEVEL
        contents = {
            real.images.name: _idx(np.full((count, 28, 28), level, np.uint8)),
            real.labels.name: _idx(np.arange(count, dtype=np.uint8) % 10),
        }
        specs = []
        for spec in (real.images, real.labels):
            raw = contents[spec.name]
            packed = gzip.compress(raw, mtime=0)
            (folder / spec.name).write_bytes(packed)
            md5 = (hashlib.md5(packed).hexdigest(), hashlib.md5(raw).hexdigest())
            specs.append(MNISTFile(spec.name, md5[0], md5[1], spec.magic, count))
        files[split] = SplitFiles(*specs)
    return files


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Tiny Fashion-MNIST files in ``tmp_path/fashion-mnist`` (Debian's folder), registered as the set."""
    files = _tiny_files(tmp_path / "fashion-mnist")
    images = dataclasses.replace(FASHION_MNIST, files=files)
    monkeypatch.setitem(fashion_mnist.IMAGE_SETS, "fashion_mnist", images)
    return tmp_path, images


def test_fashion_files_are_never_taken_from_the_data_dir_itself(tmp_path: Path) -> None:
    _tiny_files(tmp_path)  # MNIST's file names, in the data directory: MNIST's place
    with pytest.raises(DataError) as info:
        ensure_mnist(tmp_path, download=False, images=FASHION_MNIST)
    message = str(info.value)
    assert message.startswith("Fashion-MNIST file(s) train-images-idx3-ubyte.gz")
    assert str(tmp_path / "fashion-mnist") in message and str(tmp_path / "fashion_mnist") in message


def test_tiny_set_loads_through_the_mnist_code(tiny) -> None:
    root, images = tiny
    digits = load_mnist("test", root, download=False, images=images)
    assert digits.images.shape == (6, 28, 28) and int(digits.images.max()) == TEST_LEVEL
    path = root / "fashion-mnist" / "t10k-images-idx3-ubyte.gz"
    spec = images.files["test"].images
    assert verify_mnist_file(path, spec)
    recompressed = root / "recompressed" / spec.name  # as a distribution repacks it: other gzip bytes
    recompressed.parent.mkdir()
    recompressed.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), compresslevel=1, mtime=1))
    assert hashlib.md5(recompressed.read_bytes()).hexdigest() != spec.md5_gz
    assert verify_mnist_file(recompressed, spec)  # the content's MD5 is what counts
    assert not verify_mnist_file(root / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz", spec)


def test_download_from_a_local_mirror_checks_the_md5(tiny, tmp_path: Path) -> None:
    root, images = tiny
    mirror = (root / "fashion-mnist").as_uri() + "/"
    data = tmp_path / "fresh"
    paths = ensure_mnist(data, download=True, mirrors=(mirror,), images=images)
    assert {p.parent for p in paths.values()} == {data / "fashion_mnist"}
    wrong = dataclasses.replace(
        images,
        files={
            **images.files,
            "test": dataclasses.replace(
                images.files["test"], labels=dataclasses.replace(images.files["test"].labels, md5_gz="0" * 32)
            ),
        },
    )
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        ensure_mnist(tmp_path / "other", download=True, mirrors=(mirror,), images=wrong)


def test_moving_fashion_mnist_datamodule_and_surrogate(tiny) -> None:
    root, _ = tiny
    dm = MovingMNISTDataModule(
        str(root),
        batch_size=2,
        num_frames=4,
        train_size=4,
        val_size=2,
        test_size=3,
        val_digits=4,
        images="fashion_mnist",
        download=False,
    )
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (2, 4, 1, 64, 64)
    assert round(float(batch.max()) * 255) == TRAIN_LEVEL  # drawn from the (tiny) Fashion-MNIST train images
    assert round(float(dm.test_data.videos.max())) == TEST_LEVEL  # the test set from its test images
    assert dm.test_data.name == "surrogate test set of Moving Fashion-MNIST (seed 1234, N=3)"
    with pytest.raises(DataError, match="no standard file for images 'fashion_mnist'"):
        load_test_set("standard", root, images="fashion_mnist")
    with pytest.raises(DataError, match="unknown image set; expected one of mnist, fashion_mnist"):
        image_set("kmnist")


def test_fit_then_evaluate_use_the_fashion_images(tiny, tmp_path: Path, monkeypatch, run_cli) -> None:
    root, _ = tiny
    monkeypatch.chdir(tmp_path)
    smoke = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"
    fit = ["fit", "--config", str(smoke), "--trainer.max_steps", "2", "--data.images", "fashion_mnist"]
    fit += ["--data.data_dir", str(root), "--data.val_digits", "4", "--data.download", "false"]
    assert run_cli(*fit)[0] == 0
    ckpt = tmp_path / "runs" / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    code, out, err = run_cli(
        "evaluate", "--ckpt", str(ckpt), "--data-dir", str(root), "--limit", "3", "--no-progress"
    )
    assert code == 0, err
    assert out.startswith("surrogate test set of Moving Fashion-MNIST (seed 1234, N=3)")
