"""``crevnet fit`` errors take the one error path of every command: one line, exit 2, words not dumps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from crevnet.io.checkpoint import read_checkpoint

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
        # a setting Lightning refuses (MisconfigurationException) takes the same path
        (["--trainer.max_epochs", "-5"], "crevnet: error: fit: `max_epochs` must be a non-negative integer"),
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


def test_resuming_with_a_budget_the_checkpoint_has_passed_says_what_to_pass(
    smoke_env: Path, run_cli, one_error_line
) -> None:
    # Lightning's own check is a 40-line traceback (max_epochs) or none (max_steps: nothing trains).
    epochs = ["--trainer.max_steps=-1", "--trainer.max_epochs=2", "--data.train_size=8"]  # 2 steps/epoch
    code, _, err = run_cli("fit", "--config", "smoke", *epochs)  # the shipped config, by name
    assert code == 0, err
    run = smoke_env / "runs" / "smoke" / "version_0"
    metrics = (run / "metrics.csv").read_bytes()
    last = run / "checkpoints" / "last.ckpt"
    assert read_checkpoint(last)["epoch"] == 2 and read_checkpoint(last)["global_step"] == 4
    stamp = last.stat().st_mtime_ns

    fewer = ["--trainer.max_steps=-1", "--trainer.max_epochs", "1", "--data.train_size=8"]
    code, out, err = run_cli("fit", "--config", str(SMOKE), *fewer, "--ckpt_path", "last")
    assert code == 2 and out == ""
    assert one_error_line(err) == (
        f"crevnet: error: --trainer.max_epochs 1: the checkpoint {last.relative_to(smoke_env)} "
        "is already at epoch 2; pass --trainer.max_epochs 3 or more to train further, or start a new run "
        "without --ckpt_path"
    )
    code, out, err = run_cli("fit", "--config", str(SMOKE), "--trainer.max_steps", "3", "--ckpt_path", "last")
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert "--trainer.max_steps 3: the checkpoint" in line and "already at step 4" in line
    assert "pass --trainer.max_steps 5 or more" in line
    # refused before anything was touched: the run's rows and checkpoint are as they were, no new run
    assert (run / "metrics.csv").read_bytes() == metrics and not list(run.glob("metrics.before-*"))
    assert last.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in run.parent.iterdir()) == ["latest", "version_0"]


def test_an_unknown_config_name_lists_the_shipped_ones(
    tmp_path, monkeypatch, run_cli, one_error_line
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("fit", "--config", "quickstrat")
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert "--config quickstrat: no such file and no shipped config of that name" in line
    assert "quickstart, quickstart_conventional, smoke" in line
