"""What every ``crevnet`` command shares: its parser, the arguments several commands take, the error exit.

A command module (:mod:`crevnet.commands.evaluate`, ...) builds its parser from these definitions, turns
the parsed arguments into one call of a library function, and prints what it returns. Nothing here
does a command's work.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import re
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from crevnet.errors import ConfigError, CrevnetError, DataError

__all__ = [
    "CKPT_HELP",
    "CommandParser",
    "add_ckpt",
    "add_context",
    "add_device",
    "add_horizon",
    "add_model_run",
    "add_size",
    "add_threads",
    "apply_threads",
    "log_to_stderr",
    "non_negative_int",
    "parse_size",
    "positive_int",
    "run_tool",
]

CKPT_HELP = (
    "checkpoint written by 'crevnet fit' (.ckpt), a run folder (runs/NAME: its newest run's last.ckpt; "
    "runs/NAME/version_N: that run's) or a bundled model's name (mmnist-cpu)"
)


def run_tool(tool: Callable[[list[str]], int], argv: Sequence[str]) -> int:
    """Run a command, turning user-facing errors into one line on stderr and exit status 2.

    This is the one error path of every command (``fit``, ``validate`` and ``test`` included): an
    OS error that did not come through crevnet's writers still names its file and the reason in words.
    """
    try:
        return tool(list(argv))
    except CrevnetError as err:
        print(f"crevnet: error: {err}", file=sys.stderr)
    except OSError as err:
        from crevnet.io.atomic import describe_os_error

        where = f"{err.filename}: " if err.filename else ""
        print(f"crevnet: error: {where}{describe_os_error(err)}", file=sys.stderr)
    except ValueError as err:
        print(f"crevnet: error: {err}", file=sys.stderr)
    return 2


class CommandParser(argparse.ArgumentParser):
    """An ``argparse`` parser whose errors are one :class:`ConfigError` line, as ``fit``'s are.

    The usage is printed by ``--help`` only. An unknown option names the closest known ones.
    """

    def error(self, message: str) -> NoReturn:
        """Raise :class:`ConfigError`: ``<command>: <message> (did you mean ...); see '<prog> --help'``."""
        hints = []
        for option in re.findall(r"(--?[\w\-]+)", message.partition("unrecognized arguments:")[2]):
            known = [s for a in self._actions for s in a.option_strings if s.startswith("--")]
            typed = option.split("=")[0]
            close = difflib.get_close_matches(typed, known, n=2, cutoff=0.6)
            ratios = [difflib.SequenceMatcher(None, typed, c).ratio() for c in close]
            close = [c for c, r in zip(close, ratios, strict=True) if r >= ratios[0] - 0.1]  # near-ties only
            if close:
                hints.append(f"did you mean {' or '.join(f'`{c}`' for c in close)} instead of `{option}`?")
        hint = f" ({'; '.join(hints)})" if hints else ""
        command = self.prog.removeprefix("crevnet ")
        raise ConfigError(f"{command}: {message}{hint}; see '{self.prog} --help'")


def positive_int(text: str) -> int:
    """``type=`` of an argument that must be an integer >= 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """``type=`` of an argument that must be an integer >= 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def parse_size(text: str) -> str | tuple[int, int]:
    """Parse ``--size``: ``train``, ``keep`` or ``HxW`` (``64x64``).

    Raises:
        DataError: anything else.
    """
    if text in ("train", "keep"):
        return text
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) == 2 and all(p.strip().isdigit() and int(p) > 0 for p in parts):
        return int(parts[0]), int(parts[1])
    raise DataError(f"--size {text!r}: expected 'train', 'keep' or HxW with positive integers (e.g. 64x64)")


def add_ckpt(parser: argparse.ArgumentParser) -> None:
    """``--ckpt CKPT`` (required): a checkpoint file, a run folder or a bundled model's name."""
    parser.add_argument("--ckpt", required=True, help=CKPT_HELP)


def add_device(parser: argparse.ArgumentParser) -> None:
    """``--device`` (default ``auto``), resolved by :func:`crevnet.models.device.resolve_device`."""
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")


def add_horizon(parser: argparse.ArgumentParser, default: int | None, help: str) -> None:
    """``--horizon N``: frames to predict; checked by :func:`crevnet.nn.model.check_horizon`."""
    parser.add_argument("--horizon", type=int, default=default, help=help)


def add_context(parser: argparse.ArgumentParser) -> None:
    """``--context K``: observed frames (default: what the model was trained with)."""
    parser.add_argument(
        "--context", type=int, default=None, help="observed frames (default: what the model was trained with)"
    )


def add_size(parser: argparse.ArgumentParser, help: str) -> None:
    """``--size``: ``train`` (default), ``keep`` or ``HxW``; read with :func:`parse_size`."""
    parser.add_argument("--size", default="train", help=help)


def add_model_run(parser: argparse.ArgumentParser, horizon_default: int | None, horizon_help: str) -> None:
    """The arguments of a command that runs a checkpoint's model: ``--ckpt``, ``--context``,
    ``--horizon``, ``--device`` and ``--threads``."""
    add_ckpt(parser)
    add_context(parser)
    add_horizon(parser, horizon_default, horizon_help)
    add_device(parser)
    add_threads(parser)


def add_threads(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: CPU threads of the run (:func:`apply_threads`)."""
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="CPU threads torch uses for this run (default: PyTorch's choice, all cores)",
    )


def apply_threads(threads: int | None) -> None:
    """Set torch's intra-op CPU threads for this process (None: leave PyTorch's choice)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


class _StderrHandler(logging.Handler):
    """Writes each record to the ``sys.stderr`` of the moment (a test may have replaced it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr)
        except Exception:  # logging's contract: a failing handler reports, never raises
            self.handleError(record)


def log_to_stderr(level: int = logging.INFO) -> None:
    """Show the library's log records (logger ``crevnet``) of ``level`` and above on stderr.

    Each record is one line, ``crevnet: <message>``, as the commands' own notes. Calling it again
    (several commands in one process) adds no second handler.
    """
    logger = logging.getLogger("crevnet")
    logger.setLevel(level)
    if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("crevnet: %(message)s"))
        logger.addHandler(handler)
