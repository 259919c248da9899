"""``benchmarks/learning_curve.py`` on a folder of clips (the run behind the README's opencv-doc figure)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_learning_curve_scores_the_held_out_clips_against_three_baselines(
    tmp_path: Path, clip_factory, monkeypatch
) -> None:
    root = tmp_path / "clips"
    for k, name in enumerate(("a.avi", "b.mp4", "c.gif", "d.mkv")):
        clip_factory.write_clip(root / name, clip_factory.indexed_frames(20 + k, 24, 32, hue=50 * k))
    config = tmp_path / "tiny.yaml"
    config.write_text(clip_factory.TINY_FOLDER_CONFIG)
    spec = importlib.util.spec_from_file_location(
        "bench_learning_curve", REPO / "benchmarks" / "learning_curve.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.chdir(tmp_path)
    argv = ["--config", str(config), "--name", "folder", "--test-set", str(root), "--every", "10"]
    argv += [
        "--results-dir",
        str(tmp_path / "results"),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--batch-size",
        "2",
    ]
    assert bench.main([*argv, f"--data.root={root}"]) == 0
    result = json.loads((tmp_path / "results" / "learning_curve_folder.json").read_text())
    assert result["test_set"].startswith(f"held-out test clips of {root}")
    (point,) = result["points"]  # the end-of-fit report's, on the same windows
    assert point["step"] == 2
    assert {"zeros_mse", "copy_last_mse", "mean_context_mse"} <= set(point)
    assert (tmp_path / "results" / "learning_curve_folder.png").stat().st_size > 0
