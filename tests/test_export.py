"""crevnet export: ONNX Runtime and TorchScript rollouts equal PyTorch's; the CLI and its bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from crevnet.deploy.export import export_model
from crevnet.deploy.loader import load_exported
from crevnet.deploy.manifest import state_names
from crevnet.models.checkpoint import save_model
from crevnet.nn import CrevNet
from crevnet.nn.stream import FrameStream

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "quickstart": ROOT / "configs" / "quickstart.yaml",
    "paper": ROOT / "configs" / "mmnist_crevnet3d.yaml",
}
SIZE = (32, 32)  # any multiple of 8; small keeps the paper model's rollout fast
FORMATS = ["torchscript", pytest.param("onnx", marks=pytest.mark.slow)]


def _needs(fmt: str) -> None:
    if fmt == "onnx":
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def models() -> dict[str, CrevNet]:
    torch.manual_seed(0)
    models = {name: CrevNet.from_config(path).eval() for name, path in CONFIGS.items()}
    wide = yaml.safe_load(CONFIGS["quickstart"].read_text())
    wide["model"]["net"]["predictor"]["hidden"] = 40  # cells wider than a latent half (32)
    models["wide"] = CrevNet.from_config(wide).eval()
    return models


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("config", ["quickstart", "paper", "wide"])
def test_exported_rollout_equals_pytorch(models, tmp_path: Path, config: str, fmt: str) -> None:
    _needs(fmt)
    model = models[config]
    manifest = json.loads(export_model(model, tmp_path, fmt, SIZE, context=10).read_text())
    assert model.training is False
    video = torch.rand(2, 5, 1, *SIZE, generator=torch.Generator().manual_seed(3))
    reference, exported = FrameStream(model), FrameStream(load_exported(tmp_path, threads=1))
    for stream in (reference, exported):
        stream.push(video[:, :4])  # batch 2, not the batch of the export's example
        stream.push(video[:, 4])
    expected, got = reference.forecast(10), exported.forecast(10)
    assert got.shape == expected.shape == (2, 10, 1, *SIZE)
    assert (got - expected).abs().max().item() <= 1e-4
    single = FrameStream(load_exported(tmp_path, threads=1))  # the batch axis is free
    single.push(video[:1])
    assert (single.forecast(10) - expected[:1]).abs().max().item() <= 1e-4
    # the manifest documents every graph's inputs and outputs, state tensors by name
    layers = model.config.predictor.layers
    names = state_names(manifest["state_size"], layers)
    assert list(manifest["graphs"]["rpm_step"]["inputs"]) == ["latent", *names]
    assert list(manifest["graphs"]["rpm_step"]["outputs"]) == ["latent_out", *(f"{n}_out" for n in names)]
    assert manifest["graphs"]["encoder"]["inputs"]["window"] == ["B", model.config.window, 1, *SIZE]
    assert (manifest["state_size"] == 2 * layers + 1) == (config == "paper")  # ST-LSTM memory
    hidden = model.predictor.hidden
    assert manifest["state_channels"] == hidden == (40 if config == "wide" else 32)
    assert manifest["graphs"]["rpm_step"]["inputs"][names[0]][:2] == ["B", hidden]
    assert (tmp_path / "README.md").read_text().count("rpm_step") >= 1


def test_exported_graphs_refuse_another_frame_size(models, tmp_path: Path) -> None:
    export_model(models["quickstart"], tmp_path, "torchscript", SIZE)
    stream = FrameStream(load_exported(tmp_path))
    with pytest.raises(ValueError, match="these graphs take 32×32 frames"):
        stream.push(torch.rand(1, 1, 64, 64))


def test_export_cli(tmp_path: Path, run_cli, one_error_line) -> None:
    torch.manual_seed(0)
    ckpt = save_model(CrevNet.from_config(CONFIGS["quickstart"]), tmp_path / "m.ckpt", frame_size=(16, 16))
    code, out, err = run_cli(
        "export", "--ckpt", str(ckpt), "--format", "torchscript", "--out", str(tmp_path / "e")
    )
    assert code == 0, err
    assert "rpm_step.pt" in out
    manifest = json.loads((tmp_path / "e" / "manifest.json").read_text())
    assert manifest["frame_size"] == [16, 16] and manifest["context"] == 10
    assert manifest["framing"] is None and "records no framing" in (tmp_path / "e" / "README.md").read_text()
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == [
        "README.md",
        "decoder.pt",
        "encoder.pt",
        "manifest.json",
        "rpm_step.pt",
    ]
    code, _, err = run_cli("export", "--ckpt", str(tmp_path / "nope.ckpt"), "--format", "onnx", "--out", "x")
    assert code == 2 and "nope.ckpt" in one_error_line(err)
    code, _, err = run_cli(
        "export",
        "--ckpt",
        str(ckpt),
        "--format",
        "torchscript",
        "--out",
        str(tmp_path / "f"),
        "--size",
        "20x20",
    )
    assert code == 2 and "multiples of 8" in one_error_line(err)


@pytest.mark.parametrize("framing", ["center_crop", "resize"])
def test_export_records_how_the_training_frames_were_framed(tmp_path: Path, run_cli, framing) -> None:
    # a consumer of the graphs must frame a clip of another size as crevnet predict does
    model = CrevNet.from_config(CONFIGS["quickstart"])
    ckpt = save_model(model, tmp_path / "m.ckpt", frame_size=(16, 16), framing=framing)
    out = tmp_path / "e"
    code, _, err = run_cli("export", "--ckpt", str(ckpt), "--format", "torchscript", "--out", str(out))
    assert code == 0, err
    assert json.loads((tmp_path / "e" / "manifest.json").read_text())["framing"] == framing
    words = {"center_crop": "cut the centre H×W", "resize": "resize a frame to H×W"}[framing]
    assert words in (tmp_path / "e" / "README.md").read_text()
    with pytest.raises(ValueError, match="framing 'stretch'"):
        export_model(model, tmp_path / "f", "torchscript", SIZE, framing="stretch")


def test_load_exported_bad_folder(tmp_path: Path) -> None:
    from crevnet.errors import DataError

    with pytest.raises(DataError, match=r"no manifest\.json"):
        load_exported(tmp_path)
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(DataError, match="not a crevnet export manifest"):
        load_exported(tmp_path)


@pytest.mark.parametrize("bad", [0, -1, True, "32", 2.0])
def test_a_bad_state_width_in_the_manifest_is_refused(models, tmp_path: Path, bad) -> None:
    from crevnet.errors import DataError

    path = export_model(models["quickstart"], tmp_path, "torchscript", SIZE, context=10)
    manifest = json.loads(path.read_text())
    manifest["state_channels"] = bad
    path.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"manifest\.json: state_channels must be a positive number"):
        load_exported(tmp_path)


def test_an_export_without_the_state_width_still_streams(models, tmp_path: Path) -> None:
    # Folders exported before state_channels existed: the state is one latent half wide.
    path = export_model(models["quickstart"], tmp_path, "torchscript", SIZE, context=10)
    manifest = json.loads(path.read_text())
    del manifest["state_channels"]
    path.write_text(json.dumps(manifest))
    graphs = load_exported(tmp_path, threads=1)
    assert graphs.state_channels is None
    video = torch.rand(1, 3, 1, *SIZE, generator=torch.Generator().manual_seed(0))
    old, reference = FrameStream(graphs), FrameStream(models["quickstart"])
    old.push(video)
    reference.push(video)
    assert (old.forecast(3) - reference.forecast(3)).abs().max().item() <= 1e-4
