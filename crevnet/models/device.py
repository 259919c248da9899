"""Which device a command runs on: one function for every command and library call."""

from __future__ import annotations

from pathlib import Path

import torch

from crevnet.errors import CrevnetError

__all__ = ["cpu_name", "resolve_device"]


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


def cpu_name(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name as the kernel reports it, for benchmark records; ``"unknown"`` elsewhere.

    Timings only compare within one machine: the CPU kind decides which kernels are fast (oneDNN's
    conv backward is several times slower on AVX2-only CPUs than with AVX-512), so every figure
    carries it.
    """
    try:
        with Path(cpuinfo).open() as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"
