"""``crevnet fit`` errors take the one error path of every command: one line, exit 2, words not dumps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--model.lrr", "0.1"], "did you mean `model.lr`"),
        (["--trainer.max_stepz", "3"], "did you mean `trainer.max_steps`"),
        (["--model.net.predictor.layerz", "3"], "did you mean `model.net.predictor.layers`"),
        (["--model.lr", "abc"], 'model.lr": Expected a'),
    ],
)
def test_a_bad_key_or_value_is_one_line_with_a_close_match(
    tmp_path, monkeypatch, run_cli, one_error_line, extra, expected
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("fit", "--config", str(SMOKE), *extra)
    assert code == 2
    line = one_error_line(err)
    assert expected in line and "usage:" not in err and out == ""
    assert not (tmp_path / "runs").exists()  # nothing ran


def test_a_misspelled_key_in_a_yaml_file(tmp_path, monkeypatch, run_cli, one_error_line) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  lrr: 0.1\n")
    code, _, err = run_cli("fit", "--config", str(SMOKE), "--config", str(bad))
    assert code == 2
    line = one_error_line(err)
    assert "lrr" in line and "did you mean `model.lr`" in line


def test_help_still_prints_the_usage(tmp_path, monkeypatch, capsys) -> None:
    from crevnet.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--help"])
    assert exit_.value.code == 0
    assert "--model.lr" in capsys.readouterr().out


class _Payload:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize("content", ["crafted", "text", "folder"])
def test_fit_refuses_a_crafted_or_foreign_checkpoint_in_words(
    tmp_path, monkeypatch, run_cli, one_error_line, content
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "x.ckpt"
    if content == "crafted":
        torch.save({"state_dict": {}, "evil": _Payload()}, path)
    elif content == "text":
        path.write_text("hello")
    else:
        path.mkdir()
    code, out, err = run_cli("fit", "--config", str(SMOKE), "--ckpt_path", str(path))
    assert code == 2
    line = one_error_line(err)
    assert str(path) in line
    assert "weights_only=False" not in err and "\x1b" not in err and "pwned" not in out
