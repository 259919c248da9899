"""crevnet.models.device: the device resolver's errors and the CPU name recorded with every benchmark."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from crevnet.errors import CrevnetError
from crevnet.models.device import cpu_name, resolve_device


def test_cpu_name_reads_the_model_name_line(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: X\nmodel name\t: Example CPU @ 2.0GHz\nflags\t: avx2\n")
    assert cpu_name(info) == "Example CPU @ 2.0GHz"


def test_cpu_name_without_the_file_or_the_line_is_unknown(tmp_path: Path) -> None:
    assert cpu_name(tmp_path / "missing") == "unknown"
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\n")
    assert cpu_name(info) == "unknown"


def test_resolve_device_names_the_bad_argument() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(CrevnetError, match="--device 'gpu0': not a device"):
        resolve_device("gpu0")
