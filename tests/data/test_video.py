"""Clip round trips for every format, contact sheets, and bad inputs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

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
from crevnet.errors import DataError


def _clip(frames: int = 8, channels: int = 1, size: int = 48) -> torch.Tensor:
    # A bright blurred square moving right on a dark background: smooth enough for lossy codecs.
    yy, xx = np.mgrid[0:size, 0:size]
    clip = np.zeros((frames, channels, size, size), dtype=np.float32)
    for t in range(frames):
        cx = 10 + 3 * t
        blob = np.exp(-(((xx - cx) / 6.0) ** 2 + ((yy - 24) / 6.0) ** 2))
        for c in range(channels):
            clip[t, c] = blob * (1.0 - 0.3 * c)
    return torch.from_numpy(np.round(clip * 255) / 255)


def test_npy_layouts_round_trip(tmp_path: Path) -> None:
    clip = _clip(channels=3)
    write_npy(clip, tmp_path / "tchw.npy")
    torch.testing.assert_close(read_clip(tmp_path / "tchw.npy"), clip, rtol=0, atol=0)
    as_uint8 = (clip * 255).round().to(torch.uint8).numpy()
    np.save(tmp_path / "thwc.npy", as_uint8.transpose(0, 2, 3, 1))
    torch.testing.assert_close(read_clip(tmp_path / "thwc.npy"), clip, rtol=0, atol=1e-6)
    np.save(tmp_path / "thw.npy", as_uint8[:, 0])
    grey = read_clip(tmp_path / "thw.npy")
    assert grey.shape == (8, 1, 48, 48)
    torch.testing.assert_close(grey, clip[:, :1], rtol=0, atol=1e-6)


def test_npz_round_trip(tmp_path: Path) -> None:
    clip = _clip()
    np.savez(tmp_path / "one.npz", anything=clip.numpy())
    torch.testing.assert_close(read_clip(tmp_path / "one.npz"), clip, rtol=0, atol=0)
    np.savez(tmp_path / "named.npz", video=clip.numpy(), other=np.zeros(3))
    torch.testing.assert_close(read_clip(tmp_path / "named.npz"), clip, rtol=0, atol=0)
    np.savez(tmp_path / "two.npz", a=clip.numpy(), b=clip.numpy())
    with pytest.raises(DataError, match=r"two\.npz: holds arrays \['a', 'b'\]; expected one array"):
        read_clip(tmp_path / "two.npz")


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".mov"])
def test_video_round_trip_within_codec_tolerance(tmp_path: Path, suffix: str) -> None:
    clip = _clip()
    path = write_video(clip, tmp_path / f"clip{suffix}", fps=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary file left
    back = read_clip(path, grayscale=True)
    assert back.shape == clip.shape
    error = (back - clip).abs()
    assert float(error.mean()) < 0.01 and float(error.max()) < 0.1  # measured: 0.002, 0.04
    # The blob is found where it was drawn in every frame.
    assert (back[:, 0].flatten(1).argmax(1) == clip[:, 0].flatten(1).argmax(1)).float().mean() > 0.5
    colour = read_clip(path)
    assert colour.shape == (8, 3, 48, 48)


def test_mp4_keeps_colour_order(tmp_path: Path) -> None:
    clip = torch.zeros(4, 3, 32, 32)
    clip[:, 0] = 0.9  # red
    write_mp4(clip, tmp_path / "red.mp4")
    back = read_clip(tmp_path / "red.mp4")
    assert float(back[:, 0].mean()) > 0.8 and float(back[:, 2].mean()) < 0.15
    with pytest.raises(DataError, match=r"expects a path ending in \.mp4"):
        write_mp4(clip, tmp_path / "red.avi")


def test_gif_round_trip_is_exact_for_grey(tmp_path: Path) -> None:
    clip = _clip()
    clip[3] = clip[2]  # identical consecutive frames must survive as separate frames
    write_gif(clip, tmp_path / "clip.gif", fps=5)
    back = read_clip(tmp_path / "clip.gif", grayscale=True)
    assert back.shape == clip.shape
    diff = (back - clip).abs()
    assert float(diff.max()) <= 1 / 255 + 1e-6 and int((diff > 1e-6).sum()) <= 1
    from PIL import Image

    with Image.open(tmp_path / "clip.gif") as image:
        assert image.n_frames == 8 and image.info["duration"] == 200


def test_png_folder_round_trip(tmp_path: Path) -> None:
    clip = _clip(channels=3)
    paths = write_frames(clip, tmp_path / "frames")
    assert [p.name for p in paths][:2] == ["frame_0000.png", "frame_0001.png"]
    (tmp_path / "frames" / "notes.txt").write_text("ignored")
    torch.testing.assert_close(read_clip(tmp_path / "frames"), clip, rtol=0, atol=1e-6)
    grey = read_clip(tmp_path / "frames", grayscale=True)
    expected = 0.299 * clip[:, 0] + 0.587 * clip[:, 1] + 0.114 * clip[:, 2]
    torch.testing.assert_close(grey[:, 0], expected, rtol=0, atol=1e-5)


def test_sixteen_bit_pngs_and_resize(tmp_path: Path) -> None:
    folder = tmp_path / "deep"
    folder.mkdir()
    for t in range(3):
        cv2.imwrite(str(folder / f"{t:02d}.png"), np.full((20, 30), 1000 * (t + 1), np.uint16))
    clip = read_clip(folder, size=(10, 15))
    assert clip.shape == (3, 1, 10, 15)
    # 16 bits are rounded to the nearest 8-bit level (crevnet.data.frames.to_rgb): at most half a level off.
    expected = torch.tensor([1, 2, 3]) * 1000 / 65535.0
    torch.testing.assert_close(clip[:, 0, 0, 0], expected, rtol=0, atol=0.5 / 255 + 1e-6)


def test_contact_sheet_layout_and_visible_error(tmp_path: Path) -> None:
    truth = _clip(frames=4)
    prediction = truth.roll(shifts=5, dims=-1)
    error = error_frames(prediction, truth)
    torch.testing.assert_close(error, (prediction - truth).abs())
    rows = [("context", _clip(frames=3)), ("truth", truth), ("prediction", prediction), ("error", error)]
    path = write_contact_sheet(rows, tmp_path / "sheet.png", scale=2, gap=2)
    sheet = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert sheet.shape[0] == 2 + 4 * (96 + 2)
    label_width = sheet.shape[1] - 4 * (96 + 2)
    # Bottom-right frame of the sheet: the last error frame, upscaled 2x by repetition.
    top, left = 2 + 3 * 98, label_width + 3 * 98
    shown = sheet[top : top + 96 : 2, left : left + 96 : 2].astype(np.float32) / 255
    np.testing.assert_allclose(shown, error[3, 0].numpy(), atol=1 / 255 + 1e-6)
    assert shown.max() > 0.3  # the error is visible
    # The context row has 3 frames: its 4th slot stays background (white).
    assert (sheet[2 : 2 + 96, label_width + 3 * 98 :] == 255).all()
    with pytest.raises(DataError, match=r"rows have frame sizes"):
        write_contact_sheet([("a", truth), ("b", truth[:, :, :10])], tmp_path / "bad.png")


def test_not_a_video(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video")
    with pytest.raises(DataError, match=r"notes\.mp4: not a readable video.*expected a video"):
        read_clip(fake)
    fake_gif = tmp_path / "notes.gif"
    fake_gif.write_text("nor a gif")
    with pytest.raises(DataError, match=r"notes\.gif: not a readable GIF"):
        read_clip(fake_gif)
    text = tmp_path / "notes.txt"
    text.write_text("x")
    with pytest.raises(DataError, match=r"notes\.txt: unknown clip type '\.txt'"):
        read_clip(text)


def test_empty_folder(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no frames here")
    with pytest.raises(DataError, match=r"empty: folder holds no images"):
        read_clip(empty)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((2, 5, 6, 7, 8), np.uint8), r"array of shape \(2, 5, 6, 7, 8\); expected \(T, H, W\)"),
        (np.zeros((4, 5, 6, 7), np.uint8), r"array of shape \(4, 5, 6, 7\); expected"),
        (np.full((2, 8, 8), 2.0, np.float32), r"float values in \[2, 2\]; expected values in \[0, 1\]"),
        (np.zeros((2, 8, 8), np.int32), r"dtype int32; expected uint8 or float"),
    ],
)
def test_bad_arrays(tmp_path: Path, array: np.ndarray, message: str) -> None:
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(DataError, match=r"bad\.npy: " + message):
        read_clip(tmp_path / "bad.npy")


def test_missing_path_and_bad_writer_input(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.mp4: no such file"):
        read_clip(tmp_path / "nope.mp4")
    with pytest.raises(DataError, match=r"expected \(T, C, H, W\) with C in \{1, 3\}"):
        write_gif(torch.zeros(2, 2, 8, 8), tmp_path / "x.gif")
    assert not (tmp_path / "x.gif").exists()
