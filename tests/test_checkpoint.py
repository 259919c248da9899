"""crevnet.models.checkpoint: a CrevNet out of a real Lightning checkpoint, one clear error per bad file."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from crevnet.errors import CheckpointError
from crevnet.models.checkpoint import DEFAULT_FRAME_SIZE, load_model, save_model
from crevnet.nn.model import CrevNet

# Lightning's notes about a fit without validation data are expected here.
pytestmark = [
    pytest.mark.filterwarnings("ignore:You defined a `validation_step`"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*is deprecated"),
]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory, fit_tiny) -> tuple[Path, torch.nn.Module]:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    return path, fit_tiny(path)


def _raw(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def test_loads_the_lightning_checkpoint(tiny_net, fitted: tuple[Path, torch.nn.Module]) -> None:
    path, module = fitted
    loaded = load_model(path)
    assert loaded.config == tiny_net
    assert not loaded.model.training
    trained = module.net.state_dict()
    got = loaded.model.state_dict()
    assert set(got) == set(trained)
    for key, value in trained.items():
        assert torch.equal(got[key], value), key
    # Two Adam steps moved the weights away from a fresh model's.
    fresh = CrevNet(tiny_net).state_dict()
    assert any(not torch.equal(fresh[k], got[k]) for k in got)
    assert loaded.meta.context == 3
    assert loaded.meta.global_step == 2
    # CrevNetModule records the (H, W) of its training clips; older checkpoints fall back to 64×64.
    recorded = loaded.meta.frame_size_recorded
    assert loaded.meta.frame_size == ((16, 16) if recorded else DEFAULT_FRAME_SIZE)
    video = torch.rand(2, 4, 1, 16, 16)
    with torch.no_grad():
        module.net.eval()
        assert torch.equal(loaded.model.predict(video, 2), module.net.predict(video, 2))


def test_save_model_round_trip_records_context_and_size(tiny_net, tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = CrevNet(tiny_net)
    path = save_model(model, tmp_path / "sub" / "m.ckpt", context=5, frame_size=(32, 48))
    loaded = load_model(path)
    assert loaded.meta.context == 5
    assert loaded.meta.frame_size == (32, 48) and loaded.meta.frame_size_recorded
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value)
    assert [p.name for p in path.parent.iterdir()] == ["m.ckpt"]  # no temporary file left


def test_compiled_prefix_and_pickled_config_dataclass(
    tiny_net, fitted: tuple[Path, torch.nn.Module], tmp_path: Path
) -> None:
    path, module = fitted
    raw = _raw(path)
    raw["state_dict"] = {k.replace("net.", "net._orig_mod.", 1): v for k, v in raw["state_dict"].items()}
    raw["hyper_parameters"]["net"] = tiny_net  # the dataclass itself, allowlisted for weights_only
    torch.save(raw, tmp_path / "compiled.ckpt")
    loaded = load_model(tmp_path / "compiled.ckpt")
    assert loaded.config == tiny_net
    for key, value in module.net.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value)


def test_import_does_not_load_lightning() -> None:
    code = (
        "import sys, crevnet.models.checkpoint, crevnet.evaluation.evaluate, crevnet.inference.predict; "
        "bad = [m for m in ('lightning', 'pytorch_lightning', 'wandb') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _write_variant(tmp_path: Path, raw: dict, name: str) -> Path:
    path = tmp_path / name
    torch.save(raw, path)
    return path


class _Foreign:
    pass


def test_errors_missing_folder_and_not_torch(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"checkpoint not found: .*absent\.ckpt"):
        load_model(tmp_path / "absent.ckpt")
    with pytest.raises(CheckpointError, match="is a folder"):
        load_model(tmp_path)
    np.save(tmp_path / "clip.npy", np.zeros((2, 3), np.uint8))
    with pytest.raises(CheckpointError, match=r"clip\.npy: not a torch checkpoint"):
        load_model(tmp_path / "clip.npy")
    (tmp_path / "empty.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a torch checkpoint"):
        load_model(tmp_path / "empty.ckpt")


def test_errors_truncated_and_unsafe(fitted: tuple[Path, torch.nn.Module], tmp_path: Path) -> None:
    path, _ = fitted
    data = path.read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged or truncated"):
        load_model(tmp_path / "cut.ckpt")
    torch.save({"hyper_parameters": {"net": _Foreign()}}, tmp_path / "foreign.ckpt")
    with pytest.raises(CheckpointError, match=r"refused to load: it pickles .*_Foreign"):
        load_model(tmp_path / "foreign.ckpt")
    torch.save([1, 2], tmp_path / "list.ckpt")
    with pytest.raises(CheckpointError, match="holds a list, not a checkpoint dict"):
        load_model(tmp_path / "list.ckpt")


def test_errors_not_ours(fitted: tuple[Path, torch.nn.Module], tmp_path: Path) -> None:
    path, _ = fitted
    raw = _raw(path)

    no_net = copy.deepcopy(raw)
    del no_net["hyper_parameters"]["net"]
    with pytest.raises(CheckpointError, match=r"no crevnet model config \(hyper_parameters\['net'\]"):
        load_model(_write_variant(tmp_path, no_net, "no_net.ckpt"))

    bad_net = copy.deepcopy(raw)
    bad_net["hyper_parameters"]["net"]["encoder"]["colour"] = True
    with pytest.raises(CheckpointError, match=r"unknown key\(s\) \['colour'\].*not a valid CrevNet config"):
        load_model(_write_variant(tmp_path, bad_net, "bad_net.ckpt"))

    other = copy.deepcopy(raw)
    other["state_dict"] = {"backbone.weight": torch.zeros(3)}
    with pytest.raises(CheckpointError, match="no CrevNet weights in its state_dict"):
        load_model(_write_variant(tmp_path, other, "other.ckpt"))

    no_state = copy.deepcopy(raw)
    del no_state["state_dict"]
    with pytest.raises(CheckpointError, match="no 'state_dict'"):
        load_model(_write_variant(tmp_path, no_state, "no_state.ckpt"))


def test_errors_weights_do_not_match_config(fitted: tuple[Path, torch.nn.Module], tmp_path: Path) -> None:
    path, _ = fitted
    raw = _raw(path)

    missing = copy.deepcopy(raw)
    dropped = sorted(missing["state_dict"])[0]
    del missing["state_dict"][dropped]
    with pytest.raises(CheckpointError, match=rf"1 missing \(e\.g\. {dropped[4:]}\)"):
        load_model(_write_variant(tmp_path, missing, "missing.ckpt"))

    wider = copy.deepcopy(raw)
    wider["hyper_parameters"]["net"]["predictor"]["kernel_size"] = 5  # valid config, other shapes
    with pytest.raises(CheckpointError, match=r"weights do not match .* of another shape"):
        load_model(_write_variant(tmp_path, wider, "wider.ckpt"))


def test_the_compatibility_check_ignores_run_options_older_checkpoints_recorded(
    fitted: tuple[Path, torch.nn.Module],
) -> None:
    from crevnet.io.checkpoint import check_compatible

    path, _ = fitted
    raw = _raw(path)
    current = copy.deepcopy(raw["hyper_parameters"]["net"])
    raw["hyper_parameters"]["net"]["encoder"]["memory_saving"] = True  # what older versions wrote
    raw["hyper_parameters"]["net"]["predictor"]["bf16"] = False
    check_compatible(raw, current, "old.ckpt")  # the same network: no error
    current["predictor"]["layers"] += 1
    with pytest.raises(CheckpointError, match=r"old\.ckpt was trained .*predictor\.layers") as err:
        check_compatible(raw, current, "old.ckpt")
    assert "memory_saving" not in str(err.value) and "bf16" not in str(err.value)
