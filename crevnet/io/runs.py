"""Where a training run's files go, and which run is the newest.

``crevnet fit`` keeps Lightning's own layout: every run gets a folder of its own, with its
checkpoints inside::

    runs/<name>/version_0/{config.yaml, metrics.csv, checkpoints/{last,best-step=N}.ckpt, report/}
    runs/<name>/version_1/...
    runs/<name>/latest -> version_1        (a symbolic link to the newest run, where supported)

Old runs are never touched by a new one. The **newest run** of ``runs/<name>`` is the version with
the highest number that holds ``checkpoints/last.ckpt``; :func:`newest_run` finds it by looking at
the folders (the ``latest`` link is a convenience for other tools and is not needed). The same
function answers ``crevnet fit --ckpt_path last`` (which run to resume), and
:func:`run_checkpoint` answers ``crevnet evaluate --ckpt`` / ``crevnet predict --ckpt``, so
``--ckpt runs/<name>`` is always the newest run's ``last.ckpt``.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from crevnet.errors import CheckpointError
from crevnet.io.atomic import TEMP_MARK

__all__ = [
    "CHECKPOINT_DIR",
    "LAST_CHECKPOINT",
    "LATEST_LINK",
    "newest_run",
    "point_latest",
    "run_checkpoint",
    "run_versions",
]

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
LATEST_LINK = "latest"
_VERSION = re.compile(r"^version_(\d+)$")


def run_versions(root: str | os.PathLike[str]) -> list[Path]:
    """The ``version_N`` folders of ``root`` (``runs/<name>``), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _VERSION.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def newest_run(root: str | os.PathLike[str]) -> Path | None:
    """The newest run of ``root``: the highest ``version_N`` holding ``checkpoints/last.ckpt``.

    Loggers that name runs otherwise (wandb: the run id) have no numbers; without any ``version_N``
    run, the run whose ``last.ckpt`` was written last is the newest. None when no run has one.
    """
    for run in reversed(run_versions(root)):
        if (run / CHECKPOINT_DIR / LAST_CHECKPOINT).is_file():
            return run
    root = Path(root)
    named = (
        [p.parent.parent for p in root.glob(f"*/{CHECKPOINT_DIR}/{LAST_CHECKPOINT}")] if root.is_dir() else []
    )
    return max(
        named, key=lambda run: (run / CHECKPOINT_DIR / LAST_CHECKPOINT).stat().st_mtime_ns, default=None
    )


def run_checkpoint(spec: str | os.PathLike[str]) -> Path:
    """The checkpoint file that a run folder ``SPEC`` means; anything but a folder comes back as it is.

    Args:
        spec: a folder of runs (``runs/<name>``: its newest run's ``last.ckpt``); a run folder
            (``runs/<name>/version_N`` or ``runs/<name>/latest``: its ``last.ckpt``); or a
            ``checkpoints`` folder (its ``last.ckpt``).

    Returns:
        The file (``spec`` itself when it is not a folder: a file, or a bundled model's name that
        :func:`crevnet.models.checkpoint.resolve_checkpoint` looks up).

    Raises:
        CheckpointError: a folder that holds no checkpoint in any of these places.
    """
    path = Path(spec)
    if not path.is_dir():
        return path
    for candidate in (path / CHECKPOINT_DIR / LAST_CHECKPOINT, path / LAST_CHECKPOINT):
        if candidate.is_file():
            return candidate
    run = newest_run(path)
    if run is not None:
        return run / CHECKPOINT_DIR / LAST_CHECKPOINT
    raise CheckpointError(
        f"checkpoint {path} is a folder without a checkpoint: expected a .ckpt file, a folder of runs "
        f"(runs/NAME: its newest run's {CHECKPOINT_DIR}/{LAST_CHECKPOINT}) or one run's folder "
        "(runs/NAME/version_N); train once with 'crevnet fit' first"
    )


def point_latest(run: str | os.PathLike[str]) -> Path | None:
    """Point ``<run's parent>/latest`` at ``run`` (a relative symbolic link, replaced atomically).

    Returns:
        The link, or None where symbolic links cannot be made (the folders are enough to find the
        newest run; see :func:`newest_run`).
    """
    run = Path(run)
    link = run.parent / LATEST_LINK
    if link.exists() and not link.is_symlink():
        return None  # a file or folder of the user's: leave it alone
    tmp = run.parent / f".{LATEST_LINK}.{os.getpid()}{TEMP_MARK}"
    try:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(run.name, tmp, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return None
    return link
