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


def test_prepare_opencv_videos_writes_a_disjoint_split(tmp_path: Path, clip_factory, capsys) -> None:
    src = tmp_path / "examples" / "data"
    clip_factory.write_clip(src / "vtest.avi", clip_factory.indexed_frames(20, 24, 32))
    clip_factory.write_clip(src / "Megamind.avi", clip_factory.indexed_frames(6, 22, 30))
    clip_factory.write_clip(src / "tree.avi", clip_factory.indexed_frames(5, 24, 32))
    spec = importlib.util.spec_from_file_location(
        "bench_prepare", REPO / "benchmarks" / "prepare_opencv_videos.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "clips"
    assert bench.main(["--src", str(src), "--out", str(out), "--short-side", "12"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["source"], line["frames"]) for line in lines] == [
        ("vtest.avi", [0, 14]),
        ("vtest.avi", [14, 17]),
        ("vtest.avi", [17, 20]),
        ("Megamind.avi", [0, 6]),
        ("tree.avi", [0, 5]),
    ]
    assert lines[0]["size"] == [12, 16]  # shorter side 12, aspect kept
    from crevnet.data.clips import probe_clip, read_frames

    test = probe_clip(out / "test" / "vtest_0017-0019")
    assert test.frames == 3
    assert [clip_factory.frame_index(f.transpose(2, 0, 1)) for f in read_frames(test, [0, 1, 2])] == [
        17,
        18,
        19,
    ]
    assert sorted(p.name for p in out.iterdir()) == ["test", "train", "val"]


def test_learning_curve_scores_with_the_data_dir_the_fit_was_given(monkeypatch) -> None:
    # a Fashion-MNIST run points --data.data_dir at its files; the scoring must read the same folder
    spec = importlib.util.spec_from_file_location(
        "bench_learning_curve_dd", Path(__file__).resolve().parents[1] / "benchmarks" / "learning_curve.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench._data_dir(["--data.data_dir", "/x/fashion", "--torch_threads", "1"]) == "/x/fashion"
    assert bench._data_dir(["--data.data_dir=/y"]) == "/y"
    assert bench._data_dir(["--torch_threads", "1"]) is None
    seen = {}

    def fake_load(spec, data_dir, num, images):
        seen.update(spec=spec, data_dir=data_dir, images=images)
        return [0] * num

    monkeypatch.setattr("crevnet.data.testset.load_test_set", fake_load)
    test, context, horizon = bench._test_set(
        "surrogate", "fashion_mnist", 3, Path("unused.ckpt"), "/x/fashion"
    )
    assert seen == {"spec": "surrogate", "data_dir": "/x/fashion", "images": "fashion_mnist"}
    assert (len(test), context, horizon) == (3, 10, 10)


def test_learning_curve_scores_the_final_weights_once(tmp_path: Path) -> None:
    # the timer's checkpoint can land on the last step, which the end-of-fit report already scores
    spec = importlib.util.spec_from_file_location(
        "bench_learning_curve_final", REPO / "benchmarks" / "learning_curve.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for step in (1580, 305, 3089):
        (tmp_path / f"t-step={step}.ckpt").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    names = [p.name for p in bench._curve_checkpoints(tmp_path, 3089)]
    assert names == ["t-step=305.ckpt", "t-step=1580.ckpt"]
    names = [p.name for p in bench._curve_checkpoints(tmp_path, None)]  # no report: all of them
    assert names == ["t-step=305.ckpt", "t-step=1580.ckpt", "t-step=3089.ckpt"]
