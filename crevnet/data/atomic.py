"""Moved to :mod:`crevnet.io.atomic` (the one atomic writer); these names stay for existing imports."""

from __future__ import annotations

from crevnet.io.atomic import atomic_path, atomic_write, atomic_write_bytes

__all__ = ["atomic_path", "atomic_write", "atomic_write_bytes"]
