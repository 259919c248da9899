"""The speed benchmarks run and print the fields the README's figures are read from (tiny shapes)."""

import contextlib
import importlib.util
import json
from pathlib import Path

import pytest
import torch
import yaml

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"

TINY_3D = {
    "model": {
        "net": {
            "encoder": {"stages": [1, 1, 1], "channels": [2, 8, 32]},
            "predictor": {"layers": 2},
            "window": 3,
        },
        "memory_saving": "encoder",  # a run option, read by train_step.py as crevnet fit would
    }
}


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def step_bench(monkeypatch):
    """benchmarks/train_step.py with the machine's peak rates fixed (matmul 50, conv 30 GFLOP/s)."""
    bench = _load("train_step")
    monkeypatch.setattr(bench, "matmul_peak_gflops", lambda: 50.0)
    monkeypatch.setattr(bench, "conv_peak_gflops", lambda: 30.0)
    return bench


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny3d.yaml"
    path.write_text(yaml.safe_dump(TINY_3D))
    return path


@pytest.mark.parametrize("conv_backward", ["fast", "native"])
def test_train_step_prints_the_issue_fields(tiny_config, capsys, monkeypatch, conv_backward):
    bench = _load("train_step")
    peaks = iter([40.0, 50.0])  # before and after the timed steps: the larger one counts
    monkeypatch.setattr(bench, "matmul_peak_gflops", lambda: next(peaks))
    monkeypatch.setattr(bench, "conv_peak_gflops", lambda: 30.0)
    argv = ["--config", str(tiny_config), "--batch", "2", "--threads", "1", "--steps", "2", "--frames", "6"]
    assert bench.main([*argv, "--size", "16", "--conv-backward", conv_backward]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in (
        "config",
        "batch",
        "threads",
        "params",
        "gmac_per_sample",
        "step_s_median",
        "achieved_gflops",
        "matmul_peak_gflops",
        "peak_rss_mb",
        "memory_saving",
    ):
        assert key in row, key
    assert row["batch"] == 2 and row["threads"] == 1 and row["memory_saving"] == "encoder"
    assert row["conv_backward"] == conv_backward
    assert row["matmul_peak_runs"] == [40.0, 50.0] and row["matmul_peak_gflops"] == 50.0
    assert len(row["step_s"]) == 2
    expected = 6 * row["gmac_per_sample"] * 2 / row["step_s_median"]
    # the printed median has 3 decimals (relative error up to ~0.0005 / median) and achieved_gflops 1
    rounding = 0.0005 / (row["step_s_median"] - 0.0005)
    assert abs(row["achieved_gflops"] - expected) <= expected * (rounding + 1e-3) + 0.05
    assert row["achieved_over_peak"] == pytest.approx(row["achieved_gflops"] / 50.0, abs=2e-3)


@pytest.mark.parametrize("what", ["rpm", "rollout"])
def test_train_step_compile_wraps_the_predictor_or_the_rollout(tiny_config, capsys, monkeypatch, what):
    # inductor takes minutes on CI's two cores: a recorder stands in for torch.compile (the graphs it
    # would compile are checked whole by tests/nn/test_conv.py's dynamo run)
    bench = _load("train_step")
    monkeypatch.setattr(bench, "matmul_peak_gflops", lambda: 40.0)
    monkeypatch.setattr(bench, "conv_peak_gflops", lambda: 30.0)
    calls = []

    def recorder(fn, **kwargs):
        calls.append((fn, kwargs))
        return fn

    monkeypatch.setattr(bench.torch, "compile", recorder)
    argv = ["--config", str(tiny_config), "--batch", "2", "--threads", "1", "--steps", "1", "--frames", "6"]
    assert bench.main([*argv, "--size", "16", "--compile", what]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["compile"] == what and len(row["warmup_s"]) == 1
    ((fn, kwargs),) = calls
    assert kwargs == {"dynamic": False, "fullgraph": True}
    if what == "rpm":
        assert type(fn).__name__ == "ReversiblePredictor"
    else:
        assert fn.__func__.__name__ == "_rollout" and type(fn.__self__).__name__ == "CrevNet"
        assert "_rollout" not in vars(fn.__self__)  # the class's method again after the timed steps
    with pytest.raises(SystemExit):
        bench.main([*argv, "--compile", what, "--conv-backward", "native"])


def test_train_step_census_counts_every_conv_and_bounds_the_step(step_bench, tmp_path, capsys):
    # 2-D ConvLSTM RPM: the gate conv of each layer runs once per transition, (frames - 1) * layers calls
    narrow = {"channels": [2, 8]}
    config = {
        "torch_threads": 1,
        "model": {
            "net": {
                "encoder": {"dims": 2, "init_downsample": 2, "stages": [1, 1], "strides": [1, 2], **narrow},
                "predictor": {"layers": 3, "cell": "conv_lstm"},
                "window": 1,
            }
        },
    }
    path = tmp_path / "tiny2d.yaml"
    path.write_text(yaml.safe_dump(config))
    bench = step_bench
    argv = ["--config", str(path), "--batch", "2", "--steps", "1", "--frames", "5", "--size", "16"]
    assert bench.main(argv) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    top = row["top_conv"]
    assert top["calls"] == 4 * 3 and top["input"][0] == 2  # the RPM runs on the batch, one step at a time
    assert top["gmac"] == max(r["gmac"] for r in row["conv_census"])
    # an independent count of the step's conv MACs: FlopCounterMode over the same forward at batch 2
    model = bench.CrevNet(bench.load_config(path))
    with bench.FlopCounterMode(display=False) as counter:
        model(torch.rand(2, 5, 1, 16, 16))
    convs = sum(n for op, n in counter.get_flop_counts()["Global"].items() if "convolution" in str(op))
    census = bench.conv_census(model, torch.rand(2, 5, 1, 16, 16))
    assert sum(r["gmac"] for r in census) * 2e9 == pytest.approx(convs, rel=1e-9)
    assert top["flop_share"] == pytest.approx(top["gmac"] / (row["gmac_per_sample"] * 2), abs=2e-3)
    per_call_s = top["fwd_bwd_ms"] / 1e3  # printed with 3 decimals: a tiny conv's ms is rounded by ~1%
    assert top["gflops"] == pytest.approx(6 * top["gmac"] / top["calls"] / per_call_s, rel=0.03)
    assert top["over_peak"] == pytest.approx(top["gflops"] / 50.0, abs=2e-3)
    # both printed with 3 decimals: a small over_peak carries a rounding error of up to 5e-4
    assert top["bound_over_peak"] == pytest.approx(top["over_peak"] / top["flop_share"], rel=0.01, abs=2e-3)


def test_conv_backward_lists_every_conv_shape(tiny_config, capsys):
    bench = _load("conv_backward")
    argv = ["--config", str(tiny_config), "--batch", "1", "--threads", "1", "--frames", "5"]
    assert bench.main([*argv, "--size", "16", "--reps", "1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    *shapes, summary = rows
    # Tiny 3-D model: three stages of one block (3 convs each) + 2 ST-LSTM layers (conv_a, conv_b,
    # conv_o, 1×1 conv_h) + 2 gates (1×1); 5 frames -> 2 transitions of 3-frame windows.
    assert {tuple(r["kernel"]) for r in shapes} == {(3, 3, 3), (1, 1, 1)}
    assert sum(r["calls_per_forward"] for r in shapes if r["input"][0] == 1) == 2 * 2 * 5
    assert all(r["native_ms"] > 0 for r in shapes)
    # every path is timed for every stride-1 conv (the 1×1 ones too; folded for 3-D ones); strided
    # ones only natively
    assert all((r["fast_ms"] is None) == (r["stride"] != [1, 1, 1]) for r in shapes)
    assert all((r["folded_ms"] is None) == (r["stride"] != [1, 1, 1]) for r in shapes)
    assert any(r["stride"] == [1, 2, 2] for r in shapes) and all(r["fast_ms"] != 0 for r in shapes)
    # the model's path per conv: on AVX-512 CPUs the narrow stride-1 3×3×3 convs (in · out <= 64) are
    # folded and the wide ones native; elsewhere every stride-1 3×3×3 conv takes the fast backward
    from crevnet.nn import conv

    def path(r: dict) -> str:
        if r["kernel"] != [3, 3, 3] or r["stride"] != [1, 1, 1]:
            return "native"
        if not conv._avx512_cpu():
            return "fast"
        return "folded" if r["input"][1] * r["out_channels"] <= 64 else "native"

    assert all(r["model_path"] == path(r) for r in shapes)
    assert all(r["best_path"] in ("fast", "folded", "native") for r in shapes)
    model_ms = sum(r["calls_per_forward"] * r[f"{r['model_path']}_ms"] for r in shapes)
    native_ms = sum(r["calls_per_forward"] * r["native_ms"] for r in shapes)
    best_ms = sum(r["calls_per_forward"] * r[f"{r['best_path']}_ms"] for r in shapes)
    assert summary["weighted_model_ms"] == pytest.approx(model_ms, rel=1e-3, abs=0.01)
    assert summary["weighted_best_ms"] == pytest.approx(best_ms, rel=1e-3, abs=0.01)
    assert summary["weighted_native_ms"] == pytest.approx(native_ms, rel=1e-3, abs=0.01)


def test_winograd_3x3_equals_conv2d_with_its_gradients():
    # independent reference: PyTorch's own conv and autograd, in float64, on grids of several sizes
    bench = _load("conv_backward")
    torch.manual_seed(0)
    for n, c, k, h, w, bias in [(2, 3, 5, 4, 6, True), (1, 8, 16, 8, 8, False), (3, 2, 1, 10, 2, True)]:
        x = torch.randn(n, c, h, w, dtype=torch.float64, requires_grad=True)
        weight = torch.randn(k, c, 3, 3, dtype=torch.float64, requires_grad=True)
        b = torch.randn(k, dtype=torch.float64, requires_grad=True) if bias else None
        inputs = (x, weight) if b is None else (x, weight, b)
        ref = torch.nn.functional.conv2d(x, weight, b, padding=1)
        out = bench.winograd_3x3(x, weight, b)
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
        g = torch.randn_like(ref)
        got_grads, want_grads = torch.autograd.grad(out, inputs, g), torch.autograd.grad(ref, inputs, g)
        for got, want in zip(got_grads, want_grads, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="even grid"):
        bench.winograd_3x3(torch.randn(1, 2, 5, 4), torch.randn(3, 2, 3, 3), None)


def test_conv_backward_times_winograd_on_the_2d_models_3x3_convs(tmp_path, capsys):
    config = tmp_path / "tiny2d.yaml"
    net = {
        "encoder": {"dims": 2, "stages": [1, 1, 1], "strides": [1, 2, 2], "channels": [2, 8, 32]},
        "predictor": {"layers": 1, "cell": "conv_lstm", "gate": "conv1x1"},
        "window": 1,
    }
    config.write_text(yaml.safe_dump({"model": {"net": net}}))
    bench = _load("conv_backward")
    argv = ["--config", str(config), "--batch", "1", "--threads", "1", "--frames", "4", "--size", "32"]
    assert bench.main([*argv, "--reps", "1"]) == 0
    *shapes, summary = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    # the ConvLSTM's gate conv (in 32 + 32 -> 4·32, 3×3 on the 4×4 grid) is a Winograd candidate; the
    # 1×1 and the strided convs are not
    gate = [r for r in shapes if r["input"][1:] == [64, 4, 4] and r["out_channels"] == 128]
    assert len(gate) == 1 and gate[0]["winograd_ms"] > 0
    assert all((r["winograd_ms"] is None) == (r["kernel"] != [3, 3] or r["stride"] != [1, 1]) for r in shapes)
    assert all(r["model_path"] != "winograd" for r in shapes)
    best_ms = sum(r["calls_per_forward"] * r[f"{r['best_path']}_ms"] for r in shapes)
    assert summary["weighted_best_ms"] == pytest.approx(best_ms, rel=1e-3, abs=0.01)


def test_train_step_times_the_fit_settings_and_a_busy_neighbour(step_bench, tmp_path, capsys, monkeypatch):
    # batch, threads, loss and sampling come from the config as crevnet fit reads them
    config = {
        **TINY_3D,
        "torch_threads": 1,
        "data": {"batch_size": 3},
        "model": {
            **TINY_3D["model"],
            "loss": {"mse": 1.0, "l1": 0.5},
            "sampling": {"start": 1.0, "end": 1.0},
        },
    }
    path = tmp_path / "fit.yaml"
    path.write_text(yaml.safe_dump(config))
    bench = step_bench
    started = []
    real = bench._busy_neighbour
    monkeypatch.setattr(bench, "_busy_neighbour", lambda: started.append(1) or real())
    argv = ["--config", str(path), "--steps", "1", "--frames", "5", "--size", "16", "--busy-neighbour"]
    assert bench.main(argv) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["batch"] == 3 and row["threads"] == 1 and row["sampling_prob"] == 1.0
    assert row["loss"] == {"mse": 1.0, "l1": 0.5, "ssim": 0.0}
    assert row["samples_per_s"] == pytest.approx(3 / row["step_s_median"], rel=0.02)
    assert row["busy_samples_per_s"] > 0 and row["busy_threads"] == 1 and started == [1]
    assert row["achieved_over_peak"] == pytest.approx(row["achieved_gflops"] / 50.0, abs=2e-3)  # both rounded


@pytest.mark.parametrize("kind", ["torch", "numpy"])
def test_train_step_times_beside_a_thread_that_stacks_batches(
    step_bench, tiny_config, capsys, monkeypatch, kind
):
    import threading

    bench = step_bench
    seen = []
    real = bench.thread_neighbour

    def spy(*args, **kwargs):  # the neighbour thread runs while the steps are timed, and stops after
        with real(*args, **kwargs):
            seen.append([t.name for t in threading.enumerate()])
            yield

    monkeypatch.setattr(bench, "thread_neighbour", contextlib.contextmanager(spy))
    argv = ["--config", str(tiny_config), "--batch", "2", "--steps", "1", "--frames", "5", "--size", "16"]
    assert bench.main([*argv, "--threads", "1", "--thread-neighbour", kind]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["thread_neighbour"] == kind and row["thread_neighbour_samples_per_s"] > 0
    assert len(row["thread_neighbour_step_s"]) == 1
    assert "thread-neighbour" in seen[0] and "thread-neighbour" not in [t.name for t in threading.enumerate()]


def test_train_step_adaptive_threads_probes_every_count(step_bench, tiny_config, capsys, monkeypatch):
    bench = step_bench
    monkeypatch.setattr(bench, "usable_cores", lambda: 2)
    argv = ["--config", str(tiny_config), "--batch", "1", "--steps", "1", "--frames", "5", "--size", "16"]
    assert bench.main([*argv, "--threads", "adaptive"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["threads"] == "adaptive" and row["threads_used"] in (1, 2)
    with pytest.raises(SystemExit):
        bench.main([*argv, "--threads", "many"])


def test_memory_prints_one_row_per_run_with_saved_bytes_and_peak_memory(tiny_config, tmp_path, capsys):
    bench = _load("memory")
    common = ["--config", str(tiny_config), "--threads", "1", "--size", "16"]
    argv = ["--mode", "full", "--batch", "2", "--frames", "6", "--steps", "1", "--note", "smoke"]
    assert bench.main([*common, *argv]) == 0  # one run, in a fresh process
    (row,) = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    for key in ("mode", "batch", "frames", "saved_mb_per_sample", "peak_rss_mb", "step_s"):
        assert key in row, key
    assert (row["mode"], row["batch"], row["frames"], row["note"]) == ("full", 2, 6, "smoke")
    assert row["peak_rss_mb"] > row["rss_before_mb"] > 0 and row["step_s"] > 0


def test_memory_sweep_covers_frames_and_depth_and_plots(tiny_config, tmp_path, capsys):
    bench = _load("memory")
    png = tmp_path / "memory.png"
    argv = ["--config", str(tiny_config), "--threads", "1", "--size", "16", "--steps", "0", "--sweep"]
    argv += ["--same-process", "--modes", "encoder", "full", "--batches", "1", "--frames-list", "4", "6"]
    argv += ["--layers-list", "1", "2", "--stage-scales", "1", "2", "--ref-batch", "1", "--ref-frames", "6"]
    assert bench.main([*argv, "--plot", str(png)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert len(rows) == 2 * (2 + 2 + 1)  # per mode: 2 frame counts, 2 RPM depths, 1 deeper encoder
    saved = {
        (r["mode"], r["frames"], r["predictor_layers"], r["encoder_blocks"]): r["saved_mb_per_sample"]
        for r in rows
    }
    for frames in (4, 6):
        assert saved["full", frames, 2, 3] < 0.5 * saved["encoder", frames, 2, 3]
    assert saved["full", 6, 2, 6] == saved["full", 6, 2, 3]  # flat in the encoder's depth
    assert all(r["step_s"] is None for r in rows)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


FAKE_MODULES = """
import torch
from torch import nn


class zig_rev_predictor(nn.Module):
    def __init__(self, *args):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))


class autoencoder(nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
"""

FAKE_MODEL = """
import torch
from torch import nn

from openstl.modules import autoencoder, zig_rev_predictor


class CrevNet_Model(nn.Module):
    def __init__(self, in_shape, rnn_size, batch_size, predictor_rnn_layers, pre_seq_length,
                 aft_seq_length, n_eval):
        super().__init__()
        self.frame_predictor = zig_rev_predictor(rnn_size, batch_size)
        self.encoder = autoencoder(in_shape=in_shape)

    def forward(self, x, training=True):
        zero = torch.zeros(1).cuda()  # the released code's habit: a no-op on the CPU here
        return ((x * self.encoder.w * self.frame_predictor.w) ** 2).mean() + zero.sum()
"""


def test_released_compare_alternates_fresh_runs_and_sums_up(tmp_path, capsys):
    # A stand-in for the released files (they are never part of the repository): the plumbing only.
    (tmp_path / "crevnet_modules.py").write_text(FAKE_MODULES)
    (tmp_path / "crevnet_model.py").write_text(FAKE_MODEL)
    bench = _load("released_compare")
    argv = ["--released", str(tmp_path), "--variants", "released", "full", "--rounds", "1", "--steps", "1"]
    assert bench.main([*argv, "--batch", "1", "--size", "16", "--threads", "1", "--device", "cpu"]) == 0
    *rows, summary = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["variant"] for r in rows] == ["released", "full"]
    assert rows[0]["params"] == 2 and rows[1]["params"] == 4_997_444
    assert all(r["step_s"] > 0 and r["peak_rss_mb"] > 0 for r in rows)
    assert summary["ratio_to_released"]["released"] == 1.0
    assert summary["summary_step_s"]["full"] == rows[1]["step_s"]
    assert summary["cpu"] and summary["torch"] == torch.__version__


def test_released_compare_profile_splits_conv_time(tmp_path, capsys):
    (tmp_path / "crevnet_modules.py").write_text(FAKE_MODULES)
    (tmp_path / "crevnet_model.py").write_text(FAKE_MODEL)
    bench = _load("released_compare")
    argv = ["--released", str(tmp_path), "--variants", "released", "off", "--rounds", "1", "--steps", "1"]
    assert bench.main([*argv, "--batch", "1", "--size", "16", "--threads", "1", "--profile"]) == 0
    released, off = (json.loads(line) for line in capsys.readouterr().out.strip().splitlines()[:2])
    assert released["conv_s"] == 0 and released["rpm_conv_s"] == 0  # the stand-in has no conv
    assert 0 < off["rpm_conv_s"] < off["conv_s"] <= off["profiled_s"]  # RPM convs on the 3×2×2 grid

    # which convs count as the RPM's: on the latent grid (3, 2, 2 at size 16) with more than 32 channels in,
    # forward and backward
    def step(channels: int, grid: tuple[int, ...]) -> None:
        x = torch.rand(1, channels, *grid, requires_grad=True)
        torch.nn.functional.conv3d(x, torch.rand(4, channels, 1, 1, 1, requires_grad=True)).sum().backward()

    wide = bench.profile_split(lambda: step(40, (3, 2, 2)), 1, 16)
    assert wide["rpm_conv_s"] == wide["conv_s"] > 0
    for channels, grid in ((32, (3, 2, 2)), (40, (3, 4, 4))):
        split = bench.profile_split(lambda c=channels, g=grid: step(c, g), 1, 16)
        assert split["rpm_conv_s"] == 0 < split["conv_s"]


@pytest.mark.parametrize(
    "backends",
    [["eager", "predict"], ["torchscript", "auto"], ["onnxruntime"]],
)
def test_inference_prints_the_issue_fields(tiny_config, capsys, backends):
    if "onnxruntime" in backends:
        pytest.importorskip("onnxruntime")
    bench = _load("inference")
    argv = ["--config", str(tiny_config), "--batch", "2", "--threads", "1", "--size", "16"]
    assert (
        bench.main([*argv, "--frames", "4", "--warmup", "1", "--horizon", "3", "--backend", *backends]) == 0
    )
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["backend"] for r in rows] == backends
    for row in rows:
        for key in ("config", "batch", "threads", "backend", "frames_per_s", "p95_ms", "p50_ms", "horizon"):
            assert key in row, key
        assert row["batch"] == 2 and row["threads"] == 1 and row["horizon"] == 3
        assert row["frames_per_s"] > 0 and row["p95_ms"] >= row["p50_ms"] > 0
        # 2 streams × 3 predicted frames per new frame: frames/s and the median latency agree roughly
        assert row["frames_per_s"] == pytest.approx(6000 / row["p50_ms"], rel=0.9)
    if "eager" in backends:
        assert rows[0]["push_ms_median"] > 0 and rows[0]["forecast_ms_median"] > 0
    for row in rows:  # the backend that ran, at the threads asked for
        if row["backend"] != "predict":
            assert row["picked"].endswith("/1") and row["build_s"] >= 0
            assert row["backend"] == "auto" or row["picked"] == f"{row['backend']}/1"


def test_inference_compiled_backend_exports_whole_graphs(tiny_config, capsys, monkeypatch):
    # torch.compile itself takes minutes on CI's two cores; the identity stands in for it here, so this
    # checks the torch.export step in front of it (whole graphs) and the wiring of the backend.
    bench = _load("inference")
    compiled = []
    monkeypatch.setattr(bench.torch, "compile", lambda module, **kw: compiled.append(module) or module)
    argv = ["--config", str(tiny_config), "--batch", "2", "--threads", "1", "--size", "16", "--frames", "2"]
    assert bench.main([*argv, "--warmup", "1", "--backend", "compiled"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["backend"] == "compiled" and row["frames_per_s"] > 0
    assert len(compiled) == 3 and all(isinstance(m, torch.nn.Module) for m in compiled)


def test_forms_measures_trained_checkpoints_without_training(tmp_path, capsys, tiny_net, fit_tiny):
    import dataclasses

    from crevnet.models.checkpoint import load_model

    bench = _load("forms")
    paths = []
    for coupling in ("irevnet", "affine"):
        net = dataclasses.replace(tiny_net, encoder=dataclasses.replace(tiny_net.encoder, coupling=coupling))
        paths.append(tmp_path / f"{coupling}.ckpt")
        fit_tiny(paths[-1], net=net)
    argv = ["--checkpoints", *map(str, paths), "--digits", "synthetic", "--test-batch", "2", "--threads", "1"]
    assert bench.main(argv) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [(r["coupling"], r["dtype"]) for r in rows] == [
        ("irevnet", "float32"),
        ("irevnet", "float64"),
        ("affine", "float32"),
        ("affine", "float64"),
    ]
    for row in rows:
        assert row["experiment"] == "forms_trained" and row["global_step"] == 2 and row["size"] == 16
        assert "step_s" not in row and row["command"] and row["machine"]
    # the float64 round trips, against the loaded encoder's inverse computed here
    for row in rows[1::2]:
        model = load_model(row["checkpoint"]).model.double()
        x = bench.encoder_input(model, bench.videos("synthetic", 2, 2, 16, 1).double())
        with torch.no_grad():
            expected = (model.encoder.inverse(model.encoder(x)) - x).abs().max().item()
            log_det = model.encoder.log_abs_det_jacobian(x)
        assert row["round_trip_trained"][0] == pytest.approx(expected, abs=1e-15) and expected < 1e-12
        assert row["log_det_mean"] == pytest.approx(log_det.double().mean().item(), rel=1e-9, abs=1e-12)
    assert rows[1]["log_det_std"] == 0.0 and rows[1]["log_det_mean"] == 0.0  # i-RevNet: volume-preserving
    assert rows[3]["log_det_std"] > 0.0  # the affine form's scale depends on the input


def test_forms_prints_one_row_per_form_depth_and_dtype(tmp_path, capsys):
    bench = _load("forms")
    config = tmp_path / "tiny2d.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {
                    "net": {
                        "encoder": {"dims": 2, "stages": [1, 1], "strides": [1, 2], "channels": [2, 8]},
                        "predictor": {"layers": 1, "cell": "conv_lstm"},
                        "window": 1,
                    },
                    "lr": 1e-3,
                }
            }
        )
    )
    argv = ["--config", str(config), "--forms", "irevnet", "affine", "--invconv", "--depths", "1", "2"]
    argv += ["--steps", "2", "--batch", "2", "--frames", "4", "--size", "16", "--test-batch", "2"]
    assert bench.main([*argv, "--digits", "synthetic", "--threads", "1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert len(rows) == 2 * 2 * 2 * 2  # mixing × form × depth × dtype
    for row in rows:
        for key in (
            "round_trip_init",
            "round_trip_trained",
            "log_det_std",
            "params",
            "step_s",
            "saved_bytes_per_sample_off",
            "saved_bytes_per_sample_encoder",
            "torch",
            "date",
            "machine",
            "commit",
            "load_before",
            "load_after",
            "command",
        ):
            assert key in row, key
        assert row["saved_bytes_per_sample_encoder"] < row["saved_bytes_per_sample_off"]
        tol = 1e-12 if row["dtype"] == "float64" else 1e-4
        assert max(row["round_trip_trained"]) <= tol
        if row["coupling"] == "irevnet" and row["mixing"] == "fixed":
            assert row["log_det_mean"] == row["log_det_std"] == 0.0
    deeper = {(r["coupling"], r["mixing"], r["depth"]): r["params"] for r in rows}
    assert deeper[("affine", "fixed", 2)] > deeper[("affine", "fixed", 1)]


def test_fit_ratio_time_format_and_loop_config():
    bench = _load("fit_ratio")
    assert bench.max_time(180) == "00:00:03:00" and bench.max_time(0.2) == "00:00:00:01"
    assert bench.max_time(90061) == "01:01:01:01"
    config = yaml.safe_load((BENCH.parent / "configs" / "quickstart.yaml").read_text())
    loop = bench.loop_config(config)
    names = [cb["class_path"].rpartition(".")[2] for cb in loop["trainer"]["callbacks"]]
    assert "FitReport" not in names and "SampleLogger" in names and "AdaptiveThreads" in names
    assert any("FitReport" in cb["class_path"] for cb in config["trainer"]["callbacks"])  # not mutated


@pytest.mark.slow
def test_fit_ratio_prints_both_rates_and_their_ratio(mnist_dir, capsys, monkeypatch):
    monkeypatch.setenv("CREVNET_DATA_DIR", str(mnist_dir))
    bench = _load("fit_ratio")
    smoke = BENCH.parent / "configs" / "smoke.yaml"
    clock = "--trainer.callbacks+=crevnet.train.threads.AdaptiveThreads"  # smoke.yaml has none
    assert bench.main(["--config", str(smoke), "--minutes", "0.08", "--step-steps", "2", "--", clock]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # the fit's own clock: every step timed, inside the fit's seconds, the ratio split in two
    assert row["fit_steps_timed"] == row["fit_steps"] and 0 < row["fit_in_steps_share"] < 1
    assert row["fit_step_samples_per_s"] == pytest.approx(
        row["fit_steps"] * row["fit_batch"] / row["fit_step_seconds"], rel=0.01
    )
    assert row["fit_in_steps_share"] * row["fit_step_vs_bench"] == pytest.approx(row["ratio"], rel=0.02)
    assert row["fit_steps"] > 0 and row["fit_batch"] == row["step_batch"] == 4
    assert row["fit_samples_per_s"] > 0 and row["step_samples_per_s"] > 0
    assert row["ratio"] == pytest.approx(row["fit_samples_per_s"] / row["step_samples_per_s"], rel=0.01)
    # the step is timed before and after the fit, and compared with their mean
    assert row["step_samples_per_s"] == pytest.approx((row["step_before"] + row["step_after"]) / 2, abs=0.01)
    assert len(row["step_s"]) == 4 and row["minutes"] == 0.08
    assert isinstance(row["fit_threads_logged"], dict)  # smoke.yaml has no AdaptiveThreads: may be empty
    assert {"machine", "commit", "load_before", "load_after", "command"} <= set(row)


def test_folder_pipeline_prints_loader_and_step_rates_and_hits_the_cache_again(
    tmp_path, capsys, clip_factory
):
    bench = _load("folder_pipeline")
    root = tmp_path / "clips"
    for k in range(4):
        clip_factory.write_clip(root / f"{k}.avi", clip_factory.indexed_frames(16, 24, 32, hue=40 * k))
    config = tmp_path / "tiny_folder.yaml"
    config.write_text(clip_factory.TINY_FOLDER_CONFIG)
    argv = ["--config", str(config), "--root", str(root), "--batches", "3", "--steps", "1"]

    def run(*more: str) -> dict:
        assert bench.main([*argv, *more]) == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    first, second = run(), run()
    for key in (
        "loader_clips_per_s",
        "loader_batches_per_s",
        "step_samples_per_s",
        "ratio",
        "cache_build_s",
        "cache_mb",
        "cache_bytes",
        "cache_bytes_per_clip",
        "clips",
        "frames",
        "peak_rss_mb",
        "machine",
        "commit",
        "load_before",
        "command",
    ):
        assert key in first, key
    assert first["clips"] == 4 and first["frames"] == 64 and first["batch"] == 2 and first["size"] == [16, 16]
    assert first["ratio"] == pytest.approx(
        first["loader_clips_per_s"] / first["step_samples_per_s"], rel=0.01
    )
    assert first["loader_clips_per_s"] == pytest.approx(2 * first["loader_batches_per_s"], rel=0.01)
    assert sorted(first["cache_bytes"]) == [f"{k}.avi" for k in range(4)]
    assert first["cache_bytes_per_clip"] > 16 * 16 * 16 * 3  # 16 frames, scaled to cover 16x16, RGB
    assert first["cache_mb"] == pytest.approx(sum(first["cache_bytes"].values()) / 1e6, abs=0.01)
    assert not first["cache_hit"] and second["cache_hit"]
    assert second["cache_bytes"] == first["cache_bytes"] and second["cache_build_s"] < 1.0
    assert "fit_samples_per_s" not in first
    direct = run("--no-cache", "--", "--data.prefetch_batches", "2")
    assert not direct["cache"] and direct["cache_bytes"] == {} and direct["prefetch_batches"] == 2
