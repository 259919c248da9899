"""The one frame-I/O layer: decoding every image kind and video suffix, listing, counting, verified writes."""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from crevnet.data.frames import (
    IMAGE_SUFFIXES,
    VIDEO_CODECS,
    VIDEO_SUFFIXES,
    VideoWriter,
    count_frames,
    iter_video,
    list_images,
    read_image,
    read_video,
    to_rgb,
)
from crevnet.errors import DataError, OutputError


def _rgb(height: int = 12, width: int = 16) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------------------------
# Images: grey, BGR, BGRA, 16-bit.


def test_grey_image_keeps_one_channel(tmp_path: Path) -> None:
    grey = _rgb()[..., 0]
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    frame = read_image(tmp_path / "g.png")
    assert frame.shape == (12, 16, 1) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame[..., 0], grey)


def test_bgr_file_comes_back_rgb(tmp_path: Path) -> None:
    rgb = _rgb()
    cv2.imwrite(str(tmp_path / "c.png"), rgb[..., ::-1])  # OpenCV stores BGR
    np.testing.assert_array_equal(read_image(tmp_path / "c.png"), rgb)


def test_bgra_drops_alpha(tmp_path: Path) -> None:
    rgb = _rgb()
    bgra = np.concatenate((rgb[..., ::-1], np.full((12, 16, 1), 7, np.uint8)), axis=2)
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgb)


def test_sixteen_bit_png_rounds_to_the_nearest_level(tmp_path: Path) -> None:
    values = np.arange(0, 65536, 7, dtype=np.uint16)[: 64 * 64].reshape(64, 64)
    values[0, 0], values[0, 1] = 65535, 200  # the top, and 200 / 257 = 0.78: level 1 (>> 8 floors to 0)
    cv2.imwrite(str(tmp_path / "deep.png"), values)
    frame = read_image(tmp_path / "deep.png")[..., 0]
    expected = np.rint(values.astype(np.float64) / 257).astype(np.uint8)  # the nearest of 0..255
    np.testing.assert_array_equal(frame, expected)
    assert frame[0, 0] == 255 and frame[0, 1] == 1
    # and colour 16-bit comes back RGB too
    deep_bgr = np.stack([values, values // 2, values // 4], axis=2)
    cv2.imwrite(str(tmp_path / "deep_c.png"), deep_bgr)
    colour = read_image(tmp_path / "deep_c.png")
    np.testing.assert_array_equal(colour[..., 2], expected)  # B was the first channel


def test_other_dtypes_and_unreadable_images_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"x: image dtype float32; expected 8- or 16-bit"):
        to_rgb(np.zeros((2, 2), np.float32), "x")
    (tmp_path / "bad.png").write_text("not a png")
    with pytest.raises(DataError, match=r"bad\.png: not a readable image"):
        read_image(tmp_path / "bad.png")


def test_list_images_sorted_by_name_and_every_suffix(tmp_path: Path) -> None:
    for i, suffix in enumerate(IMAGE_SUFFIXES):
        (tmp_path / f"{i:02d}{suffix.upper() if i % 2 else suffix}").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a frame")
    (tmp_path / "sub.png").mkdir()  # a folder is not a frame, whatever its name
    files = list_images(tmp_path)
    assert [p.name[:2] for p in files] == [f"{i:02d}" for i in range(len(IMAGE_SUFFIXES))]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"empty: folder holds no images"):
        list_images(empty)


# ----------------------------------------------------------------------------------------------
# Videos: every suffix OpenCV can write here, and GIF.


def _clip(frames: int = 5) -> np.ndarray:
    # (T, 3, H, W) uint8, smooth enough for lossy codecs; frame t has mean level 40 * t + 20.
    clip = np.zeros((frames, 3, 16, 24), np.uint8)
    for t in range(frames):
        clip[t] = 40 * t + 20
        clip[t, :, :, :8] = np.array([200, 0, 0], np.uint8)[:, None, None]  # a red band: RGB order
    return clip


def _writable(suffix: str) -> bool:
    # Whether this OpenCV build has the encoder VideoWriter uses for ``suffix``.
    with tempfile.TemporaryDirectory() as folder:
        fourcc = cv2.VideoWriter_fourcc(*VIDEO_CODECS[suffix])
        writer = cv2.VideoWriter(str(Path(folder) / f"probe{suffix}"), fourcc, 5, (24, 16))
        opened = writer.isOpened()
        writer.release()
    return opened


WRITTEN = [
    pytest.param(
        s,
        marks=pytest.mark.skipif(
            not _writable(s), reason=f"this OpenCV build has no {VIDEO_CODECS[s]} writer for {s}"
        ),
    )
    for s in VIDEO_CODECS
]


@pytest.mark.parametrize("suffix", WRITTEN)
def test_every_video_suffix_round_trips(tmp_path: Path, suffix: str) -> None:
    clip = _clip()
    path = tmp_path / f"v{suffix}"
    with VideoWriter(path, fps=5) as video:
        for frame in clip:
            video.write(frame)
    assert video.written == 5 and count_frames(path) == 5
    frames = read_video(path)
    assert len(frames) == 5 and frames[0].shape == (16, 24, 3) and frames[0].dtype == np.uint8
    for t, frame in enumerate(frames):
        assert abs(float(frame[:, 8:].mean()) - (40 * t + 20)) < 6  # lossy, but the right frame
        assert frame[:, :8, 0].mean() > 150 and frame[:, :8, 2].mean() < 150  # red stays red (RGB)
    picked = read_video(path, [1, 3, 4])
    for got, t in zip(picked, (1, 3, 4), strict=True):
        np.testing.assert_array_equal(got, frames[t])
    assert list(iter_video(path))[2].shape == (16, 24, 3)
    assert suffix in VIDEO_SUFFIXES


def test_gif_is_a_video_too(tmp_path: Path) -> None:
    from crevnet.data.video import write_gif

    path = write_gif(_clip(), tmp_path / "v.gif")
    assert count_frames(path) == 5
    frames = read_video(path)
    assert len(frames) == 5 and frames[0].shape == (16, 24, 3)
    np.testing.assert_array_equal(read_video(path, [3])[0], frames[3])
    assert abs(float(frames[3][:, 8:].mean()) - 140) < 6


def test_webm_is_read_like_every_other_container(tmp_path: Path) -> None:
    if not _writable(".webm"):
        pytest.skip("this OpenCV build has no VP8 writer to make a .webm to read")
    path = tmp_path / "v.webm"
    with VideoWriter(path, fps=5) as video:
        for frame in _clip():
            video.write(frame)
    from crevnet.data.video import read_clip

    assert read_clip(path).shape == (5, 3, 16, 24)


def test_unreadable_videos_are_named_and_count_zero(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video" * 50)
    with pytest.raises(DataError, match=r"bad\.mp4: not a readable video"):
        read_video(bad)
    assert count_frames(bad) == 0
    gif = tmp_path / "bad.gif"
    gif.write_text("nor a gif")
    with pytest.raises(DataError, match=r"bad\.gif: not a readable GIF"):
        read_video(gif)
    assert count_frames(gif) == 0
    good = tmp_path / "good.avi"
    with VideoWriter(good, fps=5) as video:
        for frame in _clip(3):
            video.write(frame)
    with pytest.raises(DataError, match=r"good\.avi: frame 7 could not be decoded \(the video ends early\)"):
        read_video(good, [1, 7])


# ----------------------------------------------------------------------------------------------
# The verified writer.


def test_a_short_write_is_detected_and_the_old_file_kept(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "out.mp4"
    with VideoWriter(path, fps=5) as video:
        for frame in _clip():
            video.write(frame)
    before = path.read_bytes()

    opencv_writer = cv2.VideoWriter

    class DropsEveryOther:  # a writer that loses frames and says nothing (wraps OpenCV's: a subclass crashes)
        def __init__(self, *args: object) -> None:
            self.writer, self.calls = opencv_writer(*args), 0

        def isOpened(self) -> bool:
            return self.writer.isOpened()

        def write(self, image: np.ndarray) -> None:
            self.calls += 1
            if self.calls % 2:
                self.writer.write(image)

        def release(self) -> None:
            self.writer.release()

    monkeypatch.setattr(cv2, "VideoWriter", DropsEveryOther)
    with pytest.raises(OutputError) as info, VideoWriter(path, fps=5) as video:
        for frame in _clip():
            video.write(frame)
    message = str(info.value)
    assert f"cannot write {path}: the video holds 3 readable of 5 frames" in message
    assert ".crevnet-tmp" not in message
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temporary file left


def test_an_error_in_the_block_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "out.avi"
    path.write_bytes(b"the old file")
    with pytest.raises(DataError, match=r"frame 1 is 8×8, the video is 16×24"), VideoWriter(path, 5) as video:
        video.write(_clip()[0])
        video.write(torch.rand(3, 8, 8))
    assert path.read_bytes() == b"the old file"
    assert [p.name for p in tmp_path.iterdir()] == ["out.avi"]


def test_bad_writer_arguments(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unknown video suffix; expected one of \.mp4"):
        VideoWriter(tmp_path / "x.flv", fps=5)
    with pytest.raises(DataError, match=r"fps must be > 0"):
        VideoWriter(tmp_path / "x.mp4", fps=0)
    with pytest.raises(OutputError, match=r"nothing was written"), VideoWriter(tmp_path / "x.mp4", fps=5):
        pass
    assert not (tmp_path / "x.mp4").exists()
