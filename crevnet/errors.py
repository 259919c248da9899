"""Exceptions a user can act on. The CLI turns each into one line and a non-zero exit."""

from __future__ import annotations

__all__ = ["CheckpointError", "ChecksumError", "ConfigError", "CrevnetError", "DataError", "OutputError"]


class CrevnetError(Exception):
    """Base class of the errors crevnet raises for bad input; the message says what was expected."""


class DataError(CrevnetError, ValueError):
    """A data file or directory is missing, unreadable or not in the expected format."""


class ChecksumError(DataError):
    """A downloaded or local file does not have the expected checksum."""


class CheckpointError(CrevnetError, ValueError):
    """A checkpoint is missing, is not a crevnet checkpoint, or does not match the config."""


class OutputError(CrevnetError, OSError):
    """An output file or folder could not be written; the message names the target and the reason."""


class ConfigError(CrevnetError, ValueError):
    """A command-line argument or config key is unknown or has the wrong type or value."""
