"""Every reversible form exports and streams (``predict --stream``); the bundled model is unchanged.

The imports of the deployment functions are gathered here (and only here) on purpose: those modules are
moving into subpackages, and this file is the one place to update.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from crevnet.data.video import write_mp4  # -> crevnet.data.frames
from crevnet.deploy.export import export_model  # -> crevnet.deploy.export
from crevnet.deploy.loader import load_exported  # -> crevnet.deploy.loader
from crevnet.deploy.stream import run_stream  # -> crevnet.deploy.stream
from crevnet.models.checkpoint import load_model, save_model  # -> crevnet.models.checkpoint
from crevnet.nn import CrevNet, CrevNetConfig, EncoderConfig, PredictorConfig, space_to_depth, split_halves
from crevnet.nn.stream import FrameStream

SIZE = 16
FORMS = [
    ("irevnet", "fixed"),
    ("additive", "fixed"),
    ("revnet", "fixed"),
    ("affine", "fixed"),
    ("irn", "fixed"),
    ("affine", "invconv"),
    ("irevnet", "invconv"),
]


def net(coupling: str, mixing: str) -> CrevNetConfig:
    return CrevNetConfig(
        encoder=EncoderConfig(
            dims=3, stages=(1, 1), strides=(1, 2), channels=(2, 8), coupling=coupling, mixing=mixing
        ),
        predictor=PredictorConfig(layers=2),
        window=3,
    )


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    frames = torch.rand(6, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    return write_mp4(frames, tmp_path_factory.mktemp("clip") / "clip.mp4", fps=5)


@pytest.mark.parametrize("coupling,mixing", FORMS)
def test_each_form_exports_and_streams(coupling, mixing, video, tmp_path) -> None:
    torch.manual_seed(0)
    model = CrevNet(net(coupling, mixing)).eval()
    ckpt = save_model(model, tmp_path / "m.ckpt", context=4, frame_size=(SIZE, SIZE))
    loaded = load_model(ckpt).model.eval()
    assert loaded.config.encoder.coupling == coupling and loaded.config.encoder.mixing == mixing
    export_model(loaded, tmp_path / "export", "torchscript", (SIZE, SIZE), context=4)
    clip = torch.rand(2, 5, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    reference, exported = FrameStream(loaded), FrameStream(load_exported(tmp_path / "export", threads=1))
    for stream in (reference, exported):
        stream.push(clip)
    expected, got = reference.forecast(4), exported.forecast(4)
    assert (got - expected).abs().max().item() <= 1e-4
    report = run_stream(str(ckpt), str(video), 2, tmp_path / "s.gif", backend="torchscript")
    assert (tmp_path / "s.gif").stat().st_size > 0
    assert report is not None


def test_bundled_checkpoint_is_the_irevnet_form_bit_for_bit() -> None:
    """The bundled weights load into the default form with every parameter name, and the encoder is
    exactly the i-RevNet recursion ``(x1, x2) -> (S(x2), S(x1) + F(x2))`` written out here."""
    loaded = load_model("mmnist-cpu")
    model = loaded.model.eval()
    cfg = model.config.encoder
    assert (cfg.coupling, cfg.mixing) == ("irevnet", "fixed")
    names = [n for n, _ in model.encoder.named_parameters()]
    assert names and all(n.startswith("blocks.") and ".f." in n for n in names)
    h, w = loaded.meta.frame_size
    x = torch.rand(2, cfg.in_channels, *([3] if cfg.dims == 3 else []), h, w)
    with torch.no_grad():
        z = model.encoder(x)
        v = x
        for _ in range(cfg.init_downsample.bit_length() - 1):
            v = space_to_depth(v)
        x1, x2 = split_halves(v)
        for block in model.encoder.blocks:
            f = block.f(x2)
            if block.stride == 2:
                x1, x2 = space_to_depth(x1), space_to_depth(x2)
            x1, x2 = x2, x1 + f
        assert torch.equal(z, torch.cat((x1, x2), 1))
        assert torch.equal(model.encoder.log_abs_det_jacobian(x), torch.zeros(2))


@pytest.mark.slow
@pytest.mark.parametrize("coupling,mixing", [("irn", "fixed"), ("affine", "invconv")])
def test_onnx_export_of_the_scaled_forms_and_invconv(coupling, mixing, tmp_path) -> None:
    for module in ("onnx", "onnxruntime", "onnxscript"):
        pytest.importorskip(module)
    torch.manual_seed(0)
    model = CrevNet(net(coupling, mixing)).eval()
    export_model(model, tmp_path, "onnx", (SIZE, SIZE), context=4)
    clip = torch.rand(2, 5, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    reference, exported = FrameStream(model), FrameStream(load_exported(tmp_path, threads=1))
    for stream in (reference, exported):
        stream.push(clip)
    assert (exported.forecast(4) - reference.forecast(4)).abs().max().item() <= 1e-4
