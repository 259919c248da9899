"""Test sets: files in the standard layout, the standard file, the surrogate and its command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from crevnet.cli import main as cli_main
from crevnet.commands.data import main as data_main
from crevnet.data import (
    STANDARD_SHAPE,
    MovingMNIST,
    load_mnist,
    load_sequence_file,
    load_test_set,
)
from crevnet.errors import ChecksumError, DataError


def _small_file(path: Path, shape: tuple[int, ...] = (20, 7, 64, 64), dtype=np.uint8) -> np.ndarray:
    array = np.random.default_rng(0).integers(0, 256, size=shape).astype(dtype)
    np.save(path, array)
    return array


def test_npy_in_standard_layout(tmp_path: Path) -> None:
    array = _small_file(tmp_path / "seq.npy")
    test_set = load_test_set(str(tmp_path / "seq.npy"))
    assert test_set.videos.shape == (7, 20, 1, 64, 64) and test_set.videos.dtype == torch.uint8
    assert not test_set.is_surrogate and "seq.npy" in test_set.name and "N=7" in test_set.name
    # Sequence n, frame t is array[t, n].
    np.testing.assert_array_equal(test_set.videos[3, 5, 0].numpy(), array[5, 3])
    batches = list(test_set.float_batches(3))
    assert [len(b) for b in batches] == [3, 3, 1] and batches[0].dtype == torch.float32
    whole = torch.cat(batches).numpy()
    np.testing.assert_allclose(whole[:, :, 0], array.transpose(1, 0, 2, 3) / 255.0, atol=1e-7)
    item = test_set.dataset()[6]
    torch.testing.assert_close(item, batches[-1][0])
    assert len(load_test_set(str(tmp_path / "seq.npy"), num=2)) == 2
    with pytest.raises(DataError, match=r"asked for 8 sequences; it holds 7"):
        load_test_set(str(tmp_path / "seq.npy"), num=8)


@pytest.mark.parametrize(
    ("shape", "dtype", "message"),
    [
        ((20, 7, 64), np.uint8, r"shape \(20, 7, 64\); expected \(T, N, H, W\)"),
        ((20, 7, 64, 64), np.float32, r"dtype float32; expected uint8"),
    ],
)
def test_npy_of_wrong_shape_or_dtype(tmp_path: Path, shape, dtype, message: str) -> None:
    _small_file(tmp_path / "bad.npy", shape, dtype)
    with pytest.raises(DataError, match=r"bad\.npy.*" + message):
        load_test_set(str(tmp_path / "bad.npy"))


def test_not_an_npy_file(tmp_path: Path) -> None:
    (tmp_path / "text.npy").write_text("hello")
    with pytest.raises(DataError, match=r"text\.npy: not a readable \.npy"):
        load_test_set(str(tmp_path / "text.npy"))
    with pytest.raises(DataError, match="expected 'standard', 'surrogate' or a path"):
        load_test_set("standrd")


def test_md5_checked_only_on_request(tmp_path: Path) -> None:
    _small_file(tmp_path / "seq.npy")
    assert load_sequence_file(tmp_path / "seq.npy").shape == (20, 7, 64, 64)
    with pytest.raises(ChecksumError, match=r"seq\.npy: MD5 [0-9a-f]{32}; expected 0{32}"):
        load_sequence_file(tmp_path / "seq.npy", md5="0" * 32)


def test_standard_file_missing_says_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_test_set("standard", data_dir=tmp_path)
    assert "mnist_test_seq.npy" in str(info.value) and str(tmp_path) in str(info.value)


def test_standard_file_must_have_the_standard_shape(tmp_path: Path) -> None:
    _small_file(tmp_path / "mnist_test_seq.npy")
    with pytest.raises(DataError, match=r"shape \(20, 7, 64, 64\); expected \(20, 10000, 64, 64\)"):
        load_test_set("standard", data_dir=tmp_path)


def test_standard_file_is_memory_mapped(tmp_path: Path) -> None:
    # A sparse 800 MB file of the right layout: only the pages read are touched.
    folder = tmp_path / "moving_mnist"
    folder.mkdir()
    array = np.lib.format.open_memmap(folder / "mnist_test_seq.npy", "w+", np.uint8, STANDARD_SHAPE)
    array[:, 1] = 9
    array.flush()
    del array
    test_set = load_test_set("standard", data_dir=tmp_path, num=3)
    assert test_set.name == "standard (mnist_test_seq.npy, N=3)" and not test_set.is_surrogate
    assert test_set.videos.shape == (3, 20, 1, 64, 64)
    assert int(test_set.videos[1].min()) == 9 and int(test_set.videos[0].max()) == 0


def test_surrogate_command_is_seeded(shared_data: Path, tmp_path: Path) -> None:
    def write(name: str, seed: int) -> bytes:
        out = tmp_path / name
        argv = ["surrogate", "--out", str(out), "--num", "6", "--seed", str(seed)]
        assert data_main([*argv, "--data-dir", str(shared_data)]) == 0
        return out.read_bytes()

    first, again, other = write("a.npy", 7), write("b.npy", 7), write("c.npy", 8)
    assert first == again and first != other
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "b.npy", "c.npy"]  # no temps
    array = np.load(tmp_path / "a.npy")
    assert array.shape == (20, 6, 64, 64) and array.dtype == np.uint8
    # The in-memory surrogate has the same bytes, and is the test-digit MovingMNIST of that seed.
    test_set = load_test_set("surrogate", data_dir=shared_data, num=6, seed=7)
    assert test_set.is_surrogate and test_set.name == "surrogate test set (seed 7, N=6)"
    np.testing.assert_array_equal(test_set.videos[:, :, 0].numpy(), array.transpose(1, 0, 2, 3))
    test_digits = load_mnist("test", shared_data, download=False).images
    np.testing.assert_array_equal(MovingMNIST(test_digits, 6, seed=7).sequence(4), array[:, 4])
    # A smaller surrogate is a prefix of a larger one.
    smaller = load_test_set("surrogate", data_dir=shared_data, num=2, seed=7)
    torch.testing.assert_close(smaller.videos, test_set.videos[:2], rtol=0, atol=0)


def test_mnist_command_reports_md5(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert data_main(["mnist", "--data-dir", str(shared_data), "--no-download"]) == 0
    out = capsys.readouterr().out
    assert out.count("(md5 ok)") == 4 and "test: 10000 digits" in out


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["data", "mnist", "--data-dir", str(tmp_path), "--no-download"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("crevnet: error: MNIST file(s)") and "\n" not in err
    assert cli_main(["data", "standard", "--data-dir", str(tmp_path)]) == 2
    assert "mnist_test_seq.npy" in capsys.readouterr().err
    assert cli_main(["data", "surrogate", "--out", str(tmp_path / "x.txt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"crevnet: error: --out {tmp_path / 'x.txt'}: expected a path ending in .npy", err
    assert cli_main(["data", "surrogate", "--out", str(tmp_path / "x.npy"), "--num", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "data surrogate: argument --num: expected a positive integer, got 0" in err and "\n" not in err
    assert not (tmp_path / "x.npy").exists()
