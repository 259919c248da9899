"""Statistics of the Moving MNIST generators, checked on rendered frames."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from crevnet.data import (
    CrevNetGenerator,
    Motion,
    MovingMNIST,
    StandardGenerator,
    load_mnist,
    sequence_rng,
)

SQUARE = np.full((1, 28, 28), 255, dtype=np.uint8)  # a digit whose bounding box is exact


def _boxes(video: np.ndarray) -> list[tuple[int, int, int, int]]:
    # (top, left, height, width) of the non-zero pixels of each frame.
    boxes = []
    for frame in video:
        rows, cols = np.nonzero(frame.any(axis=1))[0], np.nonzero(frame.any(axis=0))[0]
        boxes.append((rows[0], cols[0], rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1))
    return boxes


def test_standard_speed_walls_and_canvas() -> None:
    generator = StandardGenerator(num_digits=1)
    assert generator.pixels_per_frame == pytest.approx(3.6)
    steps, interior_steps = [], []
    for index in range(60):
        rng = sequence_rng(3, index)
        motion = generator.sample_motion(rng, 1, 20)
        video = generator.render(motion, SQUARE)
        boxes = np.array(_boxes(video))
        # Digits lie fully inside the 64x64 canvas in every frame, at the drawn corner.
        assert (boxes[:, 2:] == 28).all()
        np.testing.assert_array_equal(boxes[:, :2], motion.corners[0])
        pos = motion.positions[0]
        assert (pos >= 0).all() and (pos <= 36).all()
        np.testing.assert_array_equal(motion.corners[0], np.floor(pos))
        delta = np.diff(pos, axis=0)
        at_wall = ((pos[1:] == 0) | (pos[1:] == 36)).any(axis=1)
        # Away from walls each frame moves exactly 3.6 px; the pasted corners follow within 1 px.
        interior_steps.extend(np.linalg.norm(delta[~at_wall], axis=1))
        assert (np.abs(np.diff(boxes[:, :2], axis=0) - delta) < 1).all()
        steps.extend(np.linalg.norm(np.diff(boxes[:, :2], axis=0)[~at_wall], axis=1))
        # A wall flips the component that hit it: the step after a clamp points away from it.
        for t in np.nonzero(at_wall)[0]:
            for axis in (0, 1):
                if pos[t + 1, axis] == 0 and t + 2 < len(pos):
                    assert pos[t + 2, axis] > 0
                if pos[t + 1, axis] == 36 and t + 2 < len(pos):
                    assert pos[t + 2, axis] < 36
    np.testing.assert_allclose(interior_steps, 3.6, atol=1e-9)
    assert np.mean(steps) == pytest.approx(3.6, abs=0.3)  # measured on the rendered frames


def test_standard_directions_and_starts_cover_the_range() -> None:
    generator = StandardGenerator(num_digits=1)
    angles, firsts = [], []
    for index in range(400):
        motion = generator.sample_motion(sequence_rng(5, index), 1, 2)
        step = np.diff(motion.positions[0], axis=0)[0]
        if motion.positions[0, :, :].min() > 0 and motion.positions[0].max() < 36:
            angles.append(math.atan2(step[0], step[1]))
        firsts.append(motion.positions[0, 0])
    angles = np.array(angles)
    # theta ~ U[0, 2 pi): the mean unit vector is near zero and every quadrant occurs.
    assert abs(np.cos(angles).mean()) < 0.1 and abs(np.sin(angles).mean()) < 0.1
    assert len(np.unique(np.floor(angles / (math.pi / 2)))) == 4
    firsts = np.array(firsts)
    assert firsts.min() < 3 and firsts.max() > 33


def test_standard_overlay_is_a_maximum() -> None:
    rng = np.random.default_rng(0)
    digits = rng.integers(0, 256, size=(2, 28, 28), dtype=np.uint8)
    corners = np.array([[[10, 12]], [[20, 5]]])
    motion = Motion(np.array([0, 1]), corners.astype(float), corners)
    video = StandardGenerator().render(motion, digits)
    expected = np.zeros((2, 64, 64), dtype=np.uint8)
    expected[0, 10:38, 12:40] = digits[0]
    expected[1, 20:48, 5:33] = digits[1]
    np.testing.assert_array_equal(video[0], expected.max(axis=0))


def test_crevnet_generator_integer_bounces_and_clipped_sum() -> None:
    generator = CrevNetGenerator(num_digits=1)
    for index in range(40):
        motion = generator.sample_motion(sequence_rng(1, index), 1, 20)
        video = generator.render(motion, SQUARE)
        boxes = np.array(_boxes(video)) if video.any() else None
        corners = motion.corners[0]
        assert boxes is not None and (boxes[:, 2:] == 32).all()  # resized to 32x32, inside
        np.testing.assert_array_equal(boxes[:, :2], corners)
        assert (corners >= 0).all() and (corners <= 32).all()
        delta = np.diff(corners, axis=0)
        assert (np.abs(delta) <= 4).all()
        # Between walls the velocity is constant (a step ending on a wall may be cut short).
        at_wall = (corners == 0) | (corners == 32)
        for t in range(1, len(delta)):
            hit = at_wall[t] | at_wall[t + 1]
            for axis in (0, 1):
                if not hit[axis]:
                    assert delta[t, axis] == delta[t - 1, axis]
                if at_wall[t, axis] and delta[t - 1, axis] != 0:  # arrived at a wall: reversed
                    assert np.sign(delta[t, axis]) == -np.sign(delta[t - 1, axis])
    two = np.full((2, 28, 28), 200, dtype=np.uint8)
    corners = np.array([[[0, 0]], [[16, 16]]])
    video = generator.render(Motion(np.array([0, 1]), corners.astype(float), corners), two)
    assert video[0, 20, 20] == 255 and video[0, 5, 5] == 200 and video[0, 60, 60] == 0


def test_crevnet_resize_matches_torch_bilinear() -> None:
    digit = np.random.default_rng(1).integers(0, 256, size=(28, 28), dtype=np.uint8)
    ours = CrevNetGenerator().resize(digit).astype(np.int16)
    ref = (
        torch.nn.functional.interpolate(
            torch.from_numpy(digit).float()[None, None],
            size=(32, 32),
            mode="bilinear",
            align_corners=False,
        )[0, 0]
        .round()
        .numpy()
    )
    assert np.abs(ours - ref).max() <= 1


def test_generation_is_deterministic_per_seed_and_index() -> None:
    digits = np.random.default_rng(2).integers(0, 256, size=(50, 28, 28), dtype=np.uint8)
    a = MovingMNIST(digits, length=10, seed=11)
    b = MovingMNIST(digits, length=10, seed=11)
    first = [a[i] for i in (7, 2, 7)]
    torch.testing.assert_close(first[0], first[2], rtol=0, atol=0)
    torch.testing.assert_close(b[7], first[0], rtol=0, atol=0)  # another instance, another order
    assert not torch.equal(a[2], a[3])
    assert not torch.equal(MovingMNIST(digits, 10, seed=12)[7], a[7])
    assert not torch.equal(MovingMNIST(digits, 10, seed=11, stream=1)[7], a[7])
    item = a[0]
    assert item.shape == (20, 1, 64, 64) and item.dtype == torch.float32
    assert float(item.min()) >= 0 and float(item.max()) <= 1
    np.testing.assert_array_equal(item[:, 0].numpy() * 255, a.sequence(0).astype(np.float32))


def test_train_sequences_use_train_digits(shared_data: Path) -> None:
    train = load_mnist("train", shared_data, download=False).images
    test = load_mnist("test", shared_data, download=False).images
    test_hashes = {d.tobytes() for d in test}
    dataset = MovingMNIST(train, length=5, seed=0, generator=StandardGenerator(num_digits=1))
    for i in range(5):
        motion, video = dataset.motion(i), dataset.sequence(i)
        y, x = motion.corners[0, 0]
        crop = video[0, y : y + 28, x : x + 28]
        np.testing.assert_array_equal(crop, train[motion.digit_indices[0]])
        assert crop.tobytes() not in test_hashes


def test_configurable_sizes() -> None:
    generator = StandardGenerator(num_digits=3, canvas_size=96, step=0.05)
    digits = np.full((4, 28, 28), 50, dtype=np.uint8)
    video = generator.generate(digits, sequence_rng(0, 0), num_frames=7)
    assert video.shape == (7, 96, 96) and generator.pixels_per_frame == pytest.approx(3.4)
    assert generator.sample_motion(sequence_rng(0, 0), 4, 7).positions.shape == (3, 7, 2)
    with pytest.raises(ValueError, match="digit_size < canvas_size"):
        StandardGenerator(canvas_size=28)
    with pytest.raises(ValueError, match="expected \\(28, 28\\)"):
        StandardGenerator().generate(np.zeros((2, 32, 32), np.uint8), sequence_rng(0, 0), 2)
