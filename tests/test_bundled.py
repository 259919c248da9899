"""Bundled models: a name instead of a checkpoint path, on a fresh install."""

from __future__ import annotations

import pytest
import torch

from crevnet.errors import CheckpointError
from crevnet.models.checkpoint import load_model, resolve_checkpoint
from crevnet.weights import BUNDLED, bundled_path


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_model_loads_by_name_and_predicts(name):
    path = bundled_path(name)
    assert path is not None and path.is_file(), f"bundled weights missing: {path}"
    assert path.stat().st_size < 8 * 2**20  # weights only, fp32: a few MB
    loaded = load_model(name)
    assert loaded.meta.path == str(path)
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    # the model card's facts travel with the weights (save_model's global_step / train_seconds)
    assert loaded.meta.global_step > 1000 and loaded.meta.train_seconds > 60
    h, w = loaded.meta.frame_size
    context = torch.rand(2, loaded.meta.context, loaded.config.encoder.in_channels, h, w)
    with torch.no_grad():
        pred = loaded.model.predict(context, horizon=3)
    assert pred.shape == (2, 3, loaded.config.encoder.in_channels, h, w)
    assert torch.isfinite(pred).all()


def test_an_unknown_name_lists_the_bundled_ones():
    with pytest.raises(CheckpointError) as err:
        load_model("mmnist-gpu")
    message = str(err.value)
    assert "mmnist-gpu" in message and "no bundled model" in message
    for name in BUNDLED:
        assert name in message
    assert "\n" not in message


def test_an_existing_file_wins_over_a_bundled_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mmnist-cpu").write_bytes(b"not a checkpoint")
    assert resolve_checkpoint("mmnist-cpu").resolve() == tmp_path / "mmnist-cpu"
    with pytest.raises(CheckpointError, match="not a torch checkpoint"):
        load_model("mmnist-cpu")


def test_a_missing_path_is_named_as_a_path(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_model(tmp_path / "runs" / "last.ckpt")


def test_cli_evaluate_and_predict_name_the_bundled_models(run_cli, one_error_line, tmp_path):
    import numpy as np

    clip = tmp_path / "clip.npy"
    np.save(clip, np.random.default_rng(0).random((12, 64, 64), dtype=np.float32))
    code, _, err = run_cli(
        "predict", "--ckpt", "nope-model", "--input", str(clip), "--out", str(tmp_path / "y.gif")
    )
    assert code == 2
    assert "nope-model" in one_error_line(err) and "mmnist-cpu" in err
    code, _, err = run_cli("evaluate", "--ckpt", "nope-model", "--limit", "2", "--out", str(tmp_path / "ev"))
    assert code == 2
    assert "nope-model" in one_error_line(err) and "mmnist-cpu" in err


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_cli_predict_and_evaluate_run_on_the_bundled_model(name, run_cli, tmp_path, mnist_dir):
    import numpy as np

    clip = tmp_path / "clip.npy"
    np.save(clip, np.random.default_rng(0).random((10, 64, 64), dtype=np.float32))
    out = tmp_path / "pred.npy"
    code, _, _ = run_cli("predict", "--ckpt", name, "--input", str(clip), "--horizon", "4", "--out", str(out))
    assert code == 0
    assert np.load(out).shape[0] == 4
    code, _, _ = run_cli(
        "evaluate",
        "--ckpt",
        name,
        "--limit",
        "4",
        "--samples",
        "0",
        "--no-progress",
        "--data-dir",
        str(mnist_dir),
        "--test-set",
        "surrogate",
        "--out",
        str(tmp_path / "ev"),
    )
    assert code == 0
    assert (tmp_path / "ev" / "metrics.json").is_file()
