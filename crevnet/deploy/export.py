"""``crevnet export``: a CrevNet as three deployable graphs, ONNX or TorchScript, with a manifest.

A stream (:mod:`crevnet.nn.stream`) runs three computations, and each is written as its own graph:

============  ===========================================  ============================================
file          inputs                                       outputs
============  ===========================================  ============================================
encoder       ``window`` (B, W, C, H, W) float32 in [0, 1]  ``latent`` (B, 2c, [W,] H/D, W/D)
decoder       ``latent``                                   ``window`` (B, W, C, H, W), not clipped
rpm_step      ``latent``, ``h0, c0, h1, c1, ...[, memory]``  ``latent_out``, ``h0_out, c0_out, ...``
============  ===========================================  ============================================

``W`` is the model's window (3 for the paper's 3-D model, 1 in 2-D), ``D`` the encoder's total
downsampling and ``c`` one latent half; every RPM state tensor is (B, c, [W,] H/D, W/D), ordered as
:func:`crevnet.nn.stream.flatten_state` orders them (``h`` and ``c`` of each layer, then the ST-LSTM
memory when the cells have one). All zeros is the initial state. The batch axis is free; H and W are
fixed at export (``--size``, default the checkpoint's training frame size). ``manifest.json`` records
all of it (names, shapes, window, state size, frame size, and ``framing``: how the checkpoint's training
frames were brought to that size from clips of other sizes, "center_crop" or "resize", null when not
recorded, so that a consumer frames its video the way ``crevnet predict`` would) and ``README.md`` in the
same folder says it in words. :func:`crevnet.deploy.loader.load_exported` rolls the graphs out with
ONNX Runtime or TorchScript through the very same streaming code as PyTorch (tested to ≤ 1e-4 over 10 frames).

``onnx`` needs the optional extra ``pip install -e ".[export]"`` (onnx, onnxruntime, onnxscript),
imported here only when exporting to ONNX. Every file is written to a temporary name, checked (ONNX
checker / TorchScript reload) and renamed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from crevnet.deploy.backends import example_inputs, free_batch, quiet
from crevnet.deploy.manifest import FORMATS, GRAPHS, MANIFEST, MANIFEST_FORMAT, state_names
from crevnet.errors import DataError
from crevnet.io.atomic import atomic_path, atomic_write_bytes
from crevnet.models.checkpoint import check_framing, load_model
from crevnet.nn.model import CrevNet, CrevNetConfig
from crevnet.nn.stream import StreamGraphs

__all__ = ["export_checkpoint", "export_model"]

_EXTRA = 'pip install -e ".[export]"'


def _io_names(graphs: StreamGraphs, layers: int) -> dict[str, tuple[list[str], list[str]]]:
    state = state_names(graphs.state_size, layers)
    return {
        "encoder": (["window"], ["latent"]),
        "decoder": (["latent"], ["window"]),
        "rpm_step": (["latent", *state], ["latent_out", *(f"{n}_out" for n in state)]),
    }


def _write_onnx(module: torch.nn.Module, args: tuple[torch.Tensor, ...], names: Any, path: Path) -> None:
    try:
        import onnx
    except ImportError as err:
        raise DataError(f"--format onnx needs the optional packages onnx and onnxscript: {_EXTRA}") from err
    dynamic = free_batch(module, args)
    with atomic_path(path) as tmp, quiet(), torch.no_grad():  # no autograd functions in the graph
        try:
            torch.onnx.export(
                module,
                args,
                str(tmp),
                dynamo=True,
                external_data=False,
                input_names=names[0],
                output_names=names[1],
                dynamic_shapes=dynamic,
            )
        except ImportError as err:
            raise DataError(f"--format onnx needs onnxscript ({err}): {_EXTRA}") from err
        onnx.checker.check_model(str(tmp))


def _write_torchscript(module: torch.nn.Module, args: tuple[torch.Tensor, ...], path: Path) -> None:
    with atomic_path(path) as tmp, quiet(), torch.no_grad():
        traced = torch.jit.trace(module, args, check_trace=False)
        torch.jit.save(traced, str(tmp))
        torch.jit.load(str(tmp))  # verify before the rename


_FRAMING_WORDS = {
    "center_crop": "the model was trained on centre crops; scale a frame (aspect ratio kept) until it "
    "covers H×W, then cut the centre H×W (`crevnet predict` does so).",
    "resize": "the model was trained on stretched frames; resize a frame to H×W (`crevnet predict` does so).",
    None: "the checkpoint records no framing; `crevnet predict` cuts the centre (aspect ratio kept).",
}


def _readme(manifest: dict[str, Any]) -> str:
    lines = [
        f"# CrevNet stream graphs ({manifest['format']})",
        "",
        f"Window {manifest['window']} frame(s) of {manifest['channels']}×{manifest['frame_size'][0]}"
        f"×{manifest['frame_size'][1]} (C×H×W), float32 in [0, 1]; batch B is free. Per new frame: "
        "encode the newest window, run rpm_step on (latent, *state); to forecast, decode latent_out, "
        "keep its last frame, put the observed frames back into the leading slots of the window, "
        "encode it and step again (see crevnet.nn.stream.forecast). The initial state is all zeros.",
        "",
        "| graph | inputs | outputs |",
        "|---|---|---|",
    ]
    for name, graph in manifest["graphs"].items():
        ins = ", ".join(f"`{n}` {tuple(s)}" for n, s in graph["inputs"].items())
        outs = ", ".join(f"`{n}` {tuple(s)}" for n, s in graph["outputs"].items())
        lines.append(f"| `{graph['file']}` ({name}) | {ins} | {outs} |")
    framing = _FRAMING_WORDS.get(manifest.get("framing"), _FRAMING_WORDS[None])
    if not manifest.get("bijective", True):
        lines += [
            "",
            "The encoder is conventional (`bijective: false`): decode and encode every predicted "
            "latent before the next step, even once no observed frame is left in its window.",
        ]
    lines += [
        "",
        f"Frames of another size: {framing}",
        "",
        "Run: `crevnet.deploy.loader.load_exported(folder)` returns a FrameStream over these graphs.",
        "",
    ]
    return "\n".join(lines)


def export_model(
    model: CrevNet,
    out_dir: str | os.PathLike[str],
    fmt: str = "onnx",
    frame_size: tuple[int, int] = (64, 64),
    context: int | None = None,
    framing: str | None = None,
) -> Path:
    """Write the encoder, decoder and RPM-step graphs of ``model`` and a manifest into ``out_dir``.

    Args:
        model: the network (exported on the CPU in eval mode; the model itself is left as it was).
        out_dir: destination folder (created).
        fmt: "onnx" or "torchscript".
        frame_size: (H, W) the graphs take; multiples of the encoder's downsampling.
        context: frames the model was trained to observe (recorded in the manifest), if known.
        framing: how the training frames were brought to their size ("center_crop" or "resize";
            :attr:`crevnet.models.checkpoint.CheckpointMeta.framing`), recorded in the manifest, if known.

    Returns:
        The path of ``manifest.json``.

    Raises:
        DataError: unknown format, a frame size the encoder cannot take, or the ONNX packages missing.
    """
    out = _check_export(model, out_dir, fmt, frame_size, framing)
    was_training, device = model.training, next(model.parameters()).device
    model.eval().cpu()
    try:
        graphs = StreamGraphs.from_model(model)
        entries = _write_graphs(graphs, out, fmt, frame_size, model.config.predictor.layers)
    finally:
        model.train(was_training).to(device)
    manifest = _manifest(graphs, model.config, fmt, frame_size, context, framing, entries)
    atomic_write_bytes(out / "README.md", _readme(manifest).encode())
    atomic_write_bytes(out / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return out / MANIFEST


def _check_export(
    model: CrevNet,
    out_dir: str | os.PathLike[str],
    fmt: str,
    frame_size: tuple[int, int],
    framing: str | None,
) -> Path:
    # Every argument of export_model checked before any work; returns the output folder, created.
    if fmt not in FORMATS:
        raise DataError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    check_framing(framing, "export_model")
    d = model.config.encoder.downsample
    h, w = frame_size
    if h < d or w < d or h % d or w % d:
        raise DataError(f"--size {h}x{w}: height and width must be positive multiples of {d}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _write_graphs(
    graphs: StreamGraphs, out: Path, fmt: str, frame_size: tuple[int, int], layers: int
) -> dict[str, Any]:
    # Writes the three graphs; returns their manifest entries (file, input and output shapes).
    examples = example_inputs(graphs, frame_size)
    names = _io_names(graphs, layers)
    modules = dict(zip(GRAPHS, (graphs.encode, graphs.decode, graphs.step), strict=True))
    entries: dict[str, Any] = {}
    for name in GRAPHS:
        module, args = modules[name], examples[name]
        assert isinstance(module, torch.nn.Module)
        module.eval()
        path = out / f"{name}{FORMATS[fmt]}"
        if fmt == "onnx":
            _write_onnx(module, args, names[name], path)
        else:
            _write_torchscript(module, args, path)
        with torch.no_grad():
            results = module(*args)
        results = results if isinstance(results, tuple) else (results,)
        entries[name] = {
            "file": path.name,
            "inputs": {n: ["B", *a.shape[1:]] for n, a in zip(names[name][0], args, strict=True)},
            "outputs": {n: ["B", *r.shape[1:]] for n, r in zip(names[name][1], results, strict=True)},
        }
    return entries


def _manifest(
    graphs: StreamGraphs,
    cfg: CrevNetConfig,
    fmt: str,
    frame_size: tuple[int, int],
    context: int | None,
    framing: str | None,
    entries: dict[str, Any],
) -> dict[str, Any]:
    return {
        "crevnet_export": MANIFEST_FORMAT,
        "format": fmt,
        "window": graphs.window,
        "channels": graphs.channels,
        "downsample": cfg.encoder.downsample,
        "frame_size": list(frame_size),
        "state_size": graphs.state_size,
        "state_channels": graphs.state_channels,
        "bijective": graphs.bijective,
        "state_names": state_names(graphs.state_size, cfg.predictor.layers),
        "context": context,
        "framing": framing,
        "torch": torch.__version__,
        "graphs": entries,
    }


def export_checkpoint(
    ckpt: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    fmt: str = "onnx",
    size: str | tuple[int, int] = "train",
) -> Path:
    """``crevnet export`` as a function: :func:`export_model` of a checkpoint's model.

    Args:
        ckpt: a ``.ckpt`` file, a run folder or a bundled model's name.
        out_dir, fmt: as for :func:`export_model`.
        size: (H, W), or "train" for the frame size the checkpoint was trained on.

    Returns:
        The path of ``manifest.json``.

    Raises:
        DataError: ``size`` is not a fixed frame size, or see :func:`export_model`.
        CheckpointError: a bad checkpoint.
    """
    if isinstance(size, str) and size != "train":
        raise DataError(f"--size {size}: an export needs a fixed frame size: 'train' or HxW")
    loaded = load_model(ckpt, map_location="cpu")
    frame_size = tuple(loaded.meta.frame_size) if size == "train" else size
    meta = loaded.meta
    return export_model(loaded.model, out_dir, fmt, frame_size, meta.context, meta.framing)
