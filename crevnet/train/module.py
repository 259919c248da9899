"""``CrevNetModule``: the thin LightningModule around the pure :class:`crevnet.nn.CrevNet`.

It holds no model code: the loss is ``CrevNet.loss`` (the paper's summed per-window MSE), validation
and test predictions are ``CrevNet.predict`` and the metrics come from
:mod:`crevnet.evaluation.metrics`. What it adds is training glue: Adam, the learning-rate schedule and
the scheduled-sampling curriculum as functions of training progress, logging, and a check that a
checkpoint belongs to the same model.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Timer
from torch.optim.lr_scheduler import LambdaLR

from crevnet.errors import CheckpointError
from crevnet.evaluation.metrics import frame_mse, frame_ssim
from crevnet.io.checkpoint import check_compatible, config_diff, config_to_dict
from crevnet.models.checkpoint import load_model
from crevnet.nn.model import DEFAULT_CONTEXT, CrevNet, CrevNetConfig, check_memory_saving, sliding_windows
from crevnet.train.loss import LossWeights, prediction_loss
from crevnet.train.schedule import LRSchedule, SamplingCurriculum

__all__ = ["CrevNetModule", "config_diff", "config_to_dict"]

_log = logging.getLogger(__name__)

LOSSY_ROUND_TRIP = 1e-3
"""A bijective encoder's round-trip error (on [0, 1] frames) above which validation warns: a quarter of
one 8-bit grey level."""


class CrevNetModule(L.LightningModule):
    """Train, validate and test a :class:`~crevnet.nn.CrevNet` on videos (B, T, C, H, W) in [0, 1].

    Args:
        net: the model (``model.net`` in the YAML configs).
        lr: Adam's base learning rate (paper: 5e-4).
        betas: Adam's betas.
        weight_decay: decoupled weight decay (AdamW) when > 0; plain Adam otherwise.
        schedule: learning-rate schedule; the default is the paper's ×0.2 step at 5/6 of training.
        sampling: scheduled-sampling curriculum; the default is the paper's 100% teacher forcing.
        loss: weights of the MSE, L1 and SSIM terms; the default is the paper's MSE alone.
        context: frames given to the model at validation/test time (and always ground truth in
            training); the rest of each clip is predicted.
        total_steps: optimizer steps that define progress 1.0; default ``trainer.max_steps`` (or the
            steps of ``max_epochs``).
        time_progress: when the trainer has ``max_time``, let progress be the larger of the step and
            the wall-time fractions, so a time-boxed run reaches the end of its schedules.
        seed: seeds the scheduled-sampling draws (with the step and the rank, so a resumed run draws
            the same numbers).
        memory_saving: run option, what the training backward recomputes instead of storing:
            ``off``, ``encoder`` or ``full`` (:class:`~crevnet.nn.MemorySaving`; YAML reads a bare
            ``off`` as false, which means off too). Not stored in the checkpoint's
            hyperparameters: a run resumes in any mode. Only ``off`` with
            ``net.encoder.kind: conventional`` (a ValueError says so).
        bf16: run option, bfloat16 autocast for the RPM's cells and gates (not stored either).
        init_from: run option, start from the weights of this checkpoint (a ``.ckpt`` path, a run
            folder or a bundled model's name such as ``mmnist-cpu``) with fresh optimizer state,
            schedules and step count: fine-tuning, unlike ``--ckpt_path``, which resumes a run
            exactly. Its model config must equal ``net``, except that ``net`` may have more RPM
            layers (an even number more): the checkpoint's layers are loaded and the new ones start
            near the identity (:meth:`~crevnet.nn.ReversiblePredictor.extend_from`). Not stored in
            the hyperparameters (a resumed or reloaded run takes its weights from its own
            checkpoint); the run's ``config.yaml`` records it.
        freeze: run option, names or name prefixes of the model's parameters that keep their values
            (no gradient, left out of the optimizer), e.g. ``[encoder, predictor.cells.0]``: with a
            grown ``init_from``, train only the new layers. Not stored in the hyperparameters (a
            resumed run needs the same option; its ``config.yaml`` records it).

    Shape:
        batch: (B, T, C, H, W) with T > context.
    """

    def __init__(
        self,
        net: CrevNetConfig,
        lr: float = 5e-4,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        schedule: LRSchedule | None = None,
        sampling: SamplingCurriculum | None = None,
        loss: LossWeights | None = None,
        context: int = DEFAULT_CONTEXT,
        total_steps: int | None = None,
        time_progress: bool = True,
        seed: int = 0,
        memory_saving: Literal["off", "encoder", "full"] | bool = "off",
        bf16: bool = False,
        init_from: str | None = None,
        freeze: list[str] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(net, Mapping):  # from a checkpoint's hyperparameters
            net = CrevNetConfig.from_dict(net, source="checkpoint hyperparameters")
        if isinstance(schedule, Mapping):
            schedule = LRSchedule(**schedule)
        if isinstance(sampling, Mapping):
            sampling = SamplingCurriculum(**sampling)
        if isinstance(loss, Mapping):
            loss = LossWeights(**loss)
        if not isinstance(net, CrevNetConfig):
            raise TypeError(f"CrevNetModule: net must be a CrevNetConfig, got {type(net).__name__}")
        if not lr > 0:
            raise ValueError(f"CrevNetModule: lr must be > 0, got {lr}")
        if context < net.window:
            raise ValueError(f"CrevNetModule: context must be >= window ({net.window}), got {context}")
        if total_steps is not None and total_steps < 1:
            raise ValueError(f"CrevNetModule: total_steps must be >= 1, got {total_steps}")
        self.schedule = schedule or LRSchedule()
        self.sampling = sampling or SamplingCurriculum()
        self.loss_weights = loss or LossWeights()
        # Hyperparameters are stored as plain containers so checkpoints load with weights_only=True.
        self.save_hyperparameters(
            {
                "net": config_to_dict(net),
                "lr": lr,
                "betas": list(betas),
                "weight_decay": weight_decay,
                "schedule": dataclasses.asdict(self.schedule),
                "sampling": dataclasses.asdict(self.sampling),
                "loss": dataclasses.asdict(self.loss_weights),
                "context": context,
                "total_steps": total_steps,
                "time_progress": time_progress,
                "seed": seed,
            }
        )
        self.net = CrevNet(net)
        self.context = context
        # Run options: used by the steps below, never part of the hyperparameters a checkpoint records.
        self.memory_saving = check_memory_saving(net, memory_saving, "CrevNetModule: memory_saving")
        self.bf16 = bool(bf16)
        if init_from is not None:
            self._load_initial_weights(str(init_from))
        self._freeze(freeze or [])
        self._elapsed_before = 0.0  # training seconds of earlier runs (restored from checkpoints)
        self._data_hparams_logged = False  # the data module's hyperparameters go to the loggers once
        self._warned_lossy = False  # the inverse's drift is reported once
        self._fit_started: float | None = None
        self._frame_size: list[int] | None = None  # (H, W) of the training clips, stored in checkpoints

    def _load_initial_weights(self, source: str) -> None:
        # A weights-only read (no pickled code), the same model config, then a strict load.
        loaded = load_model(source)
        diffs = config_diff(config_to_dict(loaded.config), config_to_dict(self.net.config))
        rpm_only = dataclasses.replace(loaded.config, predictor=self.net.config.predictor) == self.net.config
        if diffs and rpm_only:
            # Only the RPM differs: a deeper one grows from it where extend_from allows (it checks the
            # layer counts and changes nothing when it refuses; then the error below names the diffs).
            try:
                self.net.predictor.extend_from(loaded.model.predictor)
            except ValueError:
                pass
            else:
                self.net.encoder.load_state_dict(loaded.model.encoder.state_dict(), strict=True)
                theirs, mine = loaded.config.predictor.layers, self.net.config.predictor.layers
                _log.info(
                    "--model.init_from %s: its %d RPM layers loaded, %d more added on top with nearly "
                    "closed gates",
                    source,
                    theirs,
                    mine - theirs,
                )
                return
        if diffs:
            raise CheckpointError(
                f"--model.init_from {source}: its model config differs from this run's (model.net): "
                + "; ".join(diffs)
                + "; use the same model.net as the checkpoint (or, to grow its RPM, only more"
                " predictor.layers, by an even number), or train from scratch without init_from"
            )
        self.net.load_state_dict(loaded.model.state_dict(), strict=True)

    def _freeze(self, prefixes: list[str] | str) -> None:
        # Parameters under these names keep their values: no gradient, not in the optimizer.
        if isinstance(prefixes, str):
            prefixes = [prefixes]
        named = dict(self.net.named_parameters())
        frozen: list[str] = []
        for prefix in prefixes:
            hits = [n for n in named if n == prefix or n.startswith(prefix.rstrip(".") + ".")]
            if not hits:
                tops = sorted({".".join(n.split(".")[:3]) for n in named if n.startswith("predictor.")})
                raise ValueError(
                    f"--model.freeze {prefix!r}: no model parameter has that name or prefix; use names "
                    f"such as 'encoder', 'predictor', {', '.join(repr(t) for t in tops[:4])}, ..."
                )
            frozen += hits
        for name in frozen:
            named[name].requires_grad_(False)

    # -- progress ---------------------------------------------------------------------------------
    def train_seconds(self) -> float:
        """Wall-clock seconds spent in ``fit`` so far, including runs this one resumed."""
        now = time.monotonic()
        return self._elapsed_before + (0.0 if self._fit_started is None else now - self._fit_started)

    def _total_steps(self) -> int | None:
        if self.hparams.total_steps is not None:
            return int(self.hparams.total_steps)
        trainer = self._trainer
        if trainer is None:
            return None
        if trainer.max_steps is not None and trainer.max_steps > 0:
            return int(trainer.max_steps)
        total = trainer.estimated_stepping_batches
        return int(total) if math.isfinite(total) else None

    def _max_seconds(self) -> float | None:
        trainer = self._trainer
        if trainer is None or not self.hparams.time_progress:
            return None
        for callback in trainer.callbacks:
            if isinstance(callback, Timer):  # Lightning adds one for trainer.max_time
                remaining = callback.time_remaining("train")  # None without a duration
                if remaining is None:
                    return None
                # elapsed + remaining is the duration, up to the microseconds between the two reads
                return round(callback.time_elapsed("train") + remaining, 3) or None
        return None

    def progress(self, step: int | None = None) -> float:
        """Fraction of training done, in [0, 1] (see ``total_steps`` and ``time_progress``)."""
        step = self.global_step if step is None else step
        fractions = [0.0]
        total = self._total_steps()
        if total:
            fractions.append(step / total)
        seconds = self._max_seconds()
        if seconds:
            fractions.append(self.train_seconds() / seconds)
        return min(max(fractions), 1.0)

    # -- training ---------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Have the datamodule's hyperparameters logged under ``data``, beside this module's.

        Lightning merges the two sets into one and refuses a key both have with different values; a
        datamodule's ``seed`` (the clips) and this module's (the scheduled sampling) are such a key. So
        the data modules save theirs with ``save_hyperparameters(logger=False)`` (Lightning skips the
        merge) and they are logged here, once per fit.
        """
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        if datamodule is None or self._data_hparams_logged:
            return
        self._data_hparams_logged = True
        # without LightningCLI's internal keys (_class_path, _instantiator)
        data = {k: v for k, v in datamodule.hparams_initial.items() if not k.startswith("_")}
        for logger in self.trainer.loggers:
            logger.log_hyperparams({"data": data})

    def on_fit_start(self) -> None:
        """Start the wall clock used by :meth:`progress` and stored in checkpoints."""
        self._fit_started = time.monotonic()

    def on_fit_end(self) -> None:
        """Fold this run's time into the total."""
        self._elapsed_before = self.train_seconds()
        self._fit_started = None

    def _sampling_generator(self) -> torch.Generator:
        gen = torch.Generator()
        gen.manual_seed(int(self.hparams.seed) * 1_000_003 + self.global_step * 97 + self.global_rank)
        return gen

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        """The weighted loss (:mod:`crevnet.train.loss`) with the current sampling probability."""
        del batch_idx
        if self._frame_size is None:
            self._frame_size = [int(batch.shape[-2]), int(batch.shape[-1])]
        prob = self.sampling.probability(self.progress())
        pred, target = self.net(
            batch,
            sampling_prob=prob,
            context=self.context,
            generator=self._sampling_generator(),
            memory_saving=self.memory_saving,
            bf16=self.bf16,
        )
        loss = prediction_loss(pred, target, self.loss_weights)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch.shape[0])
        self.log("train/sampling_prob", prob, batch_size=batch.shape[0])
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=batch.shape[0])
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        """Adam (AdamW with weight decay) and a per-step ``LambdaLR`` following :attr:`schedule`."""
        hp = self.hparams
        cls = torch.optim.AdamW if hp.weight_decay > 0 else torch.optim.Adam
        trainable = [p for p in self.parameters() if p.requires_grad]  # without the frozen ones
        optimizer = cls(trainable, lr=hp.lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay)
        schedule = self.schedule
        module = self

        def factor(step: int) -> float:
            return schedule.factor(step, module.progress(step))

        scheduler = LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- evaluation -------------------------------------------------------------------------------
    def predict_future(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predict frames ``context ..`` of ``video`` from its first ``context`` frames.

        Returns:
            ``(pred, target)``, both (B, T - context, C, H, W).
        """
        horizon = video.shape[1] - self.context
        if horizon < 1:
            raise ValueError(
                f"CrevNetModule: clips need more than context={self.context} frames, got {video.shape[1]}"
            )
        with torch.no_grad():
            pred = self.net.predict(video[:, : self.context], horizon, bf16=self.bf16)
        return pred, video[:, self.context :]

    def reconstruction_error(self, video: torch.Tensor) -> torch.Tensor:
        """max |x − D(E(x))| over ``video``'s frames or windows: float rounding only for the bijective
        encoder, the autoencoder's loss for a conventional one."""
        x = sliding_windows(video, self.net.config.window).flatten(0, 1)  # (M, W, C, H, W)
        with torch.no_grad():
            back = self.net.reconstruct(x)
        return (back - x).abs().max()

    def check_round_trip(self, video: torch.Tensor) -> torch.Tensor:
        """:meth:`reconstruction_error`, with a warning (once per module) when a bijective encoder's
        float round trip has drifted past :data:`LOSSY_ROUND_TRIP`: a trained scale form (affine, irn)
        can amplify rounding through a deep stack, and the decoder would then no longer be exact."""
        error = self.reconstruction_error(video)
        if self.net.bijective and not self._warned_lossy and float(error) > LOSSY_ROUND_TRIP:
            self._warned_lossy = True
            enc = self.net.config.encoder
            _log.warning(
                "the encoder's inverse is off by %.3g (max |x - D(E(x))|, more than %g) with coupling %r, "
                "clamp %g: the decoder is no longer exact in this precision; lower encoder.clamp, use a "
                "volume-preserving coupling (irevnet, additive, revnet) or train in float64",
                float(error),
                LOSSY_ROUND_TRIP,
                enc.coupling,
                enc.clamp,
            )
        return error

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        """Teacher-forced loss, free-running MSE/SSIM, and on the first batch the reconstruction error."""
        b = batch.shape[0]
        loss = self.net.loss(batch, context=self.context, bf16=self.bf16)
        self.log("val/loss", loss, batch_size=b, sync_dist=True)
        pred, target = self.predict_future(batch)
        self.log("val/mse", frame_mse(pred, target).mean(), prog_bar=True, batch_size=b, sync_dist=True)
        if batch_idx == 0:
            self.log("val/recon_max_abs", self.check_round_trip(batch), batch_size=b, sync_dist=True)

    def test_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        """Free-running MSE and SSIM under ``test/<set name>/``."""
        del batch_idx
        name = self._test_set_name()
        b = batch.shape[0]
        pred, target = self.predict_future(batch)
        self.log(f"test/{name}/mse", frame_mse(pred, target).mean(), batch_size=b, sync_dist=True)
        self.log(f"test/{name}/ssim", frame_ssim(pred, target).mean(), batch_size=b, sync_dist=True)

    def _test_set_name(self) -> str:
        # "surrogate", "standard" or the file's stem: short metric keys that still say which set it was.
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        test = getattr(datamodule, "test_data", None)
        if test is None:
            return "test"
        if getattr(test, "is_surrogate", False):
            return "surrogate"
        path = getattr(test, "path", None)
        if path is None:
            return "test"
        from crevnet.data.testset import STANDARD_FILE

        return "standard" if path.name == STANDARD_FILE else path.stem

    # -- checkpoints ------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the training wall time (for learning curves and time-based schedules) and the frame size."""
        checkpoint["crevnet"] = {"train_seconds": self.train_seconds(), "format": 1}
        if self._frame_size is not None:
            checkpoint["crevnet"]["frame_size"] = list(self._frame_size)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint of another model config, naming the differing keys.

        Raises:
            CheckpointError: the checkpoint's ``net`` differs from this module's, or is absent.
        """
        check_compatible(checkpoint, self.hparams.net, "the checkpoint")
        extra = checkpoint.get("crevnet", {})
        self._elapsed_before = float(extra.get("train_seconds", 0.0))
        size = extra.get("frame_size")
        self._frame_size = [int(v) for v in size] if isinstance(size, (list, tuple)) else None
