"""Lightning's CSV logger, with its files written through crevnet's one atomic writer.

Lightning's ``CSVLogger`` appends to ``metrics.csv`` (and rewrites it in place when a new column
appears) and writes ``hparams.yaml`` in place: a crash, a ``kill -9`` or a full disk in the middle
leaves half a file. :class:`AtomicCSVLogger` is the same logger (same arguments, folders and file
format) whose writer keeps the run's rows and writes the whole ``metrics.csv`` with
:func:`crevnet.io.atomic.atomic_write_bytes` at every flush, and ``hparams.yaml`` through
:func:`crevnet.io.atomic.atomic_path`: a reader sees the previous complete file or the new one, and a
failed write names the file and the reason (:class:`~crevnet.errors.OutputError`). The configs under
``configs/`` and ``crevnet fit``'s default name it as ``crevnet.train.logger.AtomicCSVLogger``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.core.saving import save_hparams_to_yaml
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from crevnet.io.atomic import atomic_path, atomic_write_bytes

__all__ = ["AtomicCSVLogger", "AtomicExperimentWriter"]


class AtomicExperimentWriter(ExperimentWriter):
    """Lightning's CSV experiment writer; every file it writes is written whole, atomically."""

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir)
        self._rows: list[dict[str, Any]] = []  # every row of this run so far, in order

    def save(self) -> None:
        """Write ``metrics.csv`` whole: the header (all columns so far) and every row so far."""
        if not self.metrics:
            return
        self._record_new_keys()
        self._rows += self.metrics
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=self.metrics_keys)
        writer.writeheader()
        writer.writerows(self._rows)
        atomic_write_bytes(self.metrics_file_path, text.getvalue().encode())
        self.metrics = []

    def log_hparams(self, params: dict[str, Any]) -> None:
        """Record ``params`` and write ``hparams.yaml`` (Lightning's YAML) atomically."""
        self.hparams.update(params)
        with atomic_path(Path(self.log_dir) / self.NAME_HPARAMS_FILE) as tmp:
            save_hparams_to_yaml(tmp, self.hparams)


class AtomicCSVLogger(CSVLogger):
    """``lightning.pytorch.loggers.CSVLogger`` whose files are written by :class:`AtomicExperimentWriter`."""

    @property
    @rank_zero_experiment
    def experiment(self) -> AtomicExperimentWriter:
        """The writer (created on first use, on rank 0 only, as Lightning's)."""
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AtomicExperimentWriter(log_dir=self.log_dir)
        return self._experiment
