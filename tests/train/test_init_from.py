"""``--model.init_from``: a new run that starts from a checkpoint's weights (fine-tuning), with its own
optimizer, schedules and step count, unlike ``--ckpt_path``, which resumes a run exactly."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import lightning as L
import pytest
import torch

from crevnet.cli import main as crevnet_main
from crevnet.errors import CheckpointError
from crevnet.models.checkpoint import load_model
from crevnet.nn.model import load_config
from crevnet.train.module import CrevNetModule

REPO = Path(__file__).resolve().parents[2]


class _Snapshot(L.Callback):
    """Copies the weights, the step and the optimizer state when training starts."""

    def on_train_start(self, trainer, pl_module) -> None:
        self.weights = {k: v.detach().clone() for k, v in pl_module.net.state_dict().items()}
        self.step = trainer.global_step
        self.optimizer_state = dict(trainer.optimizers[0].state_dict()["state"])


def test_a_fine_tune_starts_from_the_checkpoint_weights_with_fresh_training_state(
    smoke_env: Path, fit_smoke
) -> None:
    first = fit_smoke(smoke_env / "a", ["--trainer.max_steps=3", "--data.train_size=16"])
    ckpt = smoke_env / "a" / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    trained = load_model(ckpt).model.state_dict()
    seen = _Snapshot()
    second = fit_smoke(
        smoke_env / "b",
        ["--trainer.max_steps=2", "--data.train_size=16", f"--model.init_from={ckpt}"],
        [seen],
    )
    assert seen.step == 0 and seen.optimizer_state == {}  # a new run, not a resume
    for name, value in trained.items():
        torch.testing.assert_close(seen.weights[name], value, rtol=0, atol=0)
    # and a run without init_from starts elsewhere (the test would pass vacuously otherwise)
    fresh = first.model.net.state_dict()
    assert any(not torch.equal(fresh[k], second.model.net.state_dict()[k]) for k in fresh)
    assert second.trainer.global_step == 2
    saved = torch.load(
        smoke_env / "b" / "smoke" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True
    )
    assert "init_from" not in saved["hyper_parameters"]  # a run option, in config.yaml only
    assert str(ckpt) in (smoke_env / "b" / "smoke" / "version_0" / "config.yaml").read_text()


def test_a_bundled_model_name_is_a_starting_point_for_its_own_config() -> None:
    net = load_config(REPO / "configs" / "quickstart.yaml")
    module = CrevNetModule(net, init_from="mmnist-cpu")
    bundled = load_model("mmnist-cpu").model.state_dict()
    for name, value in bundled.items():
        torch.testing.assert_close(module.net.state_dict()[name], value, rtol=0, atol=0)


def test_a_deeper_rpm_grows_from_the_bundled_model(capsys: pytest.CaptureFixture[str]) -> None:
    # quickstart.yaml with 6 RPM layers instead of the bundle's 4: encoder and the 4 layers loaded, the
    # 2 new gates nearly closed, so the grown model predicts close to the bundled one.
    net = load_config(REPO / "configs" / "quickstart.yaml")
    deeper = replace(net, predictor=replace(net.predictor, layers=6))
    module = CrevNetModule(deeper, init_from="mmnist-cpu")
    assert "its 4 RPM layers loaded, 2 more added on top" in capsys.readouterr().err
    bundled = load_model("mmnist-cpu").model
    grown = module.net.eval()
    for name, value in bundled.state_dict().items():
        assert torch.equal(grown.state_dict()[name], value), name
    for gate in list(grown.predictor.gates)[4:]:
        assert not gate.conv.weight.any() and torch.allclose(gate.conv.bias, torch.tensor(-4.0))
    clip = torch.rand(1, 12, 1, 64, 64, generator=torch.Generator().manual_seed(0)).round()
    with torch.no_grad():
        want, got = bundled.predict(clip[:, :10], 2), grown.predict(clip[:, :10], 2)
    assert 0 < (got - want).abs().max() < 0.05


def test_init_from_a_checkpoint_of_another_model_config_names_the_file_and_the_keys(
    smoke_env: Path, fit_smoke, capsys: pytest.CaptureFixture[str]
) -> None:
    fit_smoke(smoke_env / "a", ["--trainer.max_steps=1", "--data.train_size=8"])
    ckpt = smoke_env / "a" / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    smoke = REPO / "configs" / "smoke.yaml"
    args = ["fit", "--config", str(smoke), "--model.net.predictor.layers=3", f"--model.init_from={ckpt}"]
    assert crevnet_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()  # Lightning's "Seed set to 0" may come first
    assert "Traceback" not in "\n".join(err) and err[-1].startswith("crevnet: error: --model.init_from")
    assert str(ckpt) in err[-1] and "predictor.layers: checkpoint 2, config 3" in err[-1]
    with pytest.raises(CheckpointError, match="no such file and no bundled model of that name"):
        CrevNetModule(load_config(smoke), init_from="no-such-model")


def test_a_fine_tune_resumes_without_its_starting_checkpoint(smoke_env: Path, fit_smoke) -> None:
    # The resumed run's weights come from its own last.ckpt, so the file it started from is not read
    # again: it may have been moved or deleted since; config.yaml still records where the run began.
    fit_smoke(smoke_env / "a", ["--trainer.max_steps=2", "--data.train_size=16"])
    start = smoke_env / "start.ckpt"
    (smoke_env / "a" / "smoke" / "version_0" / "checkpoints" / "last.ckpt").rename(start)
    first = ["--data.train_size=16", f"--model.init_from={start}"]
    fit_smoke(smoke_env / "b", ["--trainer.max_steps=2", *first])
    start.unlink()
    resumed = fit_smoke(smoke_env / "b", ["--trainer.max_steps=4", *first, "--ckpt_path=last"])
    assert resumed.trainer.global_step == 4
    assert str(start) in (smoke_env / "b" / "smoke" / "version_0" / "config.yaml").read_text()


def test_frozen_parameters_keep_their_values_and_stay_out_of_the_optimizer(
    smoke_env: Path, fit_smoke, same_training_state
) -> None:
    freeze = "--model.freeze=[encoder, predictor.cells.0]"
    seen = _Snapshot()
    run = fit_smoke(smoke_env / "a", ["--trainer.max_steps=3", "--data.train_size=16", freeze], [seen])
    after = run.model.net.state_dict()
    frozen = [n for n in seen.weights if n.startswith(("encoder.", "predictor.cells.0."))]
    trained = [n for n in seen.weights if n not in frozen and "num_batches" not in n]
    assert frozen and trained
    for name in frozen:
        assert torch.equal(after[name], seen.weights[name]), name
    assert all(not torch.equal(after[n], seen.weights[n]) for n in trained if n.endswith("weight"))
    optimized = {id(p) for group in run.trainer.optimizers[0].param_groups for p in group["params"]}
    named = dict(run.model.net.named_parameters())
    assert optimized == {id(p) for n, p in named.items() if n not in frozen}
    # an interrupted frozen run resumes to the same state as one that ran straight through
    fit_smoke(smoke_env / "b", ["--trainer.max_steps=2", "--data.train_size=16", freeze])
    resumed = fit_smoke(
        smoke_env / "b", ["--trainer.max_steps=3", "--data.train_size=16", freeze, "--ckpt_path=last"]
    )
    same_training_state(run, resumed, 3)


def test_freezing_a_name_the_model_lacks_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    smoke = REPO / "configs" / "smoke.yaml"
    assert crevnet_main(["fit", "--config", str(smoke), "--model.freeze=[encoder, decoder]"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("crevnet: error: --model.freeze 'decoder': no model parameter has that name")
    assert "'predictor.cells.0'" in err[-1] and "Traceback" not in "\n".join(err)


@pytest.mark.parametrize("mode", ["encoder", "full"])
def test_freezing_works_with_the_memory_saving_backward(smoke_env: Path, fit_smoke, mode: str) -> None:
    seen = _Snapshot()
    extra = ["--trainer.max_steps=2", "--data.train_size=16", f"--model.memory_saving={mode}"]
    run = fit_smoke(smoke_env / mode, [*extra, "--model.freeze=[encoder, predictor.gates.1]"], [seen])
    after = run.model.net.state_dict()
    for name, before in seen.weights.items():
        frozen = name.startswith(("encoder.", "predictor.gates.1."))
        if frozen or name.endswith("weight"):
            assert torch.equal(after[name], before) == frozen, name
