"""The conventional-encoder ablation end to end on tiny shapes: fit (the Lightning module and Trainer),
evaluate the checkpoint, export it and stream the exported graphs; memory saving refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from crevnet.deploy.export import export_checkpoint
from crevnet.deploy.loader import load_exported
from crevnet.evaluation.evaluate import evaluate_checkpoint
from crevnet.nn import CrevNetConfig, EncoderConfig, FrameStream, PredictorConfig
from crevnet.nn.conventional import ConventionalDecoder, ConventionalEncoder
from crevnet.train.module import CrevNetModule

pytestmark = [
    pytest.mark.filterwarnings("ignore:You defined a `validation_step`"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*is deprecated"),
    pytest.mark.filterwarnings("ignore:.*does not have many workers"),
    pytest.mark.filterwarnings("ignore:.*torch.jit.load.*is deprecated"),
]

CONTEXT, FRAMES, SIZE = 3, 6, 16
NET = CrevNetConfig(
    encoder=EncoderConfig(dims=2, stages=(1, 1), strides=(1, 2), channels=(2, 8), kind="conventional"),
    predictor=PredictorConfig(layers=2, cell="conv_lstm"),
    window=1,
)


def test_fit_evaluate_export_and_stream(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = CrevNetModule(net=NET, context=CONTEXT, lr=1e-2)
    assert isinstance(module.net.encoder, ConventionalEncoder)
    assert isinstance(module.net.decoder, ConventionalDecoder)
    before = {k: v.clone() for k, v in module.net.state_dict().items()}
    videos = torch.rand(4, FRAMES, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    trainer = L.Trainer(
        max_steps=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, DataLoader(videos, batch_size=2), DataLoader(videos[:2], batch_size=2))
    assert trainer.global_step == 3
    # validation ran the decoder's reconstruction (lossy: nothing says it is exact) and free running
    assert torch.isfinite(trainer.callback_metrics["val/recon_max_abs"])
    assert torch.isfinite(trainer.callback_metrics["val/mse"])
    changed = [k for k, v in module.net.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("encoder.") for k in changed) and any(k.startswith("decoder.") for k in changed)
    ckpt = tmp_path / "conv.ckpt"
    trainer.save_checkpoint(ckpt)

    # evaluate: the checkpoint loads as a conventional model and is scored beside the baselines
    rng = np.random.default_rng(7)
    test = rng.integers(0, 256, size=(FRAMES, 4, SIZE, SIZE), dtype=np.uint8)  # (T, N, H, W)
    np.save(tmp_path / "test.npy", test)
    report = evaluate_checkpoint(
        ckpt, tmp_path / "report", str(tmp_path / "test.npy"), batch_size=2, device="cpu", samples=0,
        progress=False,
    )  # fmt: skip
    model = report.results["model"]
    assert np.isfinite(model["mse"]) and 0.0 <= model["ssim"] <= 1.0
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["model"]["mse"] == model["mse"]

    # export: the exported graphs stream exactly as the PyTorch model predicts
    manifest = export_checkpoint(ckpt, tmp_path / "export", "torchscript", size="train")
    assert json.loads(manifest.read_text())["bijective"] is False
    graphs = load_exported(tmp_path / "export")
    assert not graphs.bijective
    net = module.net.eval()
    clip = videos[:2, :CONTEXT]
    with torch.no_grad():
        expected = net.predict(clip, 3)
    stream = FrameStream(graphs)
    stream.push(clip)
    torch.testing.assert_close(stream.forecast(3), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["encoder", "full"])
def test_the_module_refuses_memory_saving_in_one_line(mode: str) -> None:
    with pytest.raises(ValueError) as info:
        CrevNetModule(net=NET, context=CONTEXT, memory_saving=mode)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"CrevNetModule: memory_saving '{mode}' is not available with encoder.kind")
    assert message.endswith("pass memory_saving off")


def test_a_checkpoint_written_before_the_kind_field_is_compatible() -> None:
    from crevnet.errors import CheckpointError
    from crevnet.io.checkpoint import check_compatible, config_to_dict

    reversible = CrevNetConfig(encoder=EncoderConfig(dims=2), window=1)
    saved = config_to_dict(reversible)
    del saved["encoder"]["kind"]  # what checkpoints written before the option hold
    check_compatible({"hyper_parameters": {"net": saved}}, reversible, "old.ckpt")
    with pytest.raises(
        CheckpointError, match=r"encoder\.kind: checkpoint 'reversible', config 'conventional'"
    ):
        conventional = CrevNetConfig(encoder=EncoderConfig(dims=2, kind="conventional"), window=1)
        check_compatible({"hyper_parameters": {"net": saved}}, conventional, "old.ckpt")
