"""crevnet.train.resume without training: which file ``--ckpt_path`` means, the budget check, the metrics."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from crevnet.errors import CheckpointError, ConfigError
from crevnet.train.resume import (
    ResumePoint,
    check_budget,
    find_resume_point,
    merge_metrics,
    set_aside_metrics,
)


def _point(epoch: int, step: int) -> ResumePoint:
    return ResumePoint(
        path=Path("runs/x/version_0/checkpoints/last.ckpt"), step=step, epoch=epoch, hparams={}
    )


@pytest.mark.parametrize(
    ("max_epochs", "max_steps"),
    [(None, None), (-1, -1), (5, None), (6, 10), (None, 10), (None, 11)],
)
def test_a_budget_at_or_above_the_checkpoint_passes(max_epochs, max_steps) -> None:
    check_budget(_point(epoch=5, step=10), max_epochs, max_steps)


def test_a_budget_below_the_checkpoint_names_what_to_pass() -> None:
    with pytest.raises(ConfigError) as err:
        check_budget(_point(epoch=5, step=10), 2, None)
    assert str(err.value) == (
        f"--trainer.max_epochs 2: the checkpoint {Path('runs/x/version_0/checkpoints/last.ckpt')} is already "
        "at epoch 5; pass --trainer.max_epochs 6 or more to train further, or start a new run without "
        "--ckpt_path"
    )
    with pytest.raises(ConfigError, match=r"max_steps 9: .* already at step 10; pass --trainer.max_steps 11"):
        check_budget(_point(epoch=5, step=10), None, 9)


def test_last_without_a_run_and_a_foreign_file_are_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"no run under .* holds checkpoints/last\.ckpt"):
        find_resume_point("last", tmp_path / "runs" / "x", {}, fit=True)
    text = tmp_path / "x.ckpt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match=re.escape(str(text))):
        find_resume_point(str(text), tmp_path, {}, fit=True)


def test_last_continues_the_newest_run_in_its_own_folder(tmp_path: Path, fit_tiny, tiny_net) -> None:
    import dataclasses

    root = tmp_path / "runs" / "x"
    for version in (0, 1):
        (root / f"version_{version}" / "checkpoints").mkdir(parents=True)
    fit_tiny(root / "version_1" / "checkpoints" / "last.ckpt")
    net = dataclasses.asdict(tiny_net)
    point = find_resume_point("last", root, net, fit=True)
    assert point.path == root / "version_1" / "checkpoints" / "last.ckpt"
    assert point.run == root / "version_1" and point.step == 2
    assert point.hparams["lr"] == 0.01 and "_instantiator" not in point.hparams
    # validate/test read the same file but start no run in it; a file by name is not "continued"
    assert find_resume_point("last", root, net, fit=False).run is None
    assert find_resume_point(str(point.path), root, net, fit=True).run is None
    with pytest.raises(CheckpointError, match=r"predictor\.layers"):
        find_resume_point("last", root, {**net, "predictor": {**net["predictor"], "layers": 3}}, fit=True)


def test_metrics_set_aside_come_back_in_front(tmp_path: Path) -> None:
    def write(path: Path, rows: list[dict[str, str]]) -> None:
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    assert set_aside_metrics(tmp_path, 4) is None  # nothing logged yet: nothing to move
    write(tmp_path / "metrics.csv", [{"step": "0", "train/loss": "1"}, {"step": "3", "train/loss": "0.5"}])
    aside = set_aside_metrics(tmp_path, 4)
    assert aside == tmp_path / "metrics.before-step-000000004.csv" and not (tmp_path / "metrics.csv").exists()
    write(tmp_path / "metrics.csv", [{"step": "4", "val/mse": "9"}])
    merge_metrics(tmp_path)
    with (tmp_path / "metrics.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["step"] for r in rows] == ["0", "3", "4"]
    assert rows[0]["train/loss"] == "1" and rows[2]["val/mse"] == "9" and rows[2]["train/loss"] == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]
