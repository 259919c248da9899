"""benchmarks/peers.py: loads peer code from a folder, sizes it by MACs, trains, scores, one JSON row.

The real peers (OpenSTL) are never part of the repository and never fetched here: a stand-in folder with
OpenSTL's layout and constructor signatures (tiny conv models) exercises the plumbing.
"""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke.yaml"

# openstl/models/simvp_model.py: SimVP_Model(in_shape, hid_S, hid_T, N_S, N_T, model_type, ...),
# (B, T, C, H, W) in, the next T frames out.
FAKE_SIMVP = """
import torch
from torch import nn


class SimVP_Model(nn.Module):
    def __init__(self, in_shape, hid_S=16, hid_T=256, N_S=4, N_T=4, model_type="gSTA", mlp_ratio=8.0,
                 drop=0.0, drop_path=0.0, spatio_kernel_enc=3, spatio_kernel_dec=3, act_inplace=True,
                 **kwargs):
        super().__init__()
        T, C, H, W = in_shape
        self.enc = nn.Conv2d(C, hid_S, 3, padding=1)
        self.hid = nn.Conv2d(T * hid_S, hid_T, 3, padding=1)
        self.out = nn.Conv2d(hid_T, T * C, 3, padding=1)

    def forward(self, x_raw, **kwargs):
        B, T, C, H, W = x_raw.shape
        z = torch.relu(self.enc(x_raw.view(B * T, C, H, W))).reshape(B, -1, H, W)  # .view as OpenSTL's
        return self.out(torch.relu(self.hid(z))).reshape(B, T, C, H, W)
"""

# openstl/models/convlstm_model.py: ConvLSTM_Model(num_layers, num_hidden, configs); forward(frames (B, T, h,
# w, p*p*C) patches, mask_true (B, aft - 1, h, w, p*p*C)) -> (next frames (B, T - 1, ...), MSE loss).
FAKE_CONVLSTM = """
import torch
import torch.nn as nn


class ConvLSTM_Model(nn.Module):
    def __init__(self, num_layers, num_hidden, configs, **kwargs):
        super().__init__()
        self.configs = configs
        T, C, H, W = configs.in_shape
        d = configs.patch_size * configs.patch_size * C
        k = configs.filter_size
        self.inp = nn.Conv2d(d + num_hidden[0], num_hidden[0], k, padding=k // 2)
        self.last = nn.Conv2d(num_hidden[-1], d, 1)

    def forward(self, frames_tensor, mask_true, **kwargs):
        frames = frames_tensor.permute(0, 1, 4, 2, 3)
        mask = mask_true.permute(0, 1, 4, 2, 3)
        pre = self.configs.pre_seq_length
        h = frames.new_zeros(frames.shape[0], self.inp.out_channels, *frames.shape[3:])
        out = []
        for t in range(self.configs.pre_seq_length + self.configs.aft_seq_length - 1):
            if t < pre:
                net = frames[:, t]
            else:
                net = mask[:, t - pre] * frames[:, t] + (1 - mask[:, t - pre]) * x_gen
            h = torch.tanh(self.inp(torch.cat([net, h], dim=1)))
            x_gen = self.last(h)
            out.append(x_gen)
        out = torch.stack(out, dim=1).permute(0, 1, 3, 4, 2).contiguous()
        loss = nn.functional.mse_loss(out, frames_tensor[:, 1:]) if kwargs.get("return_loss", True) else None
        return out, loss
"""


def _load():
    spec = importlib.util.spec_from_file_location("bench_peers", REPO / "benchmarks" / "peers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def peer_folder(tmp_path):
    root = tmp_path / "OpenSTL"
    for sub in ("openstl", "openstl/models"):
        (root / sub).mkdir(parents=True)
        (root / sub / "__init__.py").write_text("")
    (root / "openstl" / "models" / "simvp_model.py").write_text(FAKE_SIMVP)
    (root / "openstl" / "models" / "convlstm_model.py").write_text(FAKE_CONVLSTM)
    return root


def test_patches_round_trip_in_openstls_layout():
    bench = _load()
    x = torch.arange(2 * 3 * 8 * 8 * 1, dtype=torch.float32).reshape(2, 3, 8, 8, 1)
    p = bench.patches(x, 4)
    assert p.shape == (2, 3, 2, 2, 16)
    assert torch.equal(p[0, 0, 1, 0], x[0, 0, 4:8, 0:4, 0].reshape(-1))  # patch (1, 0), row-major inside
    assert torch.equal(bench.unpatch(p, 4), x)


def test_one_cycle_follows_openstls_onecycle():
    bench = _load()
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    total = 1000
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=total, final_div_factor=1e4)
    for step in range(total - 1):
        if step % 97 == 0:
            lr, beta1 = bench.one_cycle(step / (total - 1), 1e-2)
            assert lr == pytest.approx(opt.param_groups[0]["lr"], rel=0.05, abs=1e-6)
            assert beta1 == pytest.approx(opt.param_groups[0]["betas"][0], abs=0.01)
        opt.step()
        sched.step()


@pytest.mark.parametrize("model", ["simvp", "convlstm"])
def test_peer_is_sized_trained_scored_and_printed_as_one_row(model, peer_folder, mnist_dir, tmp_path, capsys):
    bench = _load()
    argv = ["--model", model, "--peers", str(peer_folder), "--config", str(SMOKE), "--reference", str(SMOKE)]
    argv += ["--minutes", "0.5", "--max-steps", "3", "--batch", "2", "--num", "4", "--eval-batch", "4"]
    argv += ["--threads", "1", "--data-dir", str(mnist_dir.parent)]
    lrs = [1e-3, 3e-3] if model == "simvp" else [5e-4]  # the sweep: each lr a run; the recipe's by default
    assert bench.main(argv + (["--lrs", "1e-3,3e-3"] if model == "simvp" else [])) == 0
    captured = capsys.readouterr()
    assert "ratio" in captured.err
    rows = [json.loads(line) for line in captured.out.strip().splitlines()]
    assert [r["lr"] for r in rows] == lrs
    for row in rows:
        assert row["model"] == model and row["seed"] == 0 and row["batch"] == 2
        assert abs(row["mac_ratio"] - 1) <= 0.10
        assert row["gmac_per_sample"] > 0 and row["params"] > 0
        assert row["steps"] == 3 and row["samples_seen"] == 6 and row["samples_per_s"] > 0
        assert row["peak_rss_mb"] > 0 and row["saved_mb_per_sample"] > 0
        assert row["num_sequences"] == 4 and row["horizon"] == 4
        assert row["mse"] > 0 and row["x_zeros"] == pytest.approx(row["mse"] / row["zeros_mse"], rel=1e-2)
        assert 0 < row["ssim"] <= 1
        for key in ("machine", "cpu", "torch", "commit", "date", "load_before", "load_after", "command"):
            assert key in row
    widths = rows[0]["sizing"]
    assert set(widths) == ({"hid_S", "hid_T"} if model == "simvp" else {"layers", "hidden", "patch"})


def test_refuses_outside_ten_percent_unless_forced(peer_folder, capsys):
    bench = _load()
    argv = ["--model", "simvp", "--peers", str(peer_folder), "--config", str(SMOKE)]
    argv += ["--reference", str(SMOKE), "--simvp-hid-s", "2", "--simvp-hid-t", "2", "--size-only"]
    assert bench.main(argv) == 2
    assert "refused" in capsys.readouterr().err
    assert bench.main([*argv, "--force"]) == 0
    assert "refused" not in capsys.readouterr().err


def test_needs_the_peer_folder(tmp_path):
    bench = _load()
    with pytest.raises(SystemExit):
        bench.main(["--model", "simvp", "--size-only"])
    with pytest.raises(FileNotFoundError, match=r"openstl/models/simvp_model\.py"):
        bench.import_peer(tmp_path, "models.simvp_model")


def test_crevnet_config_runs_through_crevnet_fit(mnist_dir, tmp_path, capsys):
    bench = _load()
    argv = ["--model", "crevnet", "--config", str(SMOKE), "--reference", str(SMOKE), "--minutes", "0.5"]
    argv += ["--max-steps", "2", "--num", "4", "--eval-batch", "4", "--threads", "1", "--lrs", "0.02"]
    argv += ["--data-dir", str(mnist_dir.parent), "--runs-dir", str(tmp_path / "runs")]
    argv += ["--set", "model.loss.l1=0.5"]  # the run trains the derived config, named by its change
    assert bench.main(argv) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [(r["model"], r["seed"], r["lr"]) for r in rows] == [("crevnet:smoke+l1=0.5", 0, 0.02)]
    assert rows[0]["config"].endswith("smoke+l1=0.5.yaml")
    for row in rows:
        assert row["mac_ratio"] == 1.0 and row["steps"] == 2 and row["samples_seen"] == 8
        assert row["saved_mb_per_sample"] > 0 and row["peak_rss_mb"] > 0 and row["mse"] > 0


def test_set_changes_one_config_key_for_the_runs_and_names_them(tmp_path, capsys):
    import yaml

    bench = _load()
    base = yaml.safe_load(SMOKE.read_text())
    changed = bench.apply_sets(base, ["model.net.encoder.coupling=additive", "model.lr=0.5", "a.b=[1, 2]"])
    assert changed["model"]["net"]["encoder"]["coupling"] == "additive" and changed["model"]["lr"] == 0.5
    assert changed["a"] == {"b": [1, 2]}  # values read as YAML; missing mappings made
    assert "coupling" not in base["model"]["net"]["encoder"]  # the input is left alone
    with pytest.raises(ValueError, match=r"KEY\.PATH=VALUE"):
        bench.apply_sets(base, ["model.lr"])
    with pytest.raises(ValueError, match="'lr' is not a mapping"):
        bench.apply_sets(base, ["model.lr.x=1"])
    argv = ["--model", "crevnet", "--config", str(SMOKE), "--reference", str(SMOKE), "--size-only", "--force"]
    argv += ["--runs-dir", str(tmp_path), "--set", "model.net.encoder.coupling=additive"]
    assert bench.main(argv) == 0
    derived = tmp_path / "smoke+coupling=additive.yaml"
    assert yaml.safe_load(derived.read_text())["model"]["net"]["encoder"]["coupling"] == "additive"
    assert "smoke+coupling=additive.yaml" in capsys.readouterr().err  # the run is named by its change
    assert bench._without_sets(["--set", "x=1", "--config=a", "--model", "crevnet"]) == ["--model", "crevnet"]
    with pytest.raises(SystemExit):  # the peers are sized by their own flags
        bench.main(["--model", "simvp", "--peers", str(tmp_path), "--set", "model.lr=1", "--size-only"])
