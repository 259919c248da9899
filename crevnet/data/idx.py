"""IDX files (the MNIST format), gzip-compressed or raw, read and validated.

Layout (big-endian): two zero bytes, a type code, the number of dimensions ``d``, then ``d``
32-bit sizes, then the data in row-major order. MNIST images have magic 2051 (uint8, 3 dims) and
labels magic 2049 (uint8, 1 dim).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from crevnet.errors import DataError

__all__ = ["read_idx", "read_idx_bytes"]

# IDX type code -> numpy dtype (big-endian where it matters).
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _load_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError as err:
        raise DataError(f"{path}: file not found (expected an IDX file)") from err
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError as err:
        raise DataError(
            f"{path}: truncated gzip file (the compressed stream ends early); "
            "expected a complete gzip-compressed IDX file — delete it and download it again"
        ) from err
    except (OSError, zlib.error) as err:
        raise DataError(f"{path}: corrupt gzip data ({err}); expected a gzip-compressed IDX file") from err


def read_idx_bytes(data: bytes, name: str = "<bytes>", expected_magic: int | None = None) -> np.ndarray:
    """Parse an uncompressed IDX buffer.

    Args:
        data: The file content (already gunzipped).
        name: Shown in error messages (usually the file path).
        expected_magic: If given, the 32-bit magic number the header must carry (2051 for MNIST
            images, 2049 for labels).

    Returns:
        A read-only array with the dtype and shape from the header.

    Raises:
        DataError: Wrong magic number, unknown type code, or a size that does not match the header.
    """
    if len(data) < 4:
        raise DataError(f"{name}: only {len(data)} bytes; expected an IDX header of at least 4 bytes")
    magic = int.from_bytes(data[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise DataError(
            f"{name}: wrong magic number {magic} (0x{magic:08x}); expected {expected_magic} "
            f"(0x{expected_magic:08x}) — is this the right IDX file?"
        )
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(
            f"{name}: not an IDX file (magic 0x{magic:08x}); expected two zero bytes and a type code "
            f"in {sorted(_IDX_DTYPES)}"
        )
    dtype = _IDX_DTYPES[data[2]]
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: truncated IDX header; expected {header} bytes for {ndim} dims")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(
            f"{name}: {len(data) - header} data bytes after the header; expected {expected} "
            f"for shape {shape} of {dtype} (file truncated or padded)"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array


def read_idx(path: str | os.PathLike[str], expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file, gzip-compressed (detected from its content) or raw.

    Args:
        path: The file.
        expected_magic: Optional magic number to require (2051 images, 2049 labels).

    Returns:
        A read-only array with the dtype and shape stored in the header.

    Raises:
        DataError: Missing file, truncated or corrupt gzip, wrong magic, size mismatch.
    """
    path = Path(path)
    return read_idx_bytes(_load_bytes(path), name=str(path), expected_magic=expected_magic)
