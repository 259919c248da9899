"""The ``crevnet`` command line: dispatches ``crevnet <command>`` to its module in :mod:`crevnet.commands`.

``crevnet fit | validate | test`` go to Lightning's CLI (YAML configs, by file or by the name of a
shipped one: :mod:`crevnet.configs`); ``crevnet data``, ``crevnet evaluate``, ``crevnet predict``,
``crevnet export`` and ``crevnet config`` are argparse commands. Errors a user can act on print one
line and exit with status 2, never a traceback (:func:`crevnet.commands.common.run_tool`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from crevnet.commands.common import run_tool

__all__ = ["COMMANDS", "main", "run_tool"]

USAGE = """usage: crevnet {fit,validate,test,data,evaluate,predict,export,config} ...

  fit        train a model (LightningCLI; e.g. crevnet fit --config quickstart)
  validate   run the validation loop of a config/checkpoint
  test       run the test loop of a config/checkpoint
  data       fetch/check MNIST, write a surrogate Moving MNIST test set
  evaluate   metrics, baselines and a report for a checkpoint
  predict    predict future frames of any clip (--stream: a video or camera, frame by frame)
  export     write the encoder, decoder and RPM step as ONNX or TorchScript graphs
  config     list the shipped configs, print one, or copy one out to edit
"""

COMMANDS = {
    "fit": "crevnet.commands.fit",
    "validate": "crevnet.commands.fit",
    "test": "crevnet.commands.fit",
    "data": "crevnet.commands.data",
    "evaluate": "crevnet.commands.evaluate",
    "predict": "crevnet.commands.predict",
    "export": "crevnet.commands.export",
    "config": "crevnet.commands.config",
}
"""Command -> its module (imported on use, so that ``crevnet data`` never loads Lightning)."""

_LIGHTNING = ("fit", "validate", "test")  # LightningCLI's subcommands: their module gets the name too


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``crevnet`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    command = args[0]
    if command not in COMMANDS:
        print(f"crevnet: error: unknown command {command!r}; see 'crevnet --help'", file=sys.stderr)
        return 2

    def run(rest: list[str]) -> int:
        # imported inside the error path: a missing optional dependency is one line too
        return importlib.import_module(COMMANDS[command]).main(rest)

    return run_tool(run, args if command in _LIGHTNING else args[1:])


if __name__ == "__main__":
    sys.exit(main())
