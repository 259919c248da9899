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
        # a value the class itself refuses is its own message; the data section is a subclass choice
        # (any LightningDataModule), whose errors jsonargparse wraps into a many-line Union dump
        (["--data.batch_size", "0"], "crevnet: error: MovingMNISTDataModule: need batch_size >= 1"),
        (["--model.lr", "-1"], "crevnet: error: CrevNetModule: lr must be > 0, got -1.0"),
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
    assert "Union" not in err and "Namespace(" not in err
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


def test_a_union_error_without_a_cause_keeps_the_members_reasons(tmp_path, monkeypatch) -> None:
    from lightning.pytorch.cli import LightningCLI

    from crevnet.errors import ConfigError
    from crevnet.train.cli import CrevNetCLI

    dump = (
        "Does not validate against any of the Union subtypes\nSubtypes: [A, NoneType]\nErrors:\n"
        "  - A: size must be even\n  - Expected a <class 'NoneType'>\nGiven value: Namespace(x=1)"
    )

    def refuse(self) -> None:
        raise ValueError(dump)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(LightningCLI, "instantiate_classes", refuse)
    with pytest.raises(ConfigError) as err:
        CrevNetCLI(args=["--config", str(SMOKE)], run=False)
    assert str(err.value) == "A: size must be even"
