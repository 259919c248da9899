"""The ``crevnet`` command line.

``crevnet fit | validate | test`` go to Lightning's CLI (YAML configs under ``configs/``);
``crevnet data``, ``crevnet evaluate`` and ``crevnet predict`` are plain argparse tools. Errors a user
can act on print one line and exit with status 2, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from crevnet.errors import CrevnetError

__all__ = ["main", "run_tool"]

USAGE = """usage: crevnet {fit,validate,test,data,evaluate,predict,export} ...

  fit        train a model (LightningCLI; e.g. crevnet fit --config configs/quickstart.yaml)
  validate   run the validation loop of a config/checkpoint
  test       run the test loop of a config/checkpoint
  data       fetch/check MNIST, write a surrogate Moving MNIST test set
  evaluate   metrics, baselines and a report for a checkpoint
  predict    predict future frames of any clip (--stream: a video or camera, frame by frame)
  export     write the encoder, decoder and RPM step as ONNX or TorchScript graphs
"""


def run_tool(tool: Callable[[list[str]], int], argv: Sequence[str]) -> int:
    """Run a sub-tool, turning user-facing errors into one line on stderr and exit status 2.

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


def _lightning(argv: list[str]) -> int:
    from crevnet.train.cli import main as lightning_main

    return lightning_main(argv)


def _data(argv: list[str]) -> int:
    from crevnet.data.commands import main as data_main

    return data_main(argv)


def _evaluate(argv: list[str]) -> int:
    from crevnet.evaluate import main as evaluate_main

    return evaluate_main(argv)


def _predict(argv: list[str]) -> int:
    from crevnet.predict import main as predict_main

    return predict_main(argv)


def _export(argv: list[str]) -> int:
    from crevnet.export import main as export_main

    return export_main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``crevnet`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    command, rest = args[0], args[1:]
    if command in ("fit", "validate", "test"):
        return run_tool(_lightning, args)
    tools = {"data": _data, "evaluate": _evaluate, "predict": _predict, "export": _export}
    if command not in tools:
        print(f"crevnet: error: unknown command {command!r}; see 'crevnet --help'", file=sys.stderr)
        return 2
    return run_tool(tools[command], rest)


if __name__ == "__main__":
    sys.exit(main())
