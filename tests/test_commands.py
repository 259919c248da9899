"""The thin command layer: shared arguments, one-line argument errors, the same command lines as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from crevnet.commands import data, evaluate, export, predict
from crevnet.commands.common import CKPT_HELP, parse_size


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["evaluate"],
            "evaluate: the following arguments are required: --ckpt; see 'crevnet evaluate --help'",
        ),
        (
            ["predict", "--ckpt", "c", "--input", "i", "--out", "o.gif", "--horizn", "3"],
            "predict: unrecognized arguments: --horizn 3 (did you mean `--horizon` instead of `--horizn`?)",
        ),
        (["export", "--ckpt", "c", "--out", "o", "--format", "tflite"], "export: argument --format: invalid"),
        (
            ["data", "surrogate", "--out", "s.npy", "--seed", "-1"],
            "data surrogate: argument --seed: expected a",
        ),
        (
            ["evaluate", "--ckpt", "c", "--threads", "0"],
            "argument --threads: expected a positive integer, got 0",
        ),
    ],
)
def test_argument_errors_are_one_line_without_the_usage(run_cli, one_error_line, argv, expected) -> None:
    code, out, err = run_cli(*argv)
    assert code == 2 and out == ""
    assert expected in one_error_line(err) and "usage:" not in err


@pytest.mark.parametrize("module", [evaluate, predict, export, data])
def test_help_prints_the_usage(module, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith(
        f"usage: crevnet {module.__name__[17:]}"
    )


def test_shared_arguments_are_defined_once() -> None:
    # --ckpt, --device, --context, --horizon of evaluate and predict come from the same definitions.
    actions = {
        name: {a.dest: a for a in module.build_parser()._actions}
        for name, module in (("e", evaluate), ("p", predict))
    }
    for dest in ("ckpt", "device", "context", "horizon", "threads"):
        assert actions["e"][dest].type == actions["p"][dest].type
    assert actions["e"]["ckpt"].help == actions["p"]["ckpt"].help == CKPT_HELP
    assert actions["e"]["horizon"].default is None and actions["p"]["horizon"].default == 10
    assert {a.dest: a for a in export.build_parser()._actions}["ckpt"].help == CKPT_HELP


def test_threads_is_applied_before_the_work(run_cli, tmp_path: Path) -> None:
    np.save(tmp_path / "c.npy", np.zeros((6, 16, 16), dtype=np.uint8))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        argv = ["--ckpt", str(tmp_path / "missing.ckpt"), "--input", str(tmp_path / "c.npy")]
        code, _, err = run_cli("predict", *argv, "--out", str(tmp_path / "p.gif"), "--threads", "2")
        assert code == 2 and "missing.ckpt" in err  # the work started (and failed) with 2 threads set
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_size_argument() -> None:
    assert parse_size("48x64") == (48, 64) and parse_size("48×64") == (48, 64)
    assert parse_size("train") == "train" and parse_size("keep") == "keep"
