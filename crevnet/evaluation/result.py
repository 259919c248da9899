"""The typed result of an evaluation: what :func:`crevnet.evaluation.evaluate.evaluate_model` returns.

An :class:`EvaluationResult` holds the test set's description and one :class:`Scores` for the model
and for each baseline it was scored against (:mod:`crevnet.evaluation.baselines`); the report
(:mod:`crevnet.evaluation.report`) reads it. :meth:`EvaluationResult.to_json` is the content of
``metrics.json`` and :meth:`EvaluationResult.from_json` reads it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from crevnet.evaluation.metrics import METRIC_NAMES, SCORE_KEYS

__all__ = ["EvaluationResult", "Scores"]


@dataclass(frozen=True)
class Scores:
    """One predictor's scores (the model's or a baseline's); see :mod:`crevnet.evaluation.metrics`.

    Attributes:
        mse: squared error summed per frame, mean over frames and sequences.
        mae: absolute error summed per frame, mean over frames and sequences.
        mse_per_pixel: ``mse / (C·H·W)``.
        psnr: PSNR in dB, mean over frames.
        ssim: Gaussian SSIM, mean over frames.
        ssim_openstl: OpenSTL's SSIM, mean over frames.
        per_horizon: for each of :data:`~crevnet.evaluation.metrics.METRIC_NAMES`, one value per
            horizon step (mean over sequences).
    """

    mse: float
    mae: float
    mse_per_pixel: float
    psnr: float
    ssim: float
    ssim_openstl: float
    per_horizon: Mapping[str, tuple[float, ...]]

    def value(self, key: str) -> float:
        """The overall score of ``key``, one of :data:`~crevnet.evaluation.metrics.SCORE_KEYS`."""
        if key not in SCORE_KEYS:
            raise KeyError(f"{key!r}: expected one of {', '.join(SCORE_KEYS)}")
        return float(getattr(self, key))

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready dict: :data:`~crevnet.evaluation.metrics.SCORE_KEYS`, then ``per_horizon`` lists."""
        per_horizon = {name: list(values) for name, values in self.per_horizon.items()}
        return {**{key: self.value(key) for key in SCORE_KEYS}, "per_horizon": per_horizon}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Scores:
        """Read :meth:`to_json`'s dict, or :meth:`~crevnet.evaluation.metrics.MetricAccumulator.compute`'s.

        Keys other than :data:`~crevnet.evaluation.metrics.SCORE_KEYS` and ``per_horizon`` (e.g.
        ``num_sequences``) are ignored.
        """
        per_horizon = {name: tuple(float(v) for v in data["per_horizon"][name]) for name in METRIC_NAMES}
        return cls(**{key: float(data[key]) for key in SCORE_KEYS}, per_horizon=MappingProxyType(per_horizon))


# fields of EvaluationResult that are JSON keys of their own (checkpoint and extra are placed apart)
_DESCRIPTION = ("test_set", "surrogate", "num_sequences", "context", "horizon", "frame_size")
_RUN = ("device", "eval_seconds")


@dataclass(frozen=True)
class EvaluationResult:
    """A model and the baselines scored on one test set.

    Attributes:
        test_set: the test set's name (says "surrogate" when it is one).
        surrogate: whether the test set was generated rather than the standard file.
        num_sequences: sequences scored.
        context: observed frames per sequence.
        horizon: predicted frames per sequence.
        frame_size: (H, W).
        model: the model's scores.
        baselines: baseline key (:data:`crevnet.evaluation.baselines.BASELINES`) -> its scores, in
            the order the test set lists them.
        device: where the model ran (None: not recorded).
        eval_seconds: wall time of the scoring (None: not recorded).
        checkpoint: the checkpoint scored, if any; first in ``metrics.json``.
        extra: more JSON-ready entries written after the others (e.g. ``global_step``).
    """

    test_set: str
    surrogate: bool
    num_sequences: int
    context: int
    horizon: int
    frame_size: tuple[int, int]
    model: Scores
    baselines: Mapping[str, Scores]
    device: str | None = None
    eval_seconds: float | None = None
    checkpoint: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def mse_ratio(self, baseline: str) -> float:
        """The model's MSE over the MSE of ``baseline`` (NaN where that MSE is 0)."""
        theirs = self.baselines[baseline].mse
        return self.model.mse / theirs if theirs > 0 else float("nan")

    def to_json(self) -> dict[str, Any]:
        """The content of ``metrics.json``.

        ``checkpoint`` (when set) first, then ``test_set``, ``surrogate``, ``num_sequences``,
        ``context``, ``horizon``, ``frame_size`` [H, W], ``device`` and ``eval_seconds`` (when
        recorded), ``model``, ``baselines`` and the ``extra`` entries.
        """
        data: dict[str, Any] = {} if self.checkpoint is None else {"checkpoint": self.checkpoint}
        data.update({name: getattr(self, name) for name in _DESCRIPTION})
        data["frame_size"] = list(self.frame_size)
        data.update({name: getattr(self, name) for name in _RUN if getattr(self, name) is not None})
        data["model"] = self.model.to_json()
        data["baselines"] = {key: scores.to_json() for key, scores in self.baselines.items()}
        return {**data, **self.extra}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EvaluationResult:
        """Read :meth:`to_json`'s dict (a ``metrics.json``); keys it does not know go to ``extra``."""
        known = {f.name for f in fields(cls)} - {"extra"}
        names = (*_DESCRIPTION, *_RUN, "checkpoint")
        values = {name: data[name] for name in names if name in data and name != "frame_size"}
        height, width = data["frame_size"]
        return cls(
            **values,
            frame_size=(int(height), int(width)),
            model=Scores.from_json(data["model"]),
            baselines={key: Scores.from_json(s) for key, s in data["baselines"].items()},
            extra={key: value for key, value in data.items() if key not in known},
        )
