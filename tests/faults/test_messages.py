"""Failure messages name the user's thing and the reason in words; arguments are checked before work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from crevnet.data.video import read_clip, write_mp4
from crevnet.errors import DataError
from crevnet.inference.predict import write_prediction


def test_one_nan_pixel_is_counted_and_located(tmp_path: Path) -> None:
    clip = np.zeros((4, 8, 8), dtype=np.float32)
    clip[2, 5, 7] = np.nan
    np.save(tmp_path / "c.npy", clip)
    with pytest.raises(DataError) as info:
        read_clip(tmp_path / "c.npy")
    message = str(info.value)
    assert "1 non-finite value(s) (NaN or inf) of 256, the first at (T, H, W, C) = (2, 5, 7, 0)" in message
    assert "nan, nan" not in message


def test_the_assumed_array_layout_is_reported(tmp_path: Path) -> None:
    np.save(tmp_path / "t.npy", np.zeros((20, 3, 16, 16), dtype=np.uint8))  # (T, N, H, W) with N = 3
    notes: list[str] = []
    assert read_clip(tmp_path / "t.npy", notes=notes).shape == (20, 3, 16, 16)
    assert notes and "read as (T, C, H, W)" in notes[0] and "(T, N, H, W)" in notes[0]


def test_a_long_contact_sheet_wraps(tmp_path: Path) -> None:
    write_prediction(torch.rand(1000, 1, 8, 8), tmp_path / "x.png")
    with Image.open(tmp_path / "x.png") as image:
        width, height = image.size
    assert width < 600 and height > 50 * 16  # 20 frames per line, 50 lines (the strip was 18,000+ wide)


def test_ffmpeg_says_nothing_before_our_error(tmp_path: Path) -> None:
    write_mp4(torch.rand(8, 1, 16, 16), tmp_path / "good.mp4")
    data = (tmp_path / "good.mp4").read_bytes()
    (tmp_path / "bad.mp4").write_bytes(data[: len(data) // 2])  # no index ("moov atom not found")
    # a fresh process, as a user's: the reader that predict and evaluate use
    code = f"from crevnet.data.video import read_clip\ntry:\n    read_clip({str(tmp_path / 'bad.mp4')!r})\n"
    code += "except Exception as err:\n    print(err)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "not a readable video" in out.stdout
    assert out.stderr == "", out.stderr  # FFmpeg's own "moov atom not found" line is silenced


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [("--fps", "0", "--fps 0"), ("--horizon", "0", "--horizon 0"), ("--context", "0", "--context 0")],
)
def test_predict_checks_every_argument_before_any_work(
    tmp_path: Path, run_cli, one_error_line, flag: str, value: str, expected: str
) -> None:
    # The checkpoint does not exist: an argument error must come first, before anything is loaded.
    np.save(tmp_path / "c.npy", np.zeros((6, 16, 16), dtype=np.uint8))
    argv = ["predict", "--ckpt", str(tmp_path / "missing.ckpt"), "--input", str(tmp_path / "c.npy")]
    argv += ["--horizon", "3", "--out", str(tmp_path / "p.gif"), flag, value]
    code, _, err = run_cli(*argv)
    assert code == 2
    line = one_error_line(err)
    assert expected in line and "missing.ckpt" not in line


def test_evaluate_out_an_existing_file_says_so_before_any_work(
    tmp_path: Path, run_cli, one_error_line
) -> None:
    existing = tmp_path / "report.txt"
    existing.write_text("mine")
    code, _, err = run_cli("evaluate", "--ckpt", str(tmp_path / "missing.ckpt"), "--out", str(existing))
    assert code == 2
    line = one_error_line(err)
    assert f"--out {existing}: a file of that name exists" in line
    assert existing.read_text() == "mine"


def test_evaluate_refuses_a_folder_of_other_files(tmp_path: Path, run_cli, one_error_line) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = run_cli("evaluate", "--ckpt", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path))
    assert code == 2
    assert "not an earlier report" in one_error_line(err)
    assert (tmp_path / "notes.txt").read_text() == "mine"
