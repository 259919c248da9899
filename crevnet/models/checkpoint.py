"""Read a trained CrevNet out of a checkpoint, without lightning and without running pickled code.

``crevnet fit`` writes Lightning ``.ckpt`` files: a dict whose ``hyper_parameters["net"]`` is the
model config as nested plain dicts and whose ``state_dict`` holds the weights of the LightningModule,
the :class:`~crevnet.nn.CrevNet` under the prefix ``net.``. :func:`load_model` reads such a file with
``torch.load(weights_only=True)``, rebuilds the :class:`~crevnet.nn.CrevNetConfig`, finds the
model's weights under whichever prefix holds them (``net.``, ``model.net.``, none, with or without
``torch.compile``'s ``_orig_mod.``) and loads them strictly. Every way this can fail raises one
:class:`~crevnet.errors.CheckpointError` whose message names the file and what was expected.

:func:`save_model` writes the same layout from plain PyTorch, so a model trained without Lightning
can be evaluated with ``crevnet evaluate`` too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from crevnet.errors import CheckpointError
from crevnet.io.checkpoint import DATAMODULE_STATE_KEY, config_to_dict, read_checkpoint, write_checkpoint
from crevnet.io.checkpoint import EXPECTED as _EXPECTED
from crevnet.io.runs import run_checkpoint
from crevnet.nn.model import DEFAULT_CONTEXT, CrevNet, CrevNetConfig
from crevnet.weights import bundled_file

__all__ = [
    "DEFAULT_CONTEXT",
    "DEFAULT_FRAME_SIZE",
    "FRAMINGS",
    "CheckpointMeta",
    "LoadedModel",
    "check_framing",
    "config_from_hparams",
    "config_to_dict",
    "load_model",
    "resolve_checkpoint",
    "save_model",
]

DEFAULT_FRAME_SIZE = (64, 64)
"""(H, W) assumed for a checkpoint that does not record its training frame size (Moving MNIST)."""

FRAMINGS = ("resize", "center_crop")
"""Ways a checkpoint's training frames were brought to its frame size (:attr:`CheckpointMeta.framing`)."""

# Where the CrevNet's weights may sit inside a checkpoint's state_dict, most likely first.
_PREFIXES = ("net.", "model.net.", "model.", "")
_COMPILED = "_orig_mod."  # torch.compile wraps a module and inserts this in every key


def resolve_checkpoint(spec: str | os.PathLike[str]) -> Path:
    """The checkpoint file that ``--ckpt SPEC`` means.

    Args:
        spec: a checkpoint file; a bundled model's name (see :mod:`crevnet.weights`); a folder of
            runs, one run's folder or a ``checkpoints`` folder (see :func:`crevnet.io.runs.run_checkpoint`).

    Returns:
        The file (a path that does not exist is returned as it is, for the reader to report).

    Raises:
        CheckpointError: a folder without a checkpoint; a bare name that is not a bundled model (the
            message lists the bundled names).
    """
    return bundled_file(run_checkpoint(spec))


@dataclass(frozen=True)
class CheckpointMeta:
    """Facts about a checkpoint, beside its weights.

    Attributes:
        path: the file read (None for a model that did not come from a file).
        context: frames the model was trained to observe (:data:`DEFAULT_CONTEXT` when not recorded).
        frame_size: (H, W) of the training frames (:data:`DEFAULT_FRAME_SIZE` when not recorded).
        frame_size_recorded: whether the checkpoint records ``frame_size``.
        framing: how the training frames were brought to ``frame_size`` from clips of other sizes:
            "resize" (stretched) or "center_crop" (aspect ratio kept, centre cut; a run trained on
            random crops records it too); None when not recorded (generated Moving MNIST frames).
        global_step: optimizer steps of the training run (None when absent).
        epoch: epochs of the training run (None when absent).
        train_seconds: training wall time (None when absent).
        hyper_parameters: the checkpoint's raw ``hyper_parameters``.
        data_hyper_parameters: the data module's recorded ``datamodule_hyper_parameters``.
        data_state: the video-folder data module's recorded state (its split), empty when absent.
    """

    path: str | None = None
    context: int = DEFAULT_CONTEXT
    frame_size: tuple[int, int] = DEFAULT_FRAME_SIZE
    frame_size_recorded: bool = False
    framing: str | None = None
    global_step: int | None = None
    epoch: int | None = None
    train_seconds: float | None = None
    hyper_parameters: Mapping[str, Any] = field(default_factory=dict)
    data_hyper_parameters: Mapping[str, Any] = field(default_factory=dict)
    data_state: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadedModel:
    """A model read from a checkpoint, in eval mode on the requested device.

    Attributes:
        model: the network with the checkpoint's weights.
        config: its configuration (``model.config``).
        meta: facts about the checkpoint (see :class:`CheckpointMeta`).
    """

    model: CrevNet
    config: CrevNetConfig
    meta: CheckpointMeta = field(default_factory=CheckpointMeta)


def config_from_hparams(hparams: Any, source: str = "checkpoint") -> CrevNetConfig:
    """The model config from a checkpoint's ``hyper_parameters``.

    Args:
        hparams: the ``hyper_parameters`` mapping; its ``net`` entry is a :class:`CrevNetConfig`
            or the nested dict of one (``encoder``, ``predictor``, ``window``).
        source: the file name used in error messages.

    Raises:
        CheckpointError: no ``net`` entry, or one that is not a valid CrevNet config.
    """
    net = hparams.get("net") if isinstance(hparams, Mapping) else None
    if isinstance(net, CrevNetConfig):
        return net
    if not isinstance(net, Mapping):
        raise CheckpointError(
            f"{source}: no crevnet model config (hyper_parameters['net'] is missing); {_EXPECTED}"
        )
    try:
        return CrevNetConfig.from_dict(net, source=source)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{err} (hyper_parameters['net'] is not a valid CrevNet config)") from err


def _model_weights(state: Mapping[str, Any], expected: set[str], source: str) -> dict[str, Any]:
    # The prefix under which most of the model's keys sit wins; torch.compile's marker is dropped.
    keys = {k.replace(_COMPILED, ""): v for k, v in state.items() if isinstance(k, str)}
    roots = {k.split(".")[0] for k in expected}  # "encoder", "predictor"
    best: dict[str, Any] = {}
    best_hits = 0
    for prefix in _PREFIXES:
        found = {k[len(prefix) :]: v for k, v in keys.items() if k.startswith(prefix)}
        found = {k: v for k, v in found.items() if k.split(".")[0] in roots}
        hits = len(set(found) & expected)
        if hits > best_hits:
            best, best_hits = found, hits
    if not best_hits:
        sample = ", ".join(sorted(keys)[:2]) or "none"
        raise CheckpointError(
            f"{source}: no CrevNet weights in its state_dict (keys: {sample}, ...); expected keys such "
            f"as 'net.{sorted(expected)[0]}'"
        )
    return best


def _load_weights(model: CrevNet, weights: dict[str, Any], source: str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong = [
        f"{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in weights and (not isinstance(weights[k], torch.Tensor) or weights[k].shape != v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if wrong:
        problems.append(f"{len(wrong)} of another shape (e.g. {wrong[0]}, checkpoint vs config)")
    if problems:
        raise CheckpointError(
            f"{source}: weights do not match the checkpoint's model config: " + "; ".join(problems)
        )
    model.load_state_dict(weights, strict=True)


def _frame_size(checkpoint: Mapping[str, Any]) -> tuple[int, int] | None:
    extra = checkpoint.get("crevnet")
    size = extra.get("frame_size") if isinstance(extra, Mapping) else None
    if isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size):
        return int(size[0]), int(size[1])
    return None


def check_framing(framing: str | None, who: str) -> str | None:
    """``framing`` if it is one of :data:`FRAMINGS` or None, else a ValueError naming ``who`` asked."""
    if framing is not None and framing not in FRAMINGS:
        raise ValueError(f"{who}: framing {framing!r}; expected {' or '.join(FRAMINGS)} or None")
    return framing


def _framing(checkpoint: Mapping[str, Any]) -> str | None:
    """The recorded framing: ``crevnet.framing`` (bundled files), else a video folder run's ``resize``."""
    extra = checkpoint.get("crevnet")
    data = checkpoint.get("datamodule_hyper_parameters")
    mode = extra.get("framing") if isinstance(extra, Mapping) else None
    if mode is None and isinstance(data, Mapping):
        mode = data.get("resize")
    mode = "center_crop" if mode == "random_crop" else mode
    return mode if mode in FRAMINGS else None


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def load_model(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild a :class:`~crevnet.nn.CrevNet` from a checkpoint written by ``crevnet fit``.

    Args:
        path: the checkpoint (``.ckpt``), a run folder (``runs/<name>``: its newest run's
            ``last.ckpt``; see :func:`resolve_checkpoint`) or the name of a bundled
            model (``"mmnist-cpu"``, see :mod:`crevnet.weights`).
        map_location: device the weights are loaded onto; the model is moved there and put in
            eval mode.

    Returns:
        The model, its config and the checkpoint's facts (see :class:`LoadedModel`).

    Raises:
        CheckpointError: the file is missing or not a torch checkpoint, is not a crevnet
            checkpoint (no ``net`` hyperparameters, no CrevNet weights), or its weights do not match
            its config; a bare name that is not bundled (the message lists the bundled names).
    """
    path = resolve_checkpoint(path)
    checkpoint = read_checkpoint(path, map_location)
    source = str(path)
    hparams = checkpoint.get("hyper_parameters")
    config = config_from_hparams(hparams, source)
    state = checkpoint.get("state_dict")
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{source}: no 'state_dict' with the model weights; {_EXPECTED}")
    model = CrevNet(config)
    weights = _model_weights(state, set(model.state_dict()), source)
    _load_weights(model, weights, source)
    model.to(map_location).eval()
    assert isinstance(hparams, Mapping)  # config_from_hparams checked it
    context = hparams.get("context")
    extra = checkpoint.get("crevnet") if isinstance(checkpoint.get("crevnet"), Mapping) else {}
    recorded = _frame_size(checkpoint)
    meta = CheckpointMeta(
        path=source,
        context=int(context) if isinstance(context, int) and context >= config.window else DEFAULT_CONTEXT,
        frame_size=recorded or DEFAULT_FRAME_SIZE,
        frame_size_recorded=recorded is not None,
        framing=_framing(checkpoint),
        global_step=checkpoint.get("global_step"),
        epoch=checkpoint.get("epoch"),
        train_seconds=extra.get("train_seconds"),
        hyper_parameters=dict(hparams),
        data_hyper_parameters=_mapping(checkpoint.get("datamodule_hyper_parameters")),
        data_state=_mapping(checkpoint.get(DATAMODULE_STATE_KEY)),
    )
    return LoadedModel(model, config, meta)


def save_model(
    model: CrevNet,
    path: str | os.PathLike[str],
    context: int = DEFAULT_CONTEXT,
    frame_size: tuple[int, int] | None = DEFAULT_FRAME_SIZE,
    global_step: int | None = None,
    train_seconds: float | None = None,
    framing: str | None = None,
) -> Path:
    """Write ``model`` in the layout ``crevnet fit`` uses, atomically; :func:`load_model` reads it.

    Args:
        model: the network.
        path: destination file (``.ckpt``); its folder is created.
        context: frames the model observes before predicting (stored as ``hyper_parameters``).
        frame_size: (H, W) of the training frames, or None if unknown.
        global_step: optimizer steps the weights were trained for, if known (``meta.global_step``).
        train_seconds: wall-clock training seconds, if known (``meta.train_seconds``).
        framing: how the training frames were brought to ``frame_size`` ("resize" or "center_crop";
            ``meta.framing``), if known.

    Returns:
        ``path`` as a Path.
    """
    checkpoint: dict[str, Any] = {
        "hyper_parameters": {"net": config_to_dict(model.config), "context": int(context)},
        "state_dict": {f"net.{k}": v.detach().cpu() for k, v in model.state_dict().items()},
        "crevnet": {"format": 1, **({"frame_size": list(frame_size)} if frame_size else {})},
    }
    if global_step is not None:
        checkpoint["global_step"] = int(global_step)
    if train_seconds is not None:
        checkpoint["crevnet"]["train_seconds"] = float(train_seconds)
    if framing is not None:
        checkpoint["crevnet"]["framing"] = check_framing(framing, "save_model")
    return write_checkpoint(checkpoint, path)
