"""``benchmarks/gpu_check.sh``, the one script a lent GPU machine runs, works end to end on its CPU path
(``GPU_CHECK_CPU=1``: the same steps with tiny shapes), so a GPU session does not spend its minutes on a
broken script. Every step must leave its output and no failure line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from crevnet.models.checkpoint import config_to_dict, load_model

REPO = Path(__file__).resolve().parents[1]
MNIST = REPO.parent / "shared" / "data" / "mnist"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_the_gpu_check_script_runs_every_step_on_the_cpu(tmp_path: Path) -> None:
    if not (MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"genuine MNIST files not found in {MNIST}")
    out = tmp_path / "out"
    env = {
        **os.environ,
        "GPU_CHECK_CPU": "1",
        "OUT": str(out),
        "CREVNET_DATA_DIR": str(MNIST),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    done = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"gpu_check done: {out}" in done.stdout
    env_txt = (out / "env.txt").read_text()
    assert "failed" not in env_txt and "stopped" not in env_txt, env_txt
    assert f"torch {torch.__version__}" in env_txt

    # 0. the bundled model fine-tuned: a checkpoint of the bundled config, trained 2 steps, and its report
    run = out / "runs" / "quickstart" / "version_0"
    tuned = load_model(run / "checkpoints" / "last.ckpt")
    bundled = load_model("mmnist-cpu")
    assert config_to_dict(tuned.config) == config_to_dict(bundled.config)
    assert tuned.meta.global_step == 2
    assert "init_from: mmnist-cpu" in (run / "config.yaml").read_text()
    report = json.loads((run / "report" / "metrics.json").read_text())
    assert (report["num_sequences"], report["global_step"], report["surrogate"]) == (2, 2, True)

    # 1, 1b, 2: the benchmarks' JSON rows
    for name in ("bench_fp32.jsonl", "bench_bf16.jsonl"):
        rows = _rows(out / name)
        assert rows and all(row["device"] == "cpu" for row in rows), name
    modes = {row["mode"] for row in _rows(out / "memory.jsonl") if "mode" in row}
    assert {"off", "encoder", "full"} <= modes
    assert (out / "memory.png").stat().st_size > 0
    assert [row["backend"] for row in _rows(out / "inference.jsonl")] == ["eager"]
