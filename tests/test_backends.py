"""Stream backends: every backend predicts what CrevNet.predict does; the timed probe keeps the fastest."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from crevnet.deploy import backends
from crevnet.deploy.backends import (
    BackendChoice,
    available_backends,
    build_graphs,
    fastest,
    pick_backend,
    time_candidates,
)
from crevnet.errors import DataError
from crevnet.nn import CrevNet
from crevnet.nn.stream import FrameStream, StreamGraphs
from crevnet.testing import tiny_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "quickstart": ROOT / "configs" / "quickstart.yaml",
    "paper": ROOT / "configs" / "mmnist_crevnet3d.yaml",
}
SIZE = (32, 32)
HAS_ORT = importlib.util.find_spec("onnxruntime") is not None
needs_ort = pytest.mark.skipif(not HAS_ORT, reason='onnxruntime not installed (pip install -e ".[export]")')


@pytest.fixture(scope="module")
def models() -> dict[str, CrevNet]:
    torch.manual_seed(0)
    return {name: CrevNet.from_config(path).eval() for name, path in CONFIGS.items()}


def _video(b: int, t: int, size: tuple[int, int] = SIZE) -> torch.Tensor:
    return torch.rand(b, t, 1, *size, generator=torch.Generator().manual_seed(3))


def _max_error(model: CrevNet, graphs: StreamGraphs, batch: int) -> float:
    video = _video(batch, 5)
    stream = FrameStream(graphs)
    stream.push(video[:, :4])
    stream.push(video[:, 4])
    with torch.no_grad():
        expected = model.predict(video, horizon=10)
    got = stream.forecast(10)
    assert got.shape == expected.shape == (batch, 10, 1, *SIZE)
    return (got - expected).abs().max().item()


@pytest.mark.parametrize("backend", ["torchscript", pytest.param("onnxruntime", marks=needs_ort)])
@pytest.mark.parametrize("config", ["quickstart", "paper"])
def test_backend_equals_predict_over_ten_frames(models, config: str, backend: str) -> None:
    model = models[config]
    graphs = build_graphs(model, backend, SIZE, threads=1)
    assert graphs.frame_size == SIZE
    for batch in (2, 1):  # traced at batch 2: the batch axis stays free
        assert _max_error(model, graphs, batch) <= 1e-4


def test_compiled_backend_equals_predict(models, monkeypatch) -> None:
    # inductor takes minutes on two cores; the identity stands in for torch.compile, so this checks the
    # torch.export graphs it compiles and their wiring into the stream.
    compiled: list[torch.nn.Module] = []
    monkeypatch.setattr(torch, "compile", lambda module, **kw: compiled.append(module) or module)
    graphs = build_graphs(models["quickstart"], "compiled", SIZE, batch=2)
    assert len(compiled) == 3
    assert _max_error(models["quickstart"], graphs, 2) <= 1e-4


def test_traced_graphs_refuse_another_frame_size(models) -> None:
    stream = FrameStream(build_graphs(models["quickstart"], "torchscript", SIZE))
    with pytest.raises(ValueError, match="these graphs take 32×32 frames"):
        stream.push(torch.rand(1, 1, 16, 16))


def test_unknown_or_unavailable_backend_is_one_clear_line(models, monkeypatch) -> None:
    with pytest.raises(
        DataError, match=r"^--backend tensorrt: expected one of auto, eager, torchscript"
    ) as err:
        build_graphs(models["quickstart"], "tensorrt", SIZE)
    assert "\n" not in str(err.value)
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(
        DataError, match=r'onnxruntime needs the optional package onnxruntime: pip install -e "\.\[export\]"'
    ):
        build_graphs(models["quickstart"], "onnxruntime", SIZE)
    assert available_backends("cpu") == ("eager", "torchscript")


def test_onnxruntime_is_probed_on_the_cpu_only() -> None:
    assert ("onnxruntime" in available_backends("cpu")) == HAS_ORT
    assert available_backends("meta") == ("eager", "torchscript")


# -- the choice, on a fake clock ------------------------------------------------------------------------
class FakeClock:
    """A clock that moves only when a fake graph runs."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_time_candidates_interleaves_rounds_and_takes_medians() -> None:
    clock, calls = FakeClock(), []

    def step(name: str, costs: list[float]):
        def run() -> None:
            calls.append(name)
            clock.now += costs.pop(0)

        return run

    # a: 1 untimed + 2 timed per round; one slow outlier in the timed calls does not move the median
    steps = {"a": step("a", [9, 1, 1, 9, 1, 50]), "b": step("b", [9, 2, 2, 9, 2, 2])}
    medians = time_candidates(steps, rounds=2, per_round=2, clock=clock)
    assert medians == {"a": 1.0, "b": 2.0}
    assert calls == ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3


def test_a_far_slower_candidate_is_dropped_after_one_timed_call() -> None:
    clock, calls = FakeClock(), []

    def step(name: str, cost: float):
        def run() -> None:
            calls.append(name)
            clock.now += cost

        return run

    steps = {"fast": step("fast", 1.0), "slow": step("slow", 100.0), "close": step("close", 2.5)}
    medians = time_candidates(steps, rounds=3, per_round=2, clock=clock)
    assert medians == {"fast": 1.0, "slow": 100.0, "close": 2.5}
    assert calls.count("slow") == 2  # round 1: the untimed call and one timed call, then no more
    assert calls.count("fast") == calls.count("close") == 3 * 3
    assert fastest(medians) == "fast"


def test_fastest_prefers_the_earlier_candidate_within_the_margin() -> None:
    assert fastest({"eager/1": 1.0, "torchscript/1": 0.97, "onnxruntime/1": 0.99}) == "eager/1"
    assert fastest({"eager/1": 1.0, "torchscript/1": 0.9, "onnxruntime/1": 0.8}) == "onnxruntime/1"
    assert fastest({"eager/1": 1.0, "eager/2": 1.2}) == "eager/1"


def _slowed(graphs: StreamGraphs, clock: FakeClock, cost: Callable[[], float]) -> StreamGraphs:
    def encode(window: torch.Tensor) -> torch.Tensor:
        clock.now += cost()
        return graphs.encode(window)

    return graphs._replace(encode=encode)


def test_auto_keeps_the_fastest_candidate_and_its_threads(monkeypatch) -> None:
    torch.manual_seed(0)
    model = CrevNet(tiny_config(2, cell="conv_lstm")).eval()
    clock = FakeClock()
    # seconds per new frame of each backend at each thread count
    cost = {("eager", 1): 3.0, ("eager", 2): 2.5, ("torchscript", 1): 2.0, ("torchscript", 2): 1.0}

    built = []

    def builder(name: str):
        def build(model: CrevNet, frame_size, batch: int, threads: int) -> StreamGraphs:
            built.append(name)  # PyTorch graphs run at the process's thread count: built once
            return _slowed(StreamGraphs.from_model(model), clock, lambda: cost[name, torch.get_num_threads()])

        return build

    def broken(*args: object) -> StreamGraphs:
        raise RuntimeError("no exporter in this torch")

    monkeypatch.setattr(
        backends,
        "BACKENDS",
        {"eager": builder("eager"), "torchscript": builder("torchscript"), "onnxruntime": broken},
    )
    monkeypatch.setattr(
        backends, "available_backends", lambda device: ("eager", "torchscript", "onnxruntime")
    )
    before = torch.get_num_threads()
    try:
        choice = pick_backend(model, "auto", (8, 8), batch=2, horizon=3, threads=(2, 1), clock=clock)
        assert isinstance(choice, BackendChoice)
        assert (choice.backend, choice.threads) == ("torchscript", 2)
        assert torch.get_num_threads() == 2
        assert choice.probe_ms == {
            "eager/1": 3000.0,
            "eager/2": 2500.0,
            "torchscript/1": 2000.0,
            "torchscript/2": 1000.0,
        }
        assert choice.skipped == {"onnxruntime": "no exporter in this torch"}
        assert built == ["eager", "torchscript"]
        line = choice.line()
        assert line.startswith("backend torchscript, 2 threads (fastest of a timed probe")
        assert "onnxruntime left out: no exporter in this torch" in line
        # a named backend is built as asked, nothing timed
        named = pick_backend(model, "eager", (8, 8), threads=(1,), clock=clock)
        assert (named.backend, named.threads, named.probe_ms) == ("eager", 1, {})
    finally:
        torch.set_num_threads(before)
