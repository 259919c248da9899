"""crevnet predict --stream: a video, a folder or a camera frame by frame; outputs, latency, bad inputs."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from crevnet.data.video import read_clip, write_mp4
from crevnet.inference.predict import prepare_clip
from crevnet.models.checkpoint import load_model, save_model
from crevnet.nn import CrevNet, CrevNetConfig, EncoderConfig, PredictorConfig

ROOT = Path(__file__).resolve().parents[1]
NET = CrevNetConfig(
    encoder=EncoderConfig(dims=3, stages=(1, 1), strides=(1, 2), channels=(2, 8)),
    predictor=PredictorConfig(layers=2),
    window=3,
)
SIZE = 16  # the checkpoint's training frame size


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("stream")
    return save_model(CrevNet(NET).eval(), folder / "m.ckpt", context=4, frame_size=(SIZE, SIZE))


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    frames = torch.rand(7, 3, 24, 32, generator=torch.Generator().manual_seed(0))  # colour, another size
    return write_mp4(frames, tmp_path_factory.mktemp("clip") / "clip.mp4", fps=5)


def _gif_frames(path: Path) -> np.ndarray:
    from PIL import Image, ImageSequence

    with Image.open(path) as image:
        return np.stack([np.asarray(f.convert("L")) for f in ImageSequence.Iterator(image)])


def test_stream_writes_each_frame_beside_its_forecast(ckpt, video, tmp_path, run_cli) -> None:
    out = tmp_path / "s.gif"
    code, stdout, err = run_cli(
        "predict", "--stream", "--ckpt", str(ckpt), "--input", str(video), "--horizon", "2", "--out", str(out)
    )
    assert code == 0, err
    assert "5 frames" in stdout and "side by side" in stdout
    note = "resized 24×32 -> 16×22 and cut the centre 16×16 (H×W), converted RGB -> grey"
    assert f"clip.mp4: 1 frames 24×32 RGB -> {note}" in err
    assert (
        "7 frames (end of input)" in err and "median" in err and "p95" in err and "predicted frames/s" in err
    )
    assert "crevnet predict --stream: backend " in err and "fastest of a timed probe" in err  # --backend auto
    panels = _gif_frames(out)
    assert panels.shape == (7 - 3 + 1, SIZE, 3 * SIZE + 2 * 2)  # frames 2..6: input | 2 predictions
    # every panel is the model's prediction from the frames received so far (as predict would give)
    model = load_model(ckpt).model
    clip = read_clip(video)
    prepared = prepare_clip(clip, 1, 4, (SIZE, SIZE), len(clip)).context  # (7, 1, 16, 16)
    for i, t in enumerate(range(2, 7)):
        with torch.no_grad():
            pred = model.predict(prepared[None, : t + 1], 2)[0].clamp(0, 1)  # (2, 1, 16, 16)
        expected = np.rint(pred[:, 0].numpy() * 255)
        step = SIZE + 2
        got = np.stack([panels[i][:, (k + 1) * step : (k + 1) * step + SIZE] for k in range(2)])
        assert np.abs(got.astype(float) - expected).max() <= 1
        assert np.abs(panels[i][:, :SIZE] - np.rint(prepared[t, 0].numpy() * 255)).max() <= 1
        assert (panels[i][:, SIZE : SIZE + 2] == 255).all()  # the white gap


def test_stream_to_video_and_max_frames(ckpt, video, tmp_path, run_cli) -> None:
    out = tmp_path / "s.mp4"
    argv = ["predict", "--stream", "--ckpt", str(ckpt), "--input", str(video), "--horizon", "1"]
    code, _, err = run_cli(*argv, "--out", str(out), "--max-frames", "5")
    assert code == 0, err
    assert "5 frames (--max-frames)" in err
    written = read_clip(out)
    assert written.shape[0] == 5 - 3 + 1 and written.shape[2:] == (SIZE, 2 * SIZE + 2)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


BACKENDS = [
    "torchscript",
    pytest.param(
        "onnxruntime",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed"
        ),
    ),
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_writes_what_eager_writes(ckpt, video, tmp_path, run_cli, backend) -> None:
    argv = ["predict", "--stream", "--ckpt", str(ckpt), "--input", str(video), "--horizon", "3"]
    outputs = {}
    for name in ("eager", backend):
        outputs[name] = tmp_path / f"{name}.gif"
        code, _, err = run_cli(*argv, "--out", str(outputs[name]), "--backend", name)
        assert code == 0, err
        assert f"crevnet predict --stream: backend {name}, " in err
        assert "timed probe" not in err  # a named backend is not measured
    eager, other = _gif_frames(outputs["eager"]), _gif_frames(outputs[backend])
    assert eager.shape == other.shape
    assert np.abs(eager.astype(int) - other.astype(int)).max() <= 1


def test_unknown_backend_is_one_line(ckpt, tmp_path, run_cli, one_error_line) -> None:
    argv = [
        "predict",
        "--stream",
        "--ckpt",
        str(tmp_path / "not_loaded.ckpt"),
        "--input",
        "0",
        "--horizon",
        "1",
    ]
    code, _, err = run_cli(*argv, "--out", str(tmp_path / "s.gif"), "--backend", "tensorrt")
    assert code == 2
    assert "--backend tensorrt: expected one of auto, eager, torchscript" in one_error_line(err)


def _write_png(path: Path, height: int, width: int, channels: int) -> None:
    shape = (height, width) if channels == 1 else (height, width, channels)
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8))


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ((20, 16, 1), r"frame 2 is 20×16 with 1 channel\(s\), the stream started with 16×16 with 1"),
        ((16, 16, 3), r"frame 2 is 16×16 with 3 channel\(s\), the stream started with 16×16 with 1"),
    ],
)
def test_a_frame_of_another_size_or_channel_count_mid_stream(
    ckpt, tmp_path, run_cli, one_error_line, second, message
) -> None:
    import re

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        _write_png(folder / f"f{i}.png", *(second if i == 2 else (16, 16, 1)))
    out = tmp_path / "s.gif"
    argv = ["predict", "--stream", "--ckpt", str(ckpt), "--input", str(folder), "--horizon", "1"]
    code, _, err = run_cli(*argv, "--out", str(out))
    assert code == 2
    assert re.search(message, one_error_line(err))
    assert not out.exists()


def test_missing_and_unreadable_inputs(ckpt, tmp_path, run_cli, one_error_line) -> None:
    argv = ["predict", "--stream", "--ckpt", str(ckpt), "--horizon", "1", "--out", str(tmp_path / "s.gif")]
    code, _, err = run_cli(*argv, "--input", str(tmp_path / "nope.mp4"))
    assert code == 2 and "nope.mp4: no such file or folder" in one_error_line(err)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    code, _, err = run_cli(*argv, "--input", str(bad))
    assert code == 2 and "bad.mp4: not a readable video" in one_error_line(err)
    code, _, err = run_cli(*argv[:-2], "--out", str(tmp_path / "s.png"), "--input", str(bad))
    assert code == 2 and "--stream writes .mp4, .avi, .gif" in one_error_line(err)


class _ClosedCamera:
    """A camera that opens and then delivers nothing (unplugged, or closed by another program)."""

    def __init__(self, index: int) -> None:
        self.index = index

    def isOpened(self) -> bool:
        return True

    def read(self) -> tuple[bool, None]:
        return False, None

    def release(self) -> None:
        pass


def test_closed_camera(ckpt, tmp_path, run_cli, one_error_line, monkeypatch) -> None:
    monkeypatch.setattr(cv2, "VideoCapture", _ClosedCamera)
    argv = ["predict", "--stream", "--ckpt", str(ckpt), "--horizon", "1", "--out", str(tmp_path / "s.gif")]
    code, _, err = run_cli(*argv, "--input", "0")
    assert code == 2 and "camera 0: opened but delivered no frame" in one_error_line(err)


def test_missing_camera_is_one_line_on_the_real_stderr(ckpt, tmp_path) -> None:
    # In a subprocess, so that OpenCV's own C++ logging would show up on stderr if it were not silenced.
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    argv = [
        "--stream",
        "--ckpt",
        str(ckpt),
        "--horizon",
        "1",
        "--out",
        str(tmp_path / "s.gif"),
        "--input",
        "97",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "crevnet.cli", "predict", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("crevnet: error: camera 97: cannot be opened"), done.stderr


def test_side_by_side_lays_the_frame_then_its_predictions_out_with_white_gaps():
    from crevnet.deploy.stream import side_by_side

    frame = torch.full((1, 4, 5), 0.25)
    prediction = torch.stack([torch.full((1, 4, 5), 0.5), torch.full((1, 4, 5), 0.75)])
    out = side_by_side(frame, prediction)
    assert out.shape == (1, 4, 3 * 5 + 2 * 2)
    assert torch.equal(out[:, :, 0:5], frame)
    assert torch.equal(out[:, :, 7:12], prediction[0])
    assert torch.equal(out[:, :, 14:19], prediction[1])
    white = torch.ones(1, 4, 2)
    assert torch.equal(out[:, :, 5:7], white) and torch.equal(out[:, :, 12:14], white)
