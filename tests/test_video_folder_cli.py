"""Colour end to end on a folder of clips: a 2-step ``crevnet fit``, then ``evaluate`` and ``predict``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from crevnet.cli import main as cli_main
from crevnet.io.checkpoint import read_checkpoint


def _is_colour(rgb: np.ndarray) -> bool:
    return bool((rgb[..., 0] != rgb[..., 1]).any())


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, clip_factory) -> dict[str, Path]:
    """A folder of 5 colour clips (4 containers and a PNG folder, 3 sizes) and a 2-step fit on it."""
    base = tmp_path_factory.mktemp("folder_run")
    root = base / "clips"
    for k, (name, size) in enumerate(
        [
            ("a.mp4", (24, 32)),
            ("b.avi", (32, 32)),
            ("c.gif", (24, 32)),
            ("d_frames", (20, 20)),
            ("e.mkv", (24, 32)),
        ]
    ):
        clip_factory.write_clip(root / name, clip_factory.indexed_frames(15 + k, *size, hue=40 * k))
    config = base / "tiny.yaml"
    config.write_text(clip_factory.TINY_FOLDER_CONFIG)
    import os

    cwd = Path.cwd()
    os.chdir(base)
    try:
        assert cli_main(["fit", "--config", str(config), "--data.root", str(root)]) == 0
    finally:
        os.chdir(cwd)
    return {
        "base": base,
        "root": root,
        "config": config,
        "ckpt": base / "runs" / "folder" / "version_0" / "checkpoints" / "last.ckpt",
        "version": base / "runs" / "folder" / "version_0",
    }


def test_fit_records_the_split_and_reports_on_the_held_out_clips(run: dict[str, Path]) -> None:
    checkpoint = read_checkpoint(run["ckpt"])
    assert checkpoint["global_step"] == 2
    split = checkpoint["VideoFolderDataModule"]["split"]
    assert sorted(n for part in split.values() for n in part) == [
        "a.mp4",
        "b.avi",
        "c.gif",
        "d_frames",
        "e.mkv",
    ]
    assert json.loads((run["version"] / "split.json").read_text())["split"] == split
    assert checkpoint["datamodule_hyper_parameters"]["num_frames"] == 5
    assert checkpoint["crevnet"]["frame_size"] == [16, 16]
    report = json.loads((run["version"] / "report" / "metrics.json").read_text())
    assert set(report["baselines"]) == {"zeros", "copy_last", "mean_context"}
    assert report["test_set"].startswith(f"held-out test clips of {run['root']}")
    assert _is_colour(np.asarray(Image.open(run["version"] / "report" / "contact_sheet.png").convert("RGB")))


def test_evaluate_a_folder_scores_the_held_out_clips_beside_three_baselines(
    run: dict[str, Path], run_cli, clip_factory
) -> None:
    out = run["base"] / "eval"
    argv = ["evaluate", "--ckpt", str(run["ckpt"]), "--test-set", str(run["root"]), "--out", str(out)]
    code, stdout, err = run_cli(
        *argv, "--device", "cpu", "--no-progress", "--samples", "1", "--batch-size", "2"
    )
    assert code == 0, err
    assert "is the training folder; scoring its 1 held-out test clip(s) only" in err
    results = json.loads((out / "metrics.json").read_text())
    assert results["context"] == 3 and results["horizon"] == 2  # from the checkpoint's 5-frame windows
    assert set(results["baselines"]) == {"zeros", "copy_last", "mean_context"}
    test_clip = json.loads((run["version"] / "split.json").read_text())["split"]["test"][0]
    frames = 15 + "abcde".index(test_clip[0])
    assert results["num_sequences"] == frames // 5  # disjoint 5-frame windows of the held-out clip
    report = (out / "report.md").read_text()
    assert "mean of context MSE" in report and "averaged over the channels" in report
    sheet = np.asarray(Image.open(out / "contact_sheet.png").convert("RGB"))
    assert _is_colour(sheet)
    assert (out / "per_horizon.png").is_file() and "mean of context MSE" in stdout
    code, _, err = run_cli(*argv, "--device", "cpu", "--no-progress", "--samples", "0", "--all-files")
    assert code == 0 and "held-out" not in err
    assert json.loads((out / "metrics.json").read_text())["num_sequences"] == sum(
        (15 + k) // 5 for k in range(5)
    )


def test_evaluate_converts_a_grey_folder_for_the_colour_model(
    run: dict[str, Path], run_cli, clip_factory
) -> None:
    grey = run["base"] / "grey"
    clip_factory.write_clip(grey / "g.avi", clip_factory.indexed_frames(10, 16, 16, colour=False))
    out = run["base"] / "eval_grey"
    code, _, err = run_cli(
        "evaluate", "--ckpt", str(run["ckpt"]), "--test-set", str(grey), "--out", str(out), "--no-progress"
    )
    assert code == 0, err
    assert "note: 1 grey clip(s) converted grey -> RGB (g.avi)" in err


def test_predict_writes_colour_gif_mp4_and_png(run: dict[str, Path], run_cli) -> None:
    clip = run["root"] / "a.mp4"
    for suffix in (".gif", ".png", ".mp4"):
        out = run["base"] / f"pred{suffix}"
        code, _, err = run_cli(
            "predict", "--ckpt", str(run["ckpt"]), "--input", str(clip), "--horizon", "4", "--out", str(out)
        )
        assert code == 0, err
        assert "resized 24×32 -> 16×22 and cut the centre 16×16" in err  # framed as in training
    gif = Image.open(run["base"] / "pred.gif")
    assert gif.n_frames == 4
    from crevnet.data.video import read_clip

    assert read_clip(run["base"] / "pred.mp4").shape == (4, 3, 16, 16)
    assert _is_colour(np.asarray(Image.open(run["base"] / "pred.png").convert("RGB")))
    pred = read_clip(run["base"] / "pred.gif")
    assert pred.shape == (4, 3, 16, 16) and not torch.equal(pred[:, 0], pred[:, 1])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root.mkdir(), "no clips found; expected video files"),
        (
            lambda root: (root.mkdir(), (root / "x.mp4").write_bytes(b"junk")),
            "none of the 1 clip(s) could be read",
        ),
    ],
    ids=["empty", "unreadable"],
)
def test_fit_and_evaluate_on_a_bad_folder_print_one_line(
    run: dict[str, Path], run_cli, make, message, tmp_path
) -> None:
    root = tmp_path / "bad"
    make(root)
    code, _, err = run_cli("evaluate", "--ckpt", str(run["ckpt"]), "--test-set", str(root), "--no-progress")
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("crevnet: error: ") and message in err
    code, _, err = run_cli("fit", "--config", str(run["config"]), "--data.root", str(root))
    assert code == 2 and "Traceback" not in err
    assert (
        err.strip().splitlines()[-1].startswith("crevnet: error: ")
        and message in err.strip().splitlines()[-1]
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["--data.channels", "1"], "data.channels 1 but the model takes 3 (model.net.encoder.in_channels)"),
        (["--data.size", "[17, 17]"], "data.size [17, 17]: height and width must be multiples of 2"),
        (["--data.num_frames", "3"], "data.num_frames 3 leaves nothing to predict after model.context 3"),
    ],
    ids=["channels", "size", "frames"],
)
def test_fit_names_a_data_setting_the_model_cannot_take(
    run: dict[str, Path], run_cli, override, message
) -> None:
    code, _, err = run_cli("fit", "--config", str(run["config"]), "--data.root", str(run["root"]), *override)
    assert code == 2 and "Traceback" not in err
    assert (
        err.strip().splitlines()[-1] == f"crevnet: error: {message}"
        or message in err.strip().splitlines()[-1]
    )
