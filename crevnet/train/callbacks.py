"""Lightning callbacks of ``crevnet fit``: sample pictures during training and the end-of-fit report."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only

if TYPE_CHECKING:
    from crevnet.evaluation.result import EvaluationResult

__all__ = ["FitReport", "SampleLogger", "WallClockLog", "run_dir", "within_budget"]


def run_dir(trainer: L.Trainer) -> Path:
    """The folder of this run's logs (the logger's version folder), or ``default_root_dir``."""
    logger = trainer.logger
    if logger is not None and getattr(logger, "log_dir", None):
        return Path(logger.log_dir)
    return Path(trainer.default_root_dir)


def within_budget(spent_s: float, cost_s: float, elapsed_s: float, fraction: float) -> bool:
    """Whether ``cost_s`` more seconds of side work keep the side work at most ``fraction`` of the time.

    ``spent_s`` is the side work so far and ``elapsed_s`` the training wall time so far (side work
    included): ``spent_s + cost_s <= fraction * (elapsed_s + cost_s)``.
    """
    return spent_s + cost_s <= fraction * (elapsed_s + cost_s)


class SampleLogger(L.Callback):
    """Every ``every_n_steps`` optimizer steps, predict a few validation clips and save the pictures.

    Writes ``<run dir>/samples/step_<N>.png`` (contact sheet: truth and prediction rows) and
    ``step_<N>.gif``, and sends the PNG to a wandb logger when one is attached.

    The pictures take at most ``max_fraction`` of the training wall time: a drawing that would take
    the time spent on them above it (its cost estimated by the last one's) is skipped
    (:func:`within_budget`). They never change what the model trains on (they predict fixed
    validation clips without gradients and draw no random numbers).

    Args:
        every_n_steps: interval in optimizer steps (0 disables).
        num_clips: clips drawn.
        gif: also write the GIF.
        max_fraction: the most of the training wall time the pictures may take (None: no bound).
    """

    def __init__(
        self,
        every_n_steps: int = 500,
        num_clips: int = 4,
        gif: bool = True,
        max_fraction: float | None = 0.01,
    ) -> None:
        super().__init__()
        if every_n_steps < 0 or num_clips < 1:
            raise ValueError(
                f"SampleLogger: need every_n_steps >= 0 and num_clips >= 1, got {every_n_steps}, {num_clips}"
            )
        if max_fraction is not None and not 0.0 < max_fraction <= 1.0:
            raise ValueError(f"SampleLogger: max_fraction must be in (0, 1], got {max_fraction}")
        self.every_n_steps = every_n_steps
        self.num_clips = num_clips
        self.gif = gif
        self.max_fraction = max_fraction
        self.spent_s = 0.0  # wall time spent drawing in this fit
        self.last_cost_s = 0.0  # the last drawing's
        self.skipped: list[int] = []  # steps whose drawing the budget skipped
        self._clips: torch.Tensor | None = None
        self._started: float | None = None
        self._clock = time.monotonic

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start the clock the budget is measured against."""
        self._started = self._clock()
        self.spent_s = 0.0

    def _get_clips(self, trainer: L.Trainer) -> torch.Tensor | None:
        if self._clips is None:
            datamodule = trainer.datamodule
            if datamodule is None or not hasattr(datamodule, "val_dataloader"):
                return None
            batch = next(iter(datamodule.val_dataloader()))
            self._clips = batch[: self.num_clips].clone()
        return self._clips

    @rank_zero_only
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Draw the samples when the step count reaches a multiple of ``every_n_steps``."""
        del outputs, batch, batch_idx
        step = trainer.global_step
        if not self.every_n_steps or step == 0 or step % self.every_n_steps:
            return
        now = self._clock()
        elapsed = now - (now if self._started is None else self._started)
        if self.max_fraction is not None and not within_budget(
            self.spent_s, self.last_cost_s, elapsed, self.max_fraction
        ):
            self.skipped.append(step)
            return
        clips = self._get_clips(trainer)
        if clips is None:
            return
        self.write_samples(trainer, pl_module, clips.to(pl_module.device), step)
        self.last_cost_s = self._clock() - now
        self.spent_s += self.last_cost_s

    def write_samples(
        self, trainer: L.Trainer, pl_module: L.LightningModule, clips: torch.Tensor, step: int
    ) -> Path:
        """Predict ``clips`` and write the PNG (and GIF); returns the PNG's path."""
        from crevnet.data.video import write_contact_sheet, write_gif
        from crevnet.evaluation.report import prediction_grid
        from crevnet.models.mode import evaluating

        with evaluating(pl_module):
            pred, target = pl_module.predict_future(clips)
        pred, target, clips = pred.float().cpu(), target.cpu(), clips.cpu()
        out = run_dir(trainer) / "samples"
        png = out / f"step_{step:07d}.png"
        rows: list[tuple[str, torch.Tensor]] = []
        for i in range(len(clips)):
            rows += [(f"{i} truth", target[i]), (f"{i} pred", pred[i].clamp(0.0, 1.0))]
        write_contact_sheet(rows, png)
        if self.gif:
            context = clips.shape[1] - pred.shape[1]
            write_gif(prediction_grid(clips, pred, context), out / f"step_{step:07d}.gif")
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                logger.log_image(key="samples", images=[str(png)], step=step)
        return png


class WallClockLog(L.Callback):
    """Log the training wall time (minutes, including resumed runs) so metrics can be plotted against it."""

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Log ``time/train_minutes`` next to the validation metrics."""
        seconds = getattr(pl_module, "train_seconds", None)
        if callable(seconds) and not trainer.sanity_checking:
            pl_module.log("time/train_minutes", seconds() / 60.0, rank_zero_only=True)


class FitReport(L.Callback):
    """At the end of ``fit``: evaluate on a test set next to the baselines and write the report.

    Calls :func:`crevnet.train.end_of_fit.report_model` on rank 0, which writes the same report folder as
    ``crevnet evaluate`` (``metrics.json``, ``report.md`` with a verdict weighing every metric,
    ``per_horizon.png``, ``contact_sheet.png``, ``prediction.gif``, ``samples/``) into ``out_dir``
    (default: ``<run dir>/report``), whole or not at all.

    Args:
        test_set: "surrogate", "standard", a path to a (T, N, H, W) uint8 ``.npy``, or None: the
            data module's own test set (``setup("test")`` then ``test_data``; e.g. the held-out
            clips of a :class:`~crevnet.data.VideoFolderDataModule`).
        num_sequences: first N test sequences (None: all).
        batch_size: clips per forward pass.
        out_dir: report folder (default: the run's log folder + ``/report``).
        data_dir: data directory (default: the datamodule's, else ``$CREVNET_DATA_DIR``).
    """

    def __init__(
        self,
        test_set: str | None = "surrogate",
        num_sequences: int | None = 500,
        batch_size: int = 50,
        out_dir: str | None = None,
        data_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.test_set = test_set
        self.num_sequences = num_sequences
        self.batch_size = batch_size
        self.out_dir = out_dir
        self.data_dir = data_dir
        self.report: EvaluationResult | None = None

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Evaluate the final weights and write the report; print where it went."""
        from crevnet.evaluation.report import verdict
        from crevnet.nn.model import DEFAULT_CONTEXT
        from crevnet.train.end_of_fit import report_model

        if trainer.interrupted:
            return
        out = Path(self.out_dir) if self.out_dir else run_dir(trainer) / "report"
        data_dir = self.data_dir or getattr(trainer.datamodule, "data_dir", None)
        fit_seconds = pl_module.train_seconds() if hasattr(pl_module, "train_seconds") else None
        start = time.monotonic()
        test_set = self.test_set
        if test_set is None:  # the data module's own test set
            trainer.datamodule.setup("test")
            test_set = trainer.datamodule.test_data
        self.report = report_model(
            pl_module.net,
            out,
            test_set=test_set,
            num_sequences=self.num_sequences,
            data_dir=data_dir,
            context=getattr(pl_module, "context", DEFAULT_CONTEXT),
            batch_size=self.batch_size,
            extra={
                "global_step": trainer.global_step,
                "train_seconds": fit_seconds,
                "threads": torch.get_num_threads(),
                "load_average": list(os.getloadavg()),
            },
        )
        report = self.report
        model, zeros, last = report.model, report.baselines["zeros"], report.baselines["copy_last"]
        ratio = report.mse_ratio("zeros")
        print(
            f"crevnet: report in {out} ({report.test_set}, {time.monotonic() - start:.0f} s): "
            f"MSE {model.mse:.1f} (zeros {zeros.mse:.1f}, copy-last {last.mse:.1f}; "
            f"{ratio:.3f} × zeros), SSIM {model.ssim:.3f} "
            f"(zeros {zeros.ssim:.3f}, copy-last {last.ssim:.3f})"
        )
        print("crevnet: " + " ".join(verdict(report)))
        for logger in trainer.loggers:
            logger.log_metrics(
                {"report/mse": model.mse, "report/ssim": model.ssim, "report/mse_vs_zeros": ratio},
                step=trainer.global_step,
            )
