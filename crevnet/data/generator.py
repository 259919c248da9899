"""Moving MNIST generators: the standard one (Srivastava et al. 2015) and CrevNet's own (SVG-style).

Both are frozen dataclasses with the same interface (``MovingMNISTGenerator``): ``sample_motion``
draws the digits and their trajectories from a numpy ``Generator``, ``render`` paints them, and
``generate`` does both. Output frames are uint8 (T, H, W); divide by 255 for [0, 1].
"""

from __future__ import annotations

import abc
import functools
import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CrevNetGenerator",
    "Motion",
    "MovingMNISTGenerator",
    "StandardGenerator",
    "sequence_rng",
]


def sequence_rng(seed: int, index: int, stream: int = 0) -> np.random.Generator:
    """The random generator of sequence ``index`` of a set seeded with ``seed``.

    Every sequence has its own ``SeedSequence((seed, index))`` so that any item can be regenerated
    alone, in any order, in any worker. ``stream`` (0 by default, used by the test sets) gives
    independent families of sequences for the same seed (the data module uses 1 for training and 2
    for validation).

    Args:
        seed: Non-negative seed of the whole set.
        index: Non-negative index of the sequence.
        stream: Non-negative stream number.

    Returns:
        A fresh ``numpy.random.Generator`` (PCG64).
    """
    if seed < 0 or index < 0 or stream < 0:
        raise ValueError(f"seed, index and stream must be non-negative; got {seed}, {index}, {stream}")
    spawn_key = (stream,) if stream else ()
    return np.random.default_rng(np.random.SeedSequence((seed, index), spawn_key=spawn_key))


@dataclass(frozen=True)
class Motion:
    """The digits of one sequence and where they are in each frame.

    Shape:
        digit_indices: (D,) int64. positions: (D, T, 2) float64, top-left (y, x) in pixels before
        rounding. corners: (D, T, 2) int64, the top-left pixel where each digit is pasted.
    """

    digit_indices: np.ndarray  # (D,) which digit images are used
    positions: np.ndarray  # (D, T, 2) exact trajectory, (y, x) pixels
    corners: np.ndarray  # (D, T, 2) pasted top-left corner, (y, x) pixels


class MovingMNISTGenerator(abc.ABC):
    """Interface of a Moving MNIST generator: digits + random generator -> uint8 video."""

    canvas_size: int

    @abc.abstractmethod
    def sample_motion(self, rng: np.random.Generator, num_digits: int, num_frames: int) -> Motion:
        """Draw digit indices (out of ``num_digits`` available) and trajectories."""

    @abc.abstractmethod
    def render(self, motion: Motion, digits: np.ndarray) -> np.ndarray:
        """Paint the digits ``digits[motion.digit_indices]`` along ``motion``.

        Shape:
            digits: (N, h, w) uint8 -> (T, canvas_size, canvas_size) uint8.
        """

    def generate(self, digits: np.ndarray, rng: np.random.Generator, num_frames: int) -> np.ndarray:
        """Draw and render one sequence.

        Args:
            digits: The digit images to draw from.
            rng: Random generator (see ``sequence_rng``).
            num_frames: Number of frames T.

        Returns:
            The video, uint8.

        Shape:
            digits: (N, h, w) uint8 -> (T, canvas_size, canvas_size) uint8.
        """
        if digits.ndim != 3 or digits.dtype != np.uint8 or len(digits) == 0:
            raise ValueError(
                f"digits: expected a non-empty (N, h, w) uint8 array, got {digits.shape} {digits.dtype}"
            )
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        return self.render(self.sample_motion(rng, len(digits), num_frames), digits)


def _check_sizes(name: str, num_digits: int, canvas_size: int, digit_size: int) -> None:
    if num_digits < 1:
        raise ValueError(f"{name}: num_digits must be >= 1, got {num_digits}")
    if not 0 < digit_size < canvas_size:
        raise ValueError(
            f"{name}: need 0 < digit_size < canvas_size, got digit_size={digit_size}, "
            f"canvas_size={canvas_size}"
        )


@dataclass(frozen=True)
class StandardGenerator(MovingMNISTGenerator):
    """The standard Moving MNIST generator (Srivastava, Mansimov, Salakhutdinov, ICML 2015).

    Per digit: start (y, x) ~ U[0, 1) of the range R = canvas_size - digit_size, direction
    θ ~ U[0, 2π), constant step ``step`` · R per frame (0.1 · 36 = 3.6 px at 64×64). Each frame
    first takes the step, then clamps at the walls (0 and 1) and flips the velocity component that
    hit; so frame 0 is drawn after one step. Pixel corners are ``int(R · position)`` (truncation).
    Digits are overlaid with a pixelwise maximum. The digits are pasted at their own size.
    """

    num_digits: int = 2  # digits per sequence
    canvas_size: int = 64  # frame height = width in pixels
    digit_size: int = 28  # side of the digit images (MNIST: 28)
    step: float = 0.1  # distance per frame as a fraction of the range canvas_size - digit_size

    def __post_init__(self) -> None:
        _check_sizes("StandardGenerator", self.num_digits, self.canvas_size, self.digit_size)
        if not 0.0 <= self.step <= 1.0:
            raise ValueError(f"StandardGenerator: step must be in [0, 1], got {self.step}")

    @property
    def pixels_per_frame(self) -> float:
        """Speed in pixels per frame: ``step * (canvas_size - digit_size)``."""
        return self.step * (self.canvas_size - self.digit_size)

    def sample_motion(self, rng: np.random.Generator, num_digits: int, num_frames: int) -> Motion:
        """Draw ``self.num_digits`` digit indices and their bouncing trajectories."""
        span = self.canvas_size - self.digit_size
        indices = rng.integers(0, num_digits, size=self.num_digits)
        unit: list[list[tuple[float, float]]] = []
        for _ in range(self.num_digits):
            theta = rng.uniform(0.0, 2.0 * math.pi)
            y, x = (float(v) for v in rng.random(2))
            vy, vx = math.sin(theta) * self.step, math.cos(theta) * self.step
            path = []
            for _ in range(num_frames):
                y += vy
                x += vx
                if x <= 0.0:
                    x, vx = 0.0, -vx
                if x >= 1.0:
                    x, vx = 1.0, -vx
                if y <= 0.0:
                    y, vy = 0.0, -vy
                if y >= 1.0:
                    y, vy = 1.0, -vy
                path.append((y, x))
            unit.append(path)
        positions = np.array(unit, dtype=np.float64) * span
        corners = positions.astype(np.int64)  # truncation, as in the original script
        return Motion(indices.astype(np.int64), positions, corners)

    def render(self, motion: Motion, digits: np.ndarray) -> np.ndarray:
        """Overlay the digits with a maximum. Shape: (N, s, s) uint8 -> (T, H, W) uint8."""
        size = self.digit_size
        if digits.shape[1:] != (size, size):
            raise ValueError(
                f"StandardGenerator: digit images are {digits.shape[1:]}, expected ({size}, {size})"
            )
        num_frames = motion.corners.shape[1]
        video = np.zeros((num_frames, self.canvas_size, self.canvas_size), dtype=np.uint8)
        for index, corners in zip(motion.digit_indices.tolist(), motion.corners.tolist(), strict=True):
            digit = digits[index]
            for t, (y, x) in enumerate(corners):
                patch = video[t, y : y + size, x : x + size]
                np.maximum(patch, digit, out=patch)
        return video


@functools.lru_cache(maxsize=8)
def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    # Bilinear interpolation along one axis (half-pixel centres, edges clamped) as an
    # (n_out, n_in) matrix, so a 2-D resize is R @ image @ R.T.
    centres = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    centres = np.clip(centres, 0.0, n_in - 1)
    low = np.floor(centres).astype(np.int64)
    high = np.minimum(low + 1, n_in - 1)
    frac = centres - low
    matrix = np.zeros((n_out, n_in), dtype=np.float32)
    rows = np.arange(n_out)
    np.add.at(matrix, (rows, low), 1.0 - frac)
    np.add.at(matrix, (rows, high), frac)
    return matrix


@dataclass(frozen=True)
class CrevNetGenerator(MovingMNISTGenerator):
    """CrevNet's own Moving MNIST generator (the SVG data loader of Denton & Fergus 2018).

    Digits are resized (bilinear) to ``digit_size`` (32); each starts at an integer corner drawn
    uniformly in [0, canvas_size - digit_size] with an integer velocity per axis drawn uniformly
    in [-max_speed, max_speed] px/frame (zero allowed). Frame 0 is drawn at the start; between
    frames the digit moves by its velocity and, when it reaches or passes a wall (0 or
    canvas_size - digit_size), is clamped to it and that velocity component turns away from it.
    Digits are added and clipped to 255.
    """

    num_digits: int = 2  # digits per sequence
    canvas_size: int = 64  # frame height = width in pixels
    digit_size: int = 32  # digits are resized to this side
    max_speed: int = 4  # velocity components are integers in [-max_speed, max_speed]

    def __post_init__(self) -> None:
        _check_sizes("CrevNetGenerator", self.num_digits, self.canvas_size, self.digit_size)
        if self.max_speed < 0:
            raise ValueError(f"CrevNetGenerator: max_speed must be >= 0, got {self.max_speed}")

    def sample_motion(self, rng: np.random.Generator, num_digits: int, num_frames: int) -> Motion:
        """Draw ``self.num_digits`` digit indices and integer bouncing trajectories."""
        limit = self.canvas_size - self.digit_size
        indices = rng.integers(0, num_digits, size=self.num_digits)
        corners = np.empty((self.num_digits, num_frames, 2), dtype=np.int64)
        for d in range(self.num_digits):
            pos = [int(v) for v in rng.integers(0, limit + 1, size=2)]
            vel = [int(v) for v in rng.integers(-self.max_speed, self.max_speed + 1, size=2)]
            for t in range(num_frames):
                if t > 0:
                    for axis in (0, 1):
                        pos[axis] += vel[axis]
                        if pos[axis] <= 0:
                            pos[axis], vel[axis] = 0, abs(vel[axis])
                        elif pos[axis] >= limit:
                            pos[axis], vel[axis] = limit, -abs(vel[axis])
                corners[d, t] = pos
        return Motion(indices.astype(np.int64), corners.astype(np.float64), corners)

    def resize(self, digit: np.ndarray) -> np.ndarray:
        """Bilinearly resize one digit. Shape: (h, w) uint8 -> (digit_size, digit_size) uint8."""
        rows = _resize_matrix(digit.shape[0], self.digit_size)
        cols = _resize_matrix(digit.shape[1], self.digit_size)
        resized = rows @ digit.astype(np.float32) @ cols.T
        return np.clip(np.rint(resized), 0, 255).astype(np.uint8)

    def render(self, motion: Motion, digits: np.ndarray) -> np.ndarray:
        """Add the resized digits and clip. Shape: (N, h, w) uint8 -> (T, H, W) uint8."""
        size = self.digit_size
        num_frames = motion.corners.shape[1]
        video = np.zeros((num_frames, self.canvas_size, self.canvas_size), dtype=np.uint16)
        for index, corners in zip(motion.digit_indices.tolist(), motion.corners.tolist(), strict=True):
            digit = self.resize(digits[index])
            for t, (y, x) in enumerate(corners):
                video[t, y : y + size, x : x + size] += digit
        return np.minimum(video, 255).astype(np.uint8)
