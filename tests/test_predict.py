"""``crevnet predict`` end to end on a tiny checkpoint trained here: conversion, formats, errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from crevnet.commands.common import parse_size
from crevnet.data.video import read_clip, write_frames
from crevnet.errors import DataError
from crevnet.inference.predict import predict_clip, prepare_clip
from crevnet.models.checkpoint import load_model, save_model
from crevnet.nn.encoder import EncoderConfig
from crevnet.nn.model import CrevNet, CrevNetConfig
from crevnet.nn.predictor import PredictorConfig

RunCli = Callable[..., tuple[int, str, str]]  # the conftest fixture run_cli

pytestmark = [
    pytest.mark.filterwarnings("ignore:You defined a `validation_step`"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*is deprecated"),
]

CONTEXT = 3  # the context the tiny model is trained with (the CLI's default)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory, fit_tiny) -> Path:
    path = tmp_path_factory.mktemp("predict") / "tiny.ckpt"
    fit_tiny(path, frames=5, size=16)
    return path


@pytest.fixture(scope="module")
def rgb_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A 128×128 RGB clip whose three channels are equal, as (T, H, W, C) uint8 in a .npy."""
    grey = np.random.default_rng(3).integers(0, 256, size=(5, 128, 128), dtype=np.uint8)
    path = tmp_path_factory.mktemp("clips") / "rgb.npy"
    np.save(path, np.repeat(grey[..., None], 3, axis=3))
    return path, grey


def _train_size(ckpt: Path) -> int:
    """The frame size the checkpoint records (16: the clips of the ``ckpt`` fixture), else the 64 default."""
    meta = load_model(ckpt).meta
    assert meta.frame_size == ((16, 16) if meta.frame_size_recorded else (64, 64))
    return meta.frame_size[0]


def _expected_from_rgb(ckpt: Path, grey: np.ndarray, horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Independent conversion: equal RGB channels are the grey image; 128 -> s is an f×f block mean."""
    s = _train_size(ckpt)
    f = 128 // s
    frames = grey.astype(np.float64) / 255.0
    small = frames.reshape(len(frames), s, f, s, f).mean(axis=(2, 4))[-CONTEXT:]  # (K, s, s)
    context = torch.from_numpy(small).float()[:, None]  # (K, 1, s, s)
    with torch.no_grad():
        pred = load_model(ckpt).model.predict(context[None], horizon)[0].clamp(0, 1)
    return context, pred


def test_cli_converts_tells_and_writes_npy(
    ckpt: Path, rgb_clip: tuple[Path, np.ndarray], tmp_path: Path, run_cli: RunCli
) -> None:
    clip, grey = rgb_clip
    out = tmp_path / "pred.npy"
    argv = ["predict", "--ckpt", str(ckpt), "--input", str(clip), "--horizon", "2", "--out", str(out)]
    code, stdout, err = run_cli(*argv, "--device", "cpu")
    assert code == 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1
    s = _train_size(ckpt)
    assert f"resized 128×128 -> {s}×{s} (H×W)" in lines[0] and "converted RGB -> grey" in lines[0]
    assert f"context = last {CONTEXT} frames" in lines[0] and "5 frames" in lines[0]
    assert f"wrote {out}" in stdout
    got = np.load(out)
    assert got.shape == (2, 1, s, s) and got.dtype == np.float32
    _, expected = _expected_from_rgb(ckpt, grey, 2)
    np.testing.assert_allclose(got, expected.numpy(), atol=2e-5)


def test_cli_output_formats(
    ckpt: Path, rgb_clip: tuple[Path, np.ndarray], tmp_path: Path, run_cli: RunCli
) -> None:
    clip, grey = rgb_clip
    context, expected = _expected_from_rgb(ckpt, grey, 3)
    s = _train_size(ckpt)
    base = ["predict", "--ckpt", str(ckpt), "--input", str(clip), "--horizon", "3", "--device", "cpu"]

    assert run_cli(*base, "--out", str(tmp_path / "p.gif"))[0] == 0
    gif = read_clip(tmp_path / "p.gif", grayscale=True)
    assert gif.shape == (3, 1, s, s)
    assert (gif - expected).abs().max() <= 1.01 / 255  # 8-bit grey, exact up to rounding

    assert run_cli(*base, "--out", str(tmp_path / "p.mp4"))[0] == 0
    video = read_clip(tmp_path / "p.mp4", grayscale=True)
    assert video.shape == (3, 1, s, s)
    assert (video - expected).abs().mean() < 0.1  # lossy codec

    assert run_cli(*base, "--out", str(tmp_path / "p.png"))[0] == 0
    with Image.open(tmp_path / "p.png") as sheet:
        # Two rows (context, prediction) of s×s frames drawn at scale 2 with 2-pixel gaps.
        assert sheet.size[1] == 2 + 2 * (2 * s + 2)

    assert run_cli(*base, "--out", str(tmp_path / "c.npy"), "--with-context")[0] == 0
    both = torch.from_numpy(np.load(tmp_path / "c.npy"))
    assert both.shape == (CONTEXT + 3, 1, s, s)
    assert torch.allclose(both[:CONTEXT], context, atol=2e-6)
    assert torch.allclose(both[CONTEXT:], expected, atol=2e-5)


def test_folder_input_keep_size(ckpt: Path, tmp_path: Path, run_cli: RunCli) -> None:
    frames = torch.rand(4, 1, 42, 42, generator=torch.Generator().manual_seed(5))
    write_frames(frames, tmp_path / "frames")
    out = tmp_path / "keep.npy"
    argv = ["predict", "--ckpt", str(ckpt), "--input", str(tmp_path / "frames"), "--horizon", "2"]
    code, _, err = run_cli(*argv, "--out", str(out), "--size", "keep", "--context", "4")
    assert code == 0, err
    assert "used as they are; context = last 4 frames" in err
    stored = read_clip(tmp_path / "frames")  # the 8-bit PNGs
    with torch.no_grad():
        expected = load_model(ckpt).model.predict(stored[None], 2)[0].clamp(0, 1)
    np.testing.assert_allclose(np.load(out), expected.numpy(), atol=1e-6)


def test_python_api(tiny_net, ckpt: Path) -> None:
    s = _train_size(ckpt)
    clip = torch.rand(6, 1, s, s, generator=torch.Generator().manual_seed(2))
    loaded = load_model(ckpt)
    with torch.no_grad():
        expected = loaded.model.predict(clip[-CONTEXT:][None], 4)[0].clamp(0, 1)
    assert torch.equal(predict_clip(ckpt, clip, 4), expected)  # a path: trained context and size
    assert torch.equal(predict_clip(loaded, clip, 4), expected)
    pred, prepared = predict_clip(loaded, clip, 4, context=5, return_prepared=True)
    assert prepared.notes == () and torch.equal(prepared.context, clip[-5:])
    assert pred.shape == (4, 1, s, s)
    with torch.no_grad():  # another size is resized to the training size
        resized = loaded.model.predict(clip[None, -CONTEXT:], 1)[0].clamp(0, 1)
    big = clip.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # 2×2 blocks: area-resize is exact
    assert torch.allclose(predict_clip(loaded, big, 1), resized, atol=1e-6)
    # A bare model keeps the clip's size (a multiple of its downsampling) and observes 10 frames.
    bare = CrevNet(tiny_net).eval()
    odd = torch.rand(10, 3, 30, 46)
    out, prepared = predict_clip(bare, odd, 2, return_prepared=True)
    assert out.shape == (2, 1, 30, 46) and prepared.notes == ("converted RGB -> grey",)
    assert predict_clip(bare, odd, 1, size=(16, 32)).shape == (1, 1, 16, 32)
    # A 3-channel model gets grey frames repeated on three channels.
    colour = CrevNetConfig(
        encoder=EncoderConfig(
            in_channels=3, dims=2, init_downsample=2, stages=(1,), strides=(1,), channels=(6,)
        ),
        predictor=PredictorConfig(layers=1, cell="conv_lstm"),
        window=1,
    )
    grey = torch.rand(2, 1, 8, 8)
    prepared = prepare_clip(grey, 3, 2, "keep", 2)
    assert prepared.context.shape == (2, 3, 8, 8) and torch.equal(prepared.context[:, 2], grey[:, 0])
    assert predict_clip(CrevNet(colour).eval(), grey, 1, context=2).shape == (1, 3, 8, 8)


def test_frames_of_another_aspect_ratio_are_framed_as_the_training_frames_were(
    ckpt: Path, tmp_path: Path, run_cli: RunCli
) -> None:
    s = _train_size(ckpt)
    wide = torch.rand(CONTEXT, 1, s, 2 * s, generator=torch.Generator().manual_seed(4))
    centre = wide[..., s // 2 : s // 2 + s]  # height fits already: the centre cut is a plain slice
    stretched = wide.view(CONTEXT, 1, s, s, 2).mean(-1)  # area resize of 2 columns into 1
    loaded = load_model(ckpt)
    assert loaded.meta.framing is None  # trained on generated square frames: nothing recorded

    def fed(resize: str, model=loaded) -> torch.Tensor:
        return predict_clip(model, wide, 1, return_prepared=True, resize=resize)[1].context

    torch.testing.assert_close(fed("train"), centre, rtol=0, atol=1e-6)  # nothing recorded: the cut
    torch.testing.assert_close(fed("center_crop"), centre, rtol=0, atol=1e-6)
    torch.testing.assert_close(fed("resize"), stretched, rtol=0, atol=1e-6)
    note = predict_clip(loaded, wide, 1, return_prepared=True)[1].notes[0]
    assert note == f"resized {s}×{2 * s} -> {s}×{2 * s} and cut the centre {s}×{s} (H×W)"
    # A file that records stretched training frames is fed stretched frames by default.
    save_model(loaded.model, tmp_path / "stretch.ckpt", CONTEXT, (s, s), framing="resize")
    stretch = load_model(tmp_path / "stretch.ckpt")
    assert stretch.meta.framing == "resize"
    torch.testing.assert_close(fed("train", stretch), stretched, rtol=0, atol=1e-6)
    torch.testing.assert_close(fed("center_crop", stretch), centre, rtol=0, atol=1e-6)
    # A video folder run records its resize mode with its data settings; random crops are scored centred.
    checkpoint = torch.load(ckpt, weights_only=True)
    for mode, expected in (("random_crop", "center_crop"), ("resize", "resize"), ("other", None)):
        checkpoint["datamodule_hyper_parameters"] = {"resize": mode, "size": [s, s]}
        torch.save(checkpoint, tmp_path / "folder.ckpt")
        assert load_model(tmp_path / "folder.ckpt").meta.framing == expected
    with pytest.raises(DataError, match=r"--resize 'fit': expected one of train, resize, center_crop"):
        predict_clip(loaded, wide, 1, resize="fit")
    with pytest.raises(ValueError, match="framing 'crop'"):
        save_model(loaded.model, tmp_path / "bad.ckpt", framing="crop")
    # The command line: --resize, and the note on stderr.
    clip = tmp_path / "wide.npy"
    np.save(clip, (wide[:, 0].numpy() * 255).round().astype(np.uint8))
    for resize in ("train", "resize"):
        out = tmp_path / f"{resize}.npy"
        argv = ["predict", "--ckpt", str(ckpt), "--input", str(clip), "--out", str(out), "--horizon", "1"]
        code, _, err = run_cli(*argv, "--resize", resize, "--device", "cpu")
        assert code == 0, err
        cut = "cut the centre" in err
        assert cut == (resize == "train"), err
    code, _, err = run_cli(*argv, "--resize", "fit")
    assert code == 2 and "--resize: invalid choice: 'fit'" in err


def test_prepare_and_size_errors() -> None:
    assert parse_size("48x64") == (48, 64) and parse_size("keep") == "keep"
    with pytest.raises(DataError, match="expected 'train', 'keep' or HxW"):
        parse_size("big")
    with pytest.raises(DataError, match="multiples of 4"):
        prepare_clip(torch.rand(3, 1, 8, 8), 1, 4, (10, 12), 2)
    with pytest.raises(DataError, match=r"2 frame\(s\), too short: the model observes 3 frames"):
        prepare_clip(torch.rand(2, 1, 8, 8), 1, 2, "keep", 3)
    with pytest.raises(DataError, match=r"expected a \(T, C, H, W\) tensor"):
        prepare_clip(torch.rand(3, 8, 8), 1, 2, "keep", 2)
    with pytest.raises(DataError, match=r"in \[0, 1\]"):
        prepare_clip(torch.full((3, 1, 8, 8), 2.0), 1, 2, "keep", 2)


def test_bad_inputs_give_one_line_and_exit_2(
    ckpt: Path,
    rgb_clip: tuple[Path, np.ndarray],
    tmp_path: Path,
    run_cli: RunCli,
    one_error_line: Callable[[str], str],
) -> None:
    clip, _ = rgb_clip
    out = tmp_path / "p.gif"

    def predict(*extra: str, ckpt_path: Path = ckpt, clip_path: Path = clip, target: Path = out) -> str:
        argv = ["predict", "--ckpt", str(ckpt_path), "--input", str(clip_path), "--out", str(target)]
        code, _, err = run_cli(*argv, "--horizon", "2", "--device", "cpu", *extra)
        assert code == 2
        return one_error_line(err)

    assert "checkpoint not found" in predict(ckpt_path=tmp_path / "missing.ckpt")
    torch.save({"state_dict": {}, "hyper_parameters": {"lr": 1.0}}, tmp_path / "other.ckpt")
    assert "no crevnet model config" in predict(ckpt_path=tmp_path / "other.ckpt")
    assert "not a torch checkpoint" in predict(ckpt_path=clip)

    short = tmp_path / "short.npy"
    np.save(short, np.zeros((2, 64, 64), np.uint8))
    line = predict(clip_path=short)
    assert "short.npy: 2 frame(s), too short: the model observes 3 frames" in line

    broken = tmp_path / "broken.gif"
    broken.write_bytes(b"GIF89a but not really")
    assert "broken.gif: not a readable GIF" in predict(clip_path=broken)
    assert "no such file" in predict(clip_path=tmp_path / "absent.mp4")

    line = predict(ckpt_path=tmp_path / "missing.ckpt", target=tmp_path / "p.avi")  # checked first
    assert "unknown output type '.avi'; expected one of .gif, .mp4, .png, .npy" in line
    assert "--size 'huge'" in predict("--size", "huge")
    assert "multiples of 2" in predict("--size", "33x33")
    assert "--horizon 0" in predict("--horizon", "0")
    assert not out.exists()
