"""The layout of an exported folder: its graph files, formats and manifest.

Written by :mod:`crevnet.deploy.export`, read by :mod:`crevnet.deploy.loader`; neither imports the
other.
"""

from __future__ import annotations

__all__ = ["FORMATS", "GRAPHS", "MANIFEST", "MANIFEST_FORMAT", "state_names"]

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
"""Export formats and the suffix of their graph files."""

GRAPHS = ("encoder", "decoder", "rpm_step")
"""The graph files of an export, in the order a step uses them."""

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
"""Version of the manifest's layout (``crevnet_export`` in the file)."""


def state_names(state_size: int, layers: int) -> list[str]:
    """Names of the flattened RPM state tensors: ``h0, c0, h1, c1, ...`` and ``memory`` if present."""
    names = [f"{kind}{i}" for i in range(layers) for kind in ("h", "c")]
    if state_size > 2 * layers:
        names.append("memory")
    return names
