"""Where crevnet keeps its data: argument, then ``$CREVNET_DATA_DIR``, then the project's ``data/``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_DIR_ENV", "resolve_data_dir"]

DATA_DIR_ENV = "CREVNET_DATA_DIR"
_REPO_ROOT = Path(__file__).resolve().parents[2]


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the data directory to use.

    Order: the ``data_dir`` argument; else the environment variable ``CREVNET_DATA_DIR``; else the
    repository's ``data/`` folder when crevnet runs from a source checkout (a ``pyproject.toml``
    next to the ``crevnet`` package); else ``./data`` in the current directory. The folder is not
    created here.

    Args:
        data_dir: Explicit directory, or None.

    Returns:
        The directory as an absolute path (it may not exist yet).
    """
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser().resolve()
    env = os.environ.get(DATA_DIR_ENV, "")
    if env:
        return Path(env).expanduser().resolve()
    if (_REPO_ROOT / "pyproject.toml").is_file() and (_REPO_ROOT / "crevnet").is_dir():
        return _REPO_ROOT / "data"
    return Path.cwd() / "data"
