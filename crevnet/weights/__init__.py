"""Models shipped inside the package: a name instead of a checkpoint path.

``crevnet predict --ckpt mmnist-cpu``, ``crevnet evaluate --ckpt mmnist-cpu`` and
``crevnet.models.checkpoint.load_model("mmnist-cpu")`` read the weights from ``crevnet/weights/`` on a fresh
install, without training. Each bundled file has the layout of :func:`crevnet.models.checkpoint.save_model`
(fp32 weights and the model config only, read with ``weights_only=True``). The model cards are in the
README ("Bundled model").
"""

from __future__ import annotations

import os
from pathlib import Path

from crevnet.errors import CheckpointError

__all__ = ["BUNDLED", "WEIGHTS_DIR", "bundled_file", "bundled_path"]

WEIGHTS_DIR = Path(__file__).resolve().parent

BUNDLED: dict[str, str] = {
    # name -> file in crevnet/weights/; the README's "Bundled model" section is its model card
    "mmnist-cpu": "mmnist-cpu.pt",
}


def bundled_path(name: str) -> Path | None:
    """The file of the bundled model ``name``, or None when no bundled model has that name."""
    file = BUNDLED.get(name)
    return None if file is None else WEIGHTS_DIR / file


def _looks_like_name(text: str) -> bool:
    # a bare word such as "mmnist-cpu": no folder part and no file suffix
    return os.sep not in text and "/" not in text and Path(text).suffix == ""


def bundled_file(ckpt: str | os.PathLike[str]) -> Path:
    """The file to read for ``ckpt``: an existing path as it is, else a bundled model's file.

    Raises:
        CheckpointError: ``ckpt`` is neither an existing file nor a bundled name (the message lists
            the bundled names), or the bundled file is missing from this install.
    """
    path = Path(ckpt)
    if path.exists():
        return path
    text = str(ckpt)
    bundled = bundled_path(text)
    if bundled is not None:
        if not bundled.is_file():
            raise CheckpointError(
                f"bundled model {text!r}: its weights {bundled} are missing from this install; "
                "reinstall crevnet (pip install -e .)"
            )
        return bundled
    if _looks_like_name(text):
        raise CheckpointError(
            f"--ckpt {text}: no such file and no bundled model of that name; bundled models: "
            + ", ".join(sorted(BUNDLED))
        )
    return path  # a missing path: the checkpoint reader names it
