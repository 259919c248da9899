"""crevnet.data.pixels, the one home of grey conversion and resizing, against independent computations;
and the three doors (read_clip, prepare_clip, Framing) converting a frame the same way."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from crevnet.data.framing import Framing
from crevnet.data.pixels import GREY_WEIGHTS, resize_frames, to_channels
from crevnet.data.video import read_clip
from crevnet.inference.predict import prepare_clip


def _rgb(t: int = 2, h: int = 12, w: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def test_grey_of_uint8_is_opencv_rgb2gray_within_one_level() -> None:
    frames = _rgb()
    grey = to_channels(frames, 1)
    assert grey.dtype == np.uint8 and grey.shape == (2, 12, 10, 1)
    reference = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])[..., None]
    assert np.abs(grey.astype(int) - reference.astype(int)).max() <= 1


def test_grey_of_float_frames_is_the_weighted_sum() -> None:
    frames = _rgb().astype(np.float32) / 255
    expected = sum(w * frames[..., i] for i, w in enumerate(GREY_WEIGHTS))[..., None]
    np.testing.assert_allclose(to_channels(frames, 1), expected, atol=1e-6)


def test_grey_to_rgb_repeats_and_same_channels_is_identity() -> None:
    grey = _rgb()[..., :1]
    assert np.array_equal(to_channels(grey, 3), np.repeat(grey, 3, axis=-1))
    assert to_channels(grey, 1) is grey
    with pytest.raises(ValueError, match="between 1 and 3 channels, got 4 -> 1"):
        to_channels(np.zeros((1, 2, 2, 4)), 1)


def test_shrinking_by_two_is_the_mean_of_each_2x2_block() -> None:
    frames = np.random.default_rng(1).random((3, 8, 6, 1), dtype=np.float32)
    expected = frames.reshape(3, 4, 2, 3, 2, 1).mean(axis=(2, 4))
    out = resize_frames(frames, (4, 3))
    assert out.dtype == np.float32 and out.shape == (3, 4, 3, 1)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_enlarging_is_bilinear_like_torch_and_stays_in_range() -> None:
    frames = np.random.default_rng(2).random((2, 5, 7, 3), dtype=np.float32)
    out = resize_frames(frames, (10, 14))
    reference = F.interpolate(torch.from_numpy(frames).permute(0, 3, 1, 2), size=(10, 14), mode="bilinear")
    np.testing.assert_allclose(out, reference.permute(0, 2, 3, 1).numpy(), atol=1e-5)
    assert out.min() >= 0 and out.max() <= 1
    assert resize_frames(frames, (5, 7)) is frames
    assert resize_frames(_rgb(), (6, 5)).dtype == np.uint8
    with pytest.raises(ValueError, match=r"two positive integers \(H, W\), got \(0, 3\)"):
        resize_frames(frames, (0, 3))


def test_the_three_doors_convert_a_colour_clip_alike(tmp_path: Path) -> None:
    frames = _rgb(t=3, h=24, w=20, seed=3)
    framed = Framing(size=(12, 10), mode="resize", channels=1).apply(frames).astype(np.float32) / 255
    prepared = prepare_clip(torch.from_numpy(frames).permute(0, 3, 1, 2), 1, 2, (12, 10), 3).context
    np.save(tmp_path / "clip.npy", frames)
    read = read_clip(tmp_path / "clip.npy", size=(12, 10), grayscale=True)
    assert framed.shape == tuple(prepared.shape) == tuple(read.shape) == (3, 1, 12, 10)
    # uint8 rounding (Framing) and the order of grey and resize (read_clip) differ by < 1 grey level
    assert np.abs(framed - prepared.numpy()).max() <= 1 / 255 + 1e-6
    assert np.abs(read.numpy() - prepared.numpy()).max() <= 1 / 255 + 1e-6
