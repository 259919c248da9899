"""``crevnet fit | validate | test``: Lightning's CLI over crevnet's module and data (YAML configs).

The three share one parser (LightningCLI's subcommands); :class:`crevnet.train.cli.CrevNetCLI` holds
crevnet's defaults and the one-line errors, :mod:`crevnet.train.resume` what ``--ckpt_path`` means.
``--config`` takes a file or the name of a shipped config (:mod:`crevnet.configs`). Usage::

    crevnet fit --config quickstart
    crevnet fit --config quickstart --ckpt_path last
    crevnet test --config quickstart --ckpt_path runs/quickstart

A setting Lightning refuses (``MisconfigurationException``: an accelerator that is not there, a
negative ``max_epochs``, a monitored key never logged) is a :class:`~crevnet.errors.ConfigError`, so
it takes the one error path of every command (one line, exit status 2).
"""

from __future__ import annotations

from collections.abc import Sequence

from lightning.pytorch.utilities.exceptions import MisconfigurationException

from crevnet.commands.common import log_to_stderr
from crevnet.errors import ConfigError
from crevnet.train.cli import CrevNetCLI

__all__ = ["main"]


def main(argv: Sequence[str]) -> int:
    """Run ``crevnet fit|validate|test ARGS`` (``argv`` starts with the subcommand); returns 0."""
    argv = list(argv)
    log_to_stderr()  # the library's notes (video folders, the frame cache, init_from) on stderr
    try:
        CrevNetCLI(args=argv, run=True)
    except MisconfigurationException as err:
        command = next((a for a in argv if a in CrevNetCLI.subcommands()), "crevnet")
        raise ConfigError(f"{command}: {' '.join(str(err).split())}") from None
    return 0
