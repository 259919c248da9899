"""``benchmarks/bundle_model.py`` writes a bundled model: weights only, predicting exactly as its checkpoint,
with the steps and training seconds of every sitting (``--after``: the model it was fine-tuned from)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import crevnet.weights
from crevnet.models.checkpoint import load_model, save_model
from crevnet.nn import CrevNet
from crevnet.testing import tiny_config

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bundle_model.py"


def _script():
    spec = importlib.util.spec_from_file_location("bundle_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def weights_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The bundled models' folder moved to tmp_path (the package's own files stay untouched)."""
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setattr(crevnet.weights, "WEIGHTS_DIR", folder)
    return folder


def _checkpoint(path: Path, seed: int, steps: int, seconds: float, cell: str = "conv_lstm") -> Path:
    torch.manual_seed(seed)
    return save_model(
        CrevNet(tiny_config(2, cell)), path, context=4, global_step=steps, train_seconds=seconds
    )


def test_a_fine_tuned_bundle_records_the_totals_of_both_sittings(
    tmp_path: Path, weights_dir: Path, capsys
) -> None:
    before = _checkpoint(tmp_path / "before.ckpt", 0, steps=21_262, seconds=11_100.0)
    after = _checkpoint(tmp_path / "after.ckpt", 1, steps=17_000, seconds=8_400.0)
    assert _script().main(["--name", "mmnist-cpu", "--ckpt", str(after), "--after", str(before)]) == 0
    bundled = load_model("mmnist-cpu")
    assert Path(bundled.meta.path).parent == weights_dir
    assert (bundled.meta.global_step, bundled.meta.train_seconds) == (38_262, 19_500.0)
    tuned = load_model(after)
    for name, value in tuned.model.state_dict().items():  # the weights are the fine-tuned ones
        torch.testing.assert_close(bundled.model.state_dict()[name], value, rtol=0, atol=0)
    assert '"global_step": 38262' in capsys.readouterr().out

    # without --after the checkpoint's own counts; and the bundled name itself may be the start
    assert _script().main(["--name", "mmnist-cpu", "--ckpt", str(before)]) == 0
    assert load_model("mmnist-cpu").meta.global_step == 21_262
    assert _script().main(["--name", "mmnist-cpu", "--ckpt", str(after), "--after", "mmnist-cpu"]) == 0
    assert load_model("mmnist-cpu").meta.global_step == 38_262


def test_after_a_model_of_another_config_is_refused(tmp_path: Path, weights_dir: Path, capsys) -> None:
    before = _checkpoint(tmp_path / "before.ckpt", 0, steps=10, seconds=5.0, cell="st_lstm")
    after = _checkpoint(tmp_path / "after.ckpt", 1, steps=10, seconds=5.0)
    assert _script().main(["--name", "mmnist-cpu", "--ckpt", str(after), "--after", str(before)]) == 2
    assert "another model config" in capsys.readouterr().err
    assert not list(weights_dir.iterdir())  # nothing written
