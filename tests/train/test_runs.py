"""Every run keeps its own folder; ``runs/<name>`` means the newest run for fit, evaluate and predict."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from crevnet.io.checkpoint import read_checkpoint
from crevnet.io.runs import newest_run
from crevnet.models.checkpoint import load_model, resolve_checkpoint

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _steps(metrics: Path) -> list[int]:
    with metrics.open(newline="") as handle:
        return sorted({int(row["step"]) for row in csv.DictReader(handle) if row.get("train/loss")})


def test_two_runs_then_the_readme_commands(smoke_env: Path, run_cli, tmp_path: Path) -> None:
    """Run the smoke config twice, evaluate ``runs/smoke`` as the README says, then resume ``last``."""
    code, out, _ = run_cli("fit", "--config", str(SMOKE), "--trainer.max_steps=2")
    assert code == 0
    first = smoke_env / "runs" / "smoke" / "version_0"
    assert "runs/smoke/version_0/checkpoints/last.ckpt" in out  # the end-of-fit message names the files
    assert "crevnet evaluate --ckpt runs/smoke" in out
    before = _snapshot(first)
    assert "checkpoints/last.ckpt" in before

    code, out, _ = run_cli("fit", "--config", str(SMOKE), "--trainer.max_steps=4")
    assert code == 0
    second = smoke_env / "runs" / "smoke" / "version_1"
    assert "runs/smoke/version_1/checkpoints/last.ckpt" in out and "a new run" in out
    assert _snapshot(first) == before  # the first run's files are untouched
    assert newest_run(smoke_env / "runs" / "smoke") == second
    assert (smoke_env / "runs" / "smoke" / "latest").resolve() == second.resolve()

    # the README's evaluate form reads the second run's weights
    code, out, err = run_cli(
        "evaluate", "--ckpt", "runs/smoke", "--test-set", "surrogate", "--limit", "2", "--samples", "0",
        "--out", str(tmp_path / "eval"), "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report["checkpoint"] == str((second / "checkpoints" / "last.ckpt").resolve())
    assert load_model("runs/smoke").meta.global_step == 4
    assert resolve_checkpoint("runs/smoke/latest") == Path("runs/smoke/latest/checkpoints/last.ckpt")

    # --ckpt_path last resumes the second run, in its own folder, and says so
    code, out, _ = run_cli("fit", "--config", str(SMOKE), "--trainer.max_steps=6", "--ckpt_path=last")
    assert code == 0
    assert f"resuming run {Path('runs/smoke/version_1')} from step 4" in out
    assert not (smoke_env / "runs" / "smoke" / "version_2").exists()
    assert read_checkpoint(second / "checkpoints" / "last.ckpt")["global_step"] == 6
    assert _steps(second / "metrics.csv") == list(range(6))  # the earlier rows were kept, not deleted
    assert not list(second.glob("metrics.before-step-*"))
    assert _snapshot(first) == before


def test_default_root_dir_decides_where_a_run_writes(smoke_env: Path, run_cli) -> None:
    code, _, _ = run_cli(
        "fit", "--config", str(SMOKE), "--trainer.max_steps=1", "--trainer.default_root_dir=out"
    )
    assert code == 0
    assert (smoke_env / "out" / "smoke" / "version_0" / "checkpoints" / "last.ckpt").is_file()
    assert not (smoke_env / "runs").exists()
    # an explicit logger save_dir still wins
    code, _, _ = run_cli(
        "fit", "--config", str(SMOKE), "--trainer.max_steps=1", "--trainer.default_root_dir=out",
        "--trainer.logger.init_args.save_dir=logs",
    )  # fmt: skip
    assert code == 0
    assert (smoke_env / "logs" / "smoke" / "version_0" / "checkpoints" / "last.ckpt").is_file()


def test_resolve_checkpoint_forms(tmp_path: Path) -> None:
    runs = tmp_path / "runs" / "x"
    for n in (0, 1, 2):
        (runs / f"version_{n}" / "checkpoints").mkdir(parents=True)
    for n in (0, 1):  # version_2 crashed before its first checkpoint
        (runs / f"version_{n}" / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert newest_run(runs) == runs / "version_1"
    assert resolve_checkpoint(runs) == runs / "version_1" / "checkpoints" / "last.ckpt"
    assert resolve_checkpoint(runs / "version_0") == runs / "version_0" / "checkpoints" / "last.ckpt"
    assert (
        resolve_checkpoint(runs / "version_0" / "checkpoints")
        == runs / "version_0" / "checkpoints" / "last.ckpt"
    )
    file = runs / "version_0" / "checkpoints" / "last.ckpt"
    assert resolve_checkpoint(file) == file
    from crevnet.errors import CheckpointError

    with pytest.raises(CheckpointError, match=r"runs/x/version_2 is a folder without a checkpoint"):
        resolve_checkpoint(runs / "version_2")
