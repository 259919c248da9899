"""The runner of ``crevnet export`` folders: roll the exported graphs out with ONNX Runtime or TorchScript.

:func:`load_exported` reads ``manifest.json`` and returns :class:`~crevnet.nn.stream.StreamGraphs`
whose encode / decode / step call ONNX Runtime sessions or TorchScript modules; the rollout itself is
:func:`crevnet.nn.stream.advance` / :func:`~crevnet.nn.stream.forecast`, the code PyTorch streams use,
so no backend has a rollout of its own::

    from crevnet.deploy.loader import load_exported
    from crevnet.nn.stream import FrameStream

    stream = FrameStream(load_exported("export/"))   # ONNX Runtime, or TorchScript for a .pt export
    stream.push(frames)                              # (B, T, C, H, W) in [0, 1]
    future = stream.forecast(10)                     # (B, 10, C, H, W)

``onnxruntime`` is imported only for an ONNX folder (optional extra ``pip install -e ".[export]"``).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crevnet.deploy.manifest import FORMATS, GRAPHS, MANIFEST, MANIFEST_FORMAT
from crevnet.errors import DataError
from crevnet.nn.stream import StreamGraphs

__all__ = ["OrtGraph", "load_exported", "read_manifest"]


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check the ``manifest.json`` of an export folder.

    Raises:
        DataError: no folder, no manifest, or a manifest that is not a crevnet export's.
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise DataError(f"{folder}: no {MANIFEST}; expected a folder written by 'crevnet export'")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable JSON manifest ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("crevnet_export") != MANIFEST_FORMAT:
        raise DataError(f"{path}: not a crevnet export manifest (format {MANIFEST_FORMAT})")
    if manifest.get("format") not in FORMATS:
        raise DataError(f"{path}: unknown format {manifest.get('format')!r}; expected one of {list(FORMATS)}")
    channels = manifest.get("state_channels")  # absent in exports older than the RPM's hidden width
    if channels is not None and (isinstance(channels, bool) or not isinstance(channels, int) or channels < 1):
        raise DataError(
            f"{path}: state_channels must be a positive number or null, got {channels!r}; "
            "export the model again"
        )
    return manifest


class OrtGraph:
    """One ONNX Runtime session called like a PyTorch graph: tensors in, tensor(s) out.

    The session runs its ops one after the other (sequential, one inter-op thread), with every graph
    optimisation on, and its intra-op threads do not spin while they wait for work: spinning threads
    take the core from the rest of the stream and from any other process (in a development comparison
    beside a busy neighbour, spinning at 2 threads about doubled the p95 latency of a new frame).

    Args:
        model: the ``.onnx`` file, or the serialized model itself.
        threads: intra-op threads of the session (0: ONNX Runtime's default).
    """

    def __init__(self, model: str | os.PathLike[str] | bytes, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, *args: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        feed = {
            name: np.ascontiguousarray(a.detach().cpu().numpy(), dtype=np.float32)
            for name, a in zip(self.inputs, args, strict=True)
        }
        outs = [torch.from_numpy(o) for o in self.session.run(None, feed)]
        return outs[0] if len(outs) == 1 else tuple(outs)


def load_exported(folder: str | os.PathLike[str], threads: int = 0) -> StreamGraphs:
    """The graphs of an export folder as :class:`~crevnet.nn.stream.StreamGraphs` (CPU).

    Args:
        folder: written by ``crevnet export`` (or :func:`crevnet.deploy.export.export_model`).
        threads: intra-op threads for ONNX Runtime (0: its default); TorchScript uses torch's.

    Raises:
        DataError: a missing or foreign folder, a missing graph file, or onnxruntime not installed.
    """
    manifest = read_manifest(folder)
    fmt = manifest["format"]
    files = {}
    for name in GRAPHS:
        entry = manifest.get("graphs", {}).get(name, {})
        path = Path(folder) / str(entry.get("file", f"{name}{FORMATS[fmt]}"))
        if not path.is_file():
            raise DataError(f"{folder}: graph file {path.name} is missing; export the model again")
        files[name] = path
    if fmt == "onnx":
        try:
            import onnxruntime  # noqa: F401
        except ImportError as err:
            raise DataError(f'{folder}: ONNX graphs need onnxruntime: pip install -e ".[export]"') from err
        graphs = {name: OrtGraph(path, threads) for name, path in files.items()}
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, still shipped
            graphs = {
                name: torch.jit.load(str(path), map_location="cpu").eval() for name, path in files.items()
            }
    return StreamGraphs(
        encode=graphs["encoder"],
        decode=graphs["decoder"],
        step=graphs["rpm_step"],
        window=int(manifest["window"]),
        state_size=int(manifest["state_size"]),
        channels=int(manifest["channels"]),
        downsample=int(manifest["downsample"]),
        frame_size=(int(manifest["frame_size"][0]), int(manifest["frame_size"][1])),
        state_channels=manifest.get("state_channels"),
        bijective=bool(manifest.get("bijective", True)),  # absent in exports older than the conventional kind
    )
