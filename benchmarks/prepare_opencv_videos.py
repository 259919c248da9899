"""Lay out the opencv-doc sample videos as train/ val/ test/ folders of frames for the real-footage run.

Debian's ``opencv-doc`` package ships four sample videos in ``usr/share/doc/opencv-doc/examples/data``:
``vtest.avi`` (pedestrians, static camera, 768×576, 10 fps, 795 frames), ``Megamind.avi`` (720×528, 24 fps,
270 frames), ``Megamind_bugy.avi`` (the same clip with decoding faults, 30 fps) and ``tree.avi`` (320×240,
15 fps; its header claims 444 frames, 68 decode). Four files are too few for a useful split by file, and
two are the same clip, so this script makes the split explicit, without any frame in two parts:

* ``train/``: frames 0–69 % of ``vtest.avi``, all of ``Megamind.avi`` and ``tree.avi``;
* ``val/``: the next 15 % of ``vtest.avi``;
* ``test/``: the last 15 % of ``vtest.avi`` (held out in time: later pedestrians, same camera).

``Megamind_bugy.avi`` is left out (a near copy of a training clip). Each part is written as a folder of
PNG frames scaled (area averaging) so that the shorter side is ``--short-side`` pixels (144: enough for
the 64×64 and the 128×128 configs), which makes reading a training window much cheaper than decoding
768×576 video. ``VideoFolderDataModule`` sees the three sub-folders and uses them as the split.

Usage::

    python benchmarks/prepare_opencv_videos.py \\
        --src /work/scratch/opencv-doc/usr/share/doc/opencv-doc/examples/data --out /work/scratch/opencv_clips

Prints one JSON line per folder written (name, frames, size).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2

from crevnet.data.clips import probe_clip
from crevnet.errors import DataError
from crevnet.io.atomic import atomic_write_bytes

# (source file, first fraction, end fraction, part): which frames of which video go where.
LAYOUT = (
    ("vtest.avi", 0.0, 0.70, "train"),
    ("vtest.avi", 0.70, 0.85, "val"),
    ("vtest.avi", 0.85, 1.0, "test"),
    ("Megamind.avi", 0.0, 1.0, "train"),
    ("tree.avi", 0.0, 1.0, "train"),
)


def _scaled(height: int, width: int, short_side: int) -> tuple[int, int]:
    scale = short_side / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def write_segment(src: Path, first: int, end: int, out: Path, short_side: int) -> dict[str, object]:
    """Decode frames ``first .. end - 1`` of ``src`` (streaming) into ``out/frame_NNNN.png``, scaled."""
    capture = cv2.VideoCapture(str(src))
    written = 0
    size = None
    try:
        capture.set(cv2.CAP_PROP_POS_FRAMES, first)
        for _ in range(first, end):
            ok, frame = capture.read()
            if not ok:
                break
            size = _scaled(frame.shape[0], frame.shape[1], short_side)
            small = cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)
            ok, png = cv2.imencode(".png", small)
            if not ok:
                raise DataError(f"{out}: OpenCV could not encode a PNG")
            atomic_write_bytes(out / f"frame_{written:04d}.png", png.tobytes())
            written += 1
    finally:
        capture.release()
    return {"folder": str(out), "source": src.name, "frames": [first, first + written], "size": size}


def main(argv: list[str] | None = None) -> int:
    """Write the layout (see the module docstring); returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, required=True, help="opencv-doc's examples/data folder")
    parser.add_argument("--out", type=Path, required=True, help="where train/ val/ test/ are written")
    parser.add_argument("--short-side", type=int, default=144, help="shorter frame side in pixels")
    args = parser.parse_args(argv)
    for name, start, stop, part in LAYOUT:
        src = args.src / name
        if not src.is_file():
            raise DataError(
                f"{src}: not found; expected opencv-doc's examples/data folder (see the docstring)"
            )
        frames = probe_clip(src).frames  # decoded count; the header can be wrong (tree.avi)
        first, end = round(start * frames), round(stop * frames)
        out = args.out / part / f"{src.stem}_{first:04d}-{end - 1:04d}"
        print(json.dumps(write_segment(src, first, end, out, args.short_side)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
