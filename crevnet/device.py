"""Which device a command runs on: one function for every command and library call."""

from __future__ import annotations

import torch

from crevnet.errors import CrevnetError

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else the CPU; other names are checked.

    Raises:
        CrevnetError: CUDA was asked for and is not available, or the name is not a device.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise CrevnetError(f"--device {device!r}: not a device; expected cpu, cuda, cuda:N or auto") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise CrevnetError(f"--device {device}: CUDA is not available here; use --device cpu or auto")
    return resolved
