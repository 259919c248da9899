"""``crevnet fit | validate | test``: Lightning's CLI over crevnet's module and data (YAML configs).

The three share one parser (LightningCLI's subcommands); :class:`crevnet.train.cli.CrevNetCLI` holds
crevnet's defaults, the resume logic and the one-line errors. Usage::

    crevnet fit --config configs/quickstart.yaml
    crevnet fit --config configs/quickstart.yaml --ckpt_path last
    crevnet test --config configs/quickstart.yaml --ckpt_path runs/quickstart
"""

from __future__ import annotations

from collections.abc import Sequence

from crevnet.train.cli import CrevNetCLI

__all__ = ["main"]


def main(argv: Sequence[str]) -> int:
    """Run ``crevnet fit|validate|test ARGS`` (``argv`` starts with the subcommand); returns 0."""
    CrevNetCLI(args=list(argv), run=True)
    return 0
