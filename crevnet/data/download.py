"""Download a file from the first mirror that serves it with the right MD5, atomically."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from crevnet.errors import ChecksumError, DataError
from crevnet.io.atomic import atomic_write

__all__ = ["Opener", "download_file", "md5_of_file"]

# Anything that turns (url, timeout) into a readable binary stream; ``urllib.request.urlopen``
# by default, a stub in tests (which never touch the network).
Opener = Callable[..., IO[bytes]]
_CHUNK = 1 << 20


def md5_of_file(path: str | os.PathLike[str]) -> str:
    """Return the hex MD5 of a file, read in 1 MiB chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _Mismatch(Exception):
    def __init__(self, url: str, got: str) -> None:
        super().__init__(f"{url}: MD5 {got}")
        self.url = url
        self.got = got


def _fetch(url: str, dest: Path, md5: str, opener: Opener, timeout: float) -> None:
    digest = hashlib.md5()
    # atomic_write removes its temporary file on any exception (including KeyboardInterrupt),
    # so an interrupted or rejected download leaves nothing behind.
    with atomic_write(dest) as out, opener(url, timeout=timeout) as response:
        for chunk in iter(lambda: response.read(_CHUNK), b""):
            digest.update(chunk)
            out.write(chunk)
        if digest.hexdigest() != md5:
            raise _Mismatch(url, digest.hexdigest())


def download_file(
    urls: Sequence[str],
    dest: str | os.PathLike[str],
    md5: str,
    opener: Opener = urllib.request.urlopen,
    timeout: float = 60.0,
) -> Path:
    """Fetch ``dest`` from the first URL whose content has MD5 ``md5``.

    Each attempt streams into a temporary file next to ``dest`` that is moved into place with
    ``os.replace`` only after the checksum matches; a failed or interrupted attempt leaves no file.

    Args:
        urls: Mirrors, tried in order.
        dest: Destination file.
        md5: Expected hex MD5 of the file.
        opener: ``urlopen``-like callable ``opener(url, timeout=...)`` returning a binary stream.
        timeout: Seconds per connection attempt.

    Returns:
        ``dest`` as a Path.

    Raises:
        ChecksumError: Some mirror answered but no content matched ``md5``.
        DataError: No mirror could be reached.
    """
    dest = Path(dest)
    if not urls:
        raise DataError(f"{dest}: no download URL given")
    failures: list[str] = []
    mismatches: list[str] = []
    for url in urls:
        try:
            _fetch(url, dest, md5, opener, timeout)
            return dest
        except _Mismatch as err:
            mismatches.append(f"{err.url} gave MD5 {err.got}")
        except (OSError, ValueError) as err:  # URLError is an OSError; bad URLs are ValueErrors
            failures.append(f"{url}: {err}")
    if mismatches:
        raise ChecksumError(
            f"{dest.name}: checksum mismatch, expected MD5 {md5}; "
            + "; ".join(mismatches + failures)
            + f" (nothing was written to {dest})"
        )
    raise DataError(f"{dest.name}: could not download from any mirror: " + "; ".join(failures))
