"""A plain ``pip install`` works: the wheel holds every config and the bundled weights, and an installed
layout (the wheel unpacked, no clone around it) finds ``--config quickstart`` and ``configs/quickstart.yaml``.

The wheel is built from a copy of what it is made of (``pyproject.toml``, ``README.md``, ``crevnet/``), so
that setuptools' ``build/`` and ``*.egg-info`` never land in the working tree; a few seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "crevnet" / "configs"
WEIGHTS = "crevnet/weights/mmnist-cpu.pt"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this tree, built with the installed setuptools (no download)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(REPO / "crevnet", source / "crevnet", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    out = tmp / "dist"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out]
    subprocess.run([*map(str, command), str(source)], check=True, capture_output=True, timeout=300)
    (built,) = out.glob("crevnet-*.whl")
    return built


def test_the_wheel_holds_every_config_and_the_bundled_weights(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert archive.getinfo(WEIGHTS).file_size == (REPO / WEIGHTS).stat().st_size
    configs = sorted(p.name for p in CONFIGS.glob("*.yaml"))
    assert {"quickstart.yaml", "smoke.yaml"} <= set(configs)
    assert {f"crevnet/configs/{name}" for name in configs} <= names
    assert "crevnet/configs/__init__.py" in names
    assert not any(n.startswith(("configs/", "tests/", "benchmarks/")) for n in names)


def test_an_installed_layout_finds_the_configs_by_name(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    work = tmp_path / "elsewhere"  # no configs/ folder here: only the installed package has them
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}

    def python(code: str, *argv: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", code, *argv]
        return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=300)

    # one interpreter for the lookups and the config command (each start imports torch)
    probe = python(
        "import crevnet.configs as c\n"
        "from crevnet.cli import main\n"
        "print(c.__file__); print(c.resolve_config('quickstart'))\n"
        "print(c.resolve_config('configs/quickstart.yaml'))\n"
        "assert main(['config', 'list']) == 0 and main(['config', 'copy', 'smoke', 'mine.yaml']) == 0\n"
    )
    assert probe.returncode == 0, probe.stderr
    lines = probe.stdout.splitlines()
    assert Path(lines[0]).is_relative_to(site)  # the unpacked wheel, not this clone
    assert Path(lines[1]) == Path(lines[2]) == site / "crevnet" / "configs" / "quickstart.yaml"
    assert any(line.startswith("quickstart ") for line in lines) and any(
        line.startswith("smoke ") for line in lines
    )
    assert (work / "mine.yaml").read_bytes() == (CONFIGS / "smoke.yaml").read_bytes()
    # the fit command parses the shipped config by name (--print_config: parse, print, build nothing)
    printed = python(
        "import sys; from crevnet.cli import main; sys.exit(main())",
        "fit",
        "--config",
        "smoke",
        "--print_config",
    )
    assert printed.returncode == 0, printed.stderr
    assert "max_steps: 24" in printed.stdout and not (work / "runs").exists()
