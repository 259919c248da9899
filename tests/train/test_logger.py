"""Lightning's run files (metrics.csv, hparams.yaml, config.yaml) go through crevnet's atomic writer."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import yaml
from lightning.pytorch.loggers import CSVLogger

import crevnet.io.atomic as atomic
import crevnet.train.logger as logger_module
from crevnet.errors import OutputError
from crevnet.train.logger import AtomicCSVLogger

ROWS = [({"train/loss": 1.5}, 0), ({"train/loss": 1.25}, 1), ({"val/mse": 30.0, "train/loss": 1.0}, 2)]


def _log(logger: CSVLogger) -> None:
    for metrics, step in ROWS:
        logger.log_metrics(metrics, step)
        logger.save()  # a flush after every row: the header grows on the third
    logger.log_hyperparams({"lr": 0.001, "net": {"window": 1}})


def test_same_files_as_lightnings_csv_logger(tmp_path: Path) -> None:
    ours, theirs = AtomicCSVLogger(tmp_path / "a", name="run"), CSVLogger(tmp_path / "b", name="run")
    _log(ours)
    _log(theirs)
    for name in ("metrics.csv", "hparams.yaml"):
        assert (Path(ours.log_dir) / name).read_text() == (Path(theirs.log_dir) / name).read_text()
    assert Path(ours.log_dir) == tmp_path / "a" / "run" / "version_0"
    text = (Path(ours.log_dir) / "metrics.csv").read_text().splitlines()
    assert text[0] == "step,train/loss,val/mse" and text[-1] == "2,1.0,30.0" and len(text) == 4
    assert yaml.safe_load((Path(ours.log_dir) / "hparams.yaml").read_text())["net"] == {"window": 1}


def _debris(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if atomic.TEMP_MARK in p.name)


def test_a_failed_metrics_write_leaves_the_previous_file_whole(tmp_path: Path, monkeypatch) -> None:
    logger = AtomicCSVLogger(tmp_path, name="run")
    logger.log_metrics({"train/loss": 1.5}, 0)
    logger.save()
    metrics = Path(logger.log_dir) / "metrics.csv"
    before = metrics.read_bytes()
    real_write = os.write

    def half_then_full(fd: int, data) -> int:  # the disk fills up in the middle of the new file
        real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "_os_write", half_then_full)
    for step in range(1, 50):
        logger.log_metrics({"train/loss": 1.0 / step, "val/mse": 3.0}, step)
    with pytest.raises(OutputError, match=r"metrics\.csv.*disk full"):
        logger.save()
    assert metrics.read_bytes() == before  # Lightning's in-place append would leave half a row here
    assert _debris(metrics.parent) == []


def test_a_failed_hparams_write_leaves_the_previous_file_whole(tmp_path: Path, monkeypatch) -> None:
    logger = AtomicCSVLogger(tmp_path, name="run")
    logger.log_hyperparams({"lr": 0.001})
    hparams = Path(logger.log_dir) / "hparams.yaml"
    before = hparams.read_text()

    def partial(path, params) -> None:  # writes part of the YAML, then the device fails
        Path(path).write_text("lr: 0.0")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(logger_module, "save_hparams_to_yaml", partial)
    with pytest.raises(OutputError, match=r"hparams\.yaml.*disk full"):
        logger.log_hyperparams({"lr": 0.5, "seed": 1})
    assert hparams.read_text() == before and _debris(hparams.parent) == []
