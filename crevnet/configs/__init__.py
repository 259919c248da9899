"""The YAML configs shipped with crevnet, found by name.

The files live in this package (package data), so a plain ``pip install`` has them; the repository's
top-level ``configs/`` is a link to this folder, so ``--config configs/quickstart.yaml`` works in a
clone as before. A command that takes a config accepts a file path or a name::

    crevnet fit --config quickstart                 # this package's quickstart.yaml
    crevnet fit --config configs/quickstart.yaml    # the file, where it exists (else, the packaged one)
    crevnet config copy quickstart my.yaml          # a copy to edit

:func:`resolve_config` turns such an argument into a file path; :func:`config_names` lists the names.
"""

from __future__ import annotations

import re
from pathlib import Path

from crevnet.errors import ConfigError

__all__ = ["CONFIG_DIR", "config_names", "config_path", "describe_config", "resolve_config"]

CONFIG_DIR = Path(__file__).resolve().parent
"""The folder of the shipped configs."""
_SUFFIXES = (".yaml", ".yml")
_NAME = re.compile(r"^[\w\-]+$")
_REPO_FOLDER = "configs"  # the clone's link to this folder: configs/NAME.yaml names a packaged config


def config_names() -> list[str]:
    """The names of the shipped configs (file names without ``.yaml``), sorted."""
    return sorted(p.stem for p in CONFIG_DIR.iterdir() if p.suffix in _SUFFIXES and p.is_file())


def config_path(name: str) -> Path:
    """The shipped config called ``name`` (``quickstart`` or ``quickstart.yaml``).

    Raises:
        ConfigError: no shipped config has that name; the message lists the names.
    """
    stem = name.removesuffix(".yaml").removesuffix(".yml")
    path = CONFIG_DIR / f"{stem}.yaml"
    if _NAME.match(stem) and path.is_file():
        return path
    raise ConfigError(
        f"--config {name}: no such file and no shipped config of that name; the shipped configs are "
        f"{', '.join(config_names())} (copy one to edit it: crevnet config copy NAME FILE)"
    )


def resolve_config(spec: str) -> str:
    """The file a ``--config`` argument means: ``spec`` itself where it exists, else a shipped config.

    A name (``quickstart``, ``quickstart.yaml``) or a path into the repository's ``configs/`` folder
    (``configs/quickstart.yaml``, which a plain install does not have) means the shipped file. Anything
    else comes back unchanged (jsonargparse also takes a YAML/JSON string in place of a file).

    Raises:
        ConfigError: a name or ``configs/NAME.yaml`` path that matches no shipped config.
    """
    path = Path(spec)
    if path.exists() or "\n" in spec or spec.lstrip().startswith(("{", "[")):
        return spec
    parent = path.parent.as_posix()
    looks_like_name = _NAME.match(path.stem) is not None and (path.suffix in ("", *_SUFFIXES))
    if looks_like_name and (parent == "." or (parent == _REPO_FOLDER and path.suffix in _SUFFIXES)):
        return str(config_path(path.name))
    return spec


def describe_config(name: str) -> str:
    """The first comment line of the shipped config ``name`` (what it is for), or ""."""
    for line in config_path(name).read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            break
    return ""
