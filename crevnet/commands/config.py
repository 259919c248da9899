"""``crevnet config``: list the shipped configs, print one, or copy one out to edit.

Usage::

    crevnet config list                        # the names, each with what it is for
    crevnet config show quickstart             # print the file
    crevnet config copy quickstart my.yaml     # a copy to edit (then: crevnet fit --config my.yaml)

The configs ship with the package (:mod:`crevnet.configs`), so these work from a plain ``pip install``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from crevnet.commands.common import CommandParser
from crevnet.configs import config_names, config_path, describe_config
from crevnet.errors import OutputError
from crevnet.io.atomic import atomic_write_bytes

__all__ = ["build_parser", "main"]


def _list(args: argparse.Namespace) -> int:
    names = config_names()
    width = max(len(n) for n in names)
    print("\n".join(f"{n:<{width}}  {describe_config(n)}".rstrip() for n in names))
    return 0


def _show(args: argparse.Namespace) -> int:
    print(config_path(args.name).read_text(encoding="utf-8"), end="")
    return 0


def _copy(args: argparse.Namespace) -> int:
    source = config_path(args.name)
    dest = Path(args.dest) if args.dest is not None else Path(source.name)
    if dest.is_dir():
        dest = dest / source.name
    if dest.exists() and not args.force:
        raise OutputError(f"{dest} exists; pass --force to replace it, or name another file")
    atomic_write_bytes(dest, source.read_bytes())
    print(f"wrote {dest} (a copy of the shipped {source.stem}); train with it: crevnet fit --config {dest}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``crevnet config``."""
    parser = CommandParser(
        prog="crevnet config", description="List, print or copy the YAML configs shipped with crevnet."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{list,show,copy}")
    listing = sub.add_parser("list", help="the shipped configs' names, each with what it is for")
    listing.set_defaults(func=_list)
    show = sub.add_parser("show", help="print a shipped config")
    show.add_argument("name", help="a name from 'crevnet config list' (e.g. quickstart)")
    show.set_defaults(func=_show)
    copy = sub.add_parser("copy", help="copy a shipped config to a file, to edit it")
    copy.add_argument("name", help="a name from 'crevnet config list' (e.g. quickstart)")
    copy.add_argument(
        "dest", nargs="?", default=None, help="the file or folder to write (default: ./NAME.yaml)"
    )
    copy.add_argument("--force", action="store_true", help="replace DEST if it exists")
    copy.set_defaults(func=_copy)
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``crevnet config`` with ``argv`` (without the program name); return the exit status."""
    args = build_parser().parse_args(list(argv))
    return args.func(args)
