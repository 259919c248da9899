"""Stream backends: what runs the three graphs of a stream, and the timed probe that picks the fastest.

A stream (:mod:`crevnet.nn.stream`) runs three computations, encode / decode / one RPM step, through
one rollout (:func:`~crevnet.nn.stream.advance`, :func:`~crevnet.nn.stream.forecast`). A backend
decides what executes those three graphs:

===============  ===========================================================================================
``eager``        the PyTorch modules themselves (:meth:`StreamGraphs.from_model`), any frame size.
``torchscript``  each graph traced at the stream's frame size and frozen (``torch.jit.freeze``: weights
                 become constants and the graph runs in TorchScript's interpreter, with no Python per op).
``onnxruntime``  each graph exported to ONNX in memory and run by an ONNX Runtime session (CPU; needs the
                 optional extra ``pip install -e ".[export]"``).
``compiled``     ``torch.export`` + ``torch.compile`` (inductor) per graph (batch axis free).
                 Compiling takes tens of seconds to minutes on a small CPU, so ``auto`` never tries it.
===============  ===========================================================================================

At batch 1 the graphs are tiny (the quickstart model's step is 8 small convs on an 8×8 grid), so the time
of a new frame goes mostly to per-op overhead (Python dispatch, PyTorch's op setup, thread-pool wake-ups),
not arithmetic: the backends with less per-op overhead win there, while at batch 16 on the paper model
the convolutions dominate. :func:`pick_backend` therefore measures instead of guessing: it times a few
new frames (push + forecast, the work a stream does per frame) with every candidate on random frames of
the stream's shape, rounds interleaved so that a neighbour's load hits every candidate alike, and keeps
the fastest (median). ``auto`` (the default of ``crevnet predict --stream``) is that probe over the
backends available here and, for the thread count, 1 and the largest allowed.

Every backend gives the predictions of :meth:`~crevnet.nn.CrevNet.predict` to float round-off (tested:
≤ 1e-4 over 10 predicted frames).
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import logging
import statistics
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from crevnet.deploy.loader import OrtGraph
from crevnet.errors import DataError
from crevnet.nn.model import CrevNet
from crevnet.nn.stream import FrameStream, StreamGraphs, zero_state

__all__ = [
    "AUTO",
    "BACKENDS",
    "BackendChoice",
    "Candidate",
    "available_backends",
    "build_graphs",
    "check_backend",
    "example_inputs",
    "fastest",
    "free_batch",
    "pick_backend",
    "quiet",
    "time_candidates",
]

AUTO = "auto"
"""The backend name that asks :func:`pick_backend` to measure."""

_EXTRA = 'pip install -e ".[export]"'

Builder = Callable[[CrevNet, tuple[int, int], int, int], StreamGraphs]


def example_inputs(
    graphs: StreamGraphs, frame_size: tuple[int, int], batch: int = 2, device: torch.device | None = None
) -> dict[str, tuple[torch.Tensor, ...]]:
    """Example inputs of the three graphs (to trace or export them): random window, its latent, zero state.

    Batch 2 by default so that tracers and exporters do not specialise the batch axis to 1.

    Returns:
        ``{"encoder": (window,), "decoder": (latent,), "rpm_step": (latent, *state)}``.

    Shape:
        window: (batch, window, C, H, W); latent: (batch, 2c, [window,] h, w); state: (batch, hidden, ...).
    """
    window = torch.rand(batch, graphs.window, graphs.channels, *frame_size, device=device)
    with torch.no_grad():
        latent = graphs.encode(window)
    state = zero_state(graphs, latent)
    return {"encoder": (window,), "decoder": (latent,), "rpm_step": (latent, *state)}


def free_batch(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> dict[str, Any]:
    """``dynamic_shapes`` for ``torch.export`` of a stream graph: axis 0 (the batch) of every input free.

    A forecast decodes ``horizon · B`` latents at once and a push of ``T`` frames encodes ``T · B``
    windows, so no graph may be specialised to the batch of its example.
    """
    batch = torch.export.Dim("batch", min=1, max=65536)
    first_arg = next(iter(inspect.signature(module.forward).parameters))
    dynamic: dict[str, Any] = {first_arg: {0: batch}}
    if len(args) > 1:
        dynamic["state"] = tuple({0: batch} for _ in args[1:])  # RPMStep.forward(latent, *state)
    return dynamic


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence tracers and exporters for the block: they print progress on stdout and warn about
    details (deprecation, tracing of shapes) the user cannot act on."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _device(model: CrevNet) -> torch.device:
    return next(model.parameters()).device


def _modules(graphs: StreamGraphs) -> tuple[torch.nn.Module, ...]:
    modules = (graphs.encode, graphs.decode, graphs.step)
    assert all(isinstance(m, torch.nn.Module) for m in modules)
    return modules  # type: ignore[return-value]


def _eager(model: CrevNet, frame_size: tuple[int, int], batch: int, threads: int) -> StreamGraphs:
    return StreamGraphs.from_model(model)


def _torchscript(model: CrevNet, frame_size: tuple[int, int], batch: int, threads: int) -> StreamGraphs:
    graphs = StreamGraphs.from_model(model)
    examples = example_inputs(graphs, frame_size, device=_device(model))
    frozen = []
    with quiet(), torch.no_grad():
        for module, args in zip(_modules(graphs), examples.values(), strict=True):
            traced = torch.jit.trace(module, args, check_trace=False)
            frozen.append(torch.jit.freeze(traced.eval()))
    return graphs._replace(encode=frozen[0], decode=frozen[1], step=frozen[2], frame_size=frame_size)


def _onnxruntime(model: CrevNet, frame_size: tuple[int, int], batch: int, threads: int) -> StreamGraphs:
    if importlib.util.find_spec("onnxruntime") is None:
        raise DataError(f"--backend onnxruntime needs the optional package onnxruntime: {_EXTRA}")
    if _device(model).type != "cpu":
        raise DataError("--backend onnxruntime runs on the CPU only; use --device cpu or another backend")
    graphs = StreamGraphs.from_model(model)
    examples = example_inputs(graphs, frame_size)
    sessions = []
    for module, args in zip(_modules(graphs), examples.values(), strict=True):
        names = [f"input{i}" for i in range(len(args))]
        buffer = io.BytesIO()
        # TorchScript-based exporter: about a second for all three graphs, against tens of seconds for
        # the torch.export-based one that `crevnet export` uses for its files; the graphs are the same
        # convolutions and element-wise ops, tested equal to PyTorch to 1e-4.
        with quiet(), torch.no_grad():
            torch.onnx.export(
                module,
                args,
                buffer,
                dynamo=False,
                input_names=names,
                dynamic_axes={name: {0: "batch"} for name in names},
            )
        sessions.append(OrtGraph(buffer.getvalue(), threads))
    return graphs._replace(encode=sessions[0], decode=sessions[1], step=sessions[2], frame_size=frame_size)


def _compiled(model: CrevNet, frame_size: tuple[int, int], batch: int, threads: int) -> StreamGraphs:
    # torch.export first: it traces each graph whole (torch.compile alone breaks the graph at every conv
    # on the context-variable switch of crevnet.nn.conv and recompiles per conv shape).
    graphs = StreamGraphs.from_model(model)
    examples = example_inputs(graphs, frame_size, max(batch, 2), _device(model))
    with torch.no_grad():
        compiled = [
            torch.compile(torch.export.export(module, args, dynamic_shapes=free_batch(module, args)).module())
            for module, args in zip(_modules(graphs), examples.values(), strict=True)
        ]
    return graphs._replace(encode=compiled[0], decode=compiled[1], step=compiled[2], frame_size=frame_size)


# The one place where a backend's name becomes its builder.
BACKENDS: dict[str, Builder] = {
    "eager": _eager,
    "torchscript": _torchscript,
    "onnxruntime": _onnxruntime,
    "compiled": _compiled,
}
"""Builders ``(model, frame_size, batch, threads) -> StreamGraphs`` by backend name."""

_PROBED = ("eager", "torchscript", "onnxruntime")  # what `auto` measures, in order of preference on ties
_SESSION_THREADS = frozenset({"onnxruntime"})  # built with their thread count; PyTorch's is process-wide


def available_backends(device: torch.device | str = "cpu") -> tuple[str, ...]:
    """The backends ``auto`` measures on ``device``: eager, torchscript, and onnxruntime where installed
    (CPU only)."""
    on_cpu = torch.device(device).type == "cpu"
    has_ort = importlib.util.find_spec("onnxruntime") is not None
    return tuple(b for b in _PROBED if b != "onnxruntime" or (on_cpu and has_ort))


def check_backend(backend: str) -> None:
    """Raise a one-line DataError unless ``backend`` is ``"auto"`` or a key of :data:`BACKENDS`."""
    if backend != AUTO and backend not in BACKENDS:
        raise DataError(f"--backend {backend}: expected one of {', '.join((AUTO, *BACKENDS))}")


def build_graphs(
    model: CrevNet, backend: str, frame_size: tuple[int, int], batch: int = 1, threads: int = 1
) -> StreamGraphs:
    """The stream graphs of ``model`` (in eval mode) run by ``backend``.

    Args:
        model: the network, on the device it runs on.
        backend: a key of :data:`BACKENDS`.
        frame_size: (H, W) of the stream's frames (traced and exported graphs take only this size).
        batch: streams advanced together (``compiled`` compiles for it first; others do not depend on it).
        threads: intra-op threads of ONNX Runtime sessions (PyTorch's are process-wide:
            ``torch.set_num_threads``).

    Raises:
        DataError: an unknown backend, or onnxruntime missing or asked for off the CPU.
    """
    check_backend(backend)
    if backend == AUTO:
        raise DataError("--backend auto: measured by pick_backend, not built; name one backend here")
    return BACKENDS[backend](model, frame_size, batch, threads)


@dataclass(frozen=True)
class Candidate:
    """One configuration the probe measures: a backend and a thread count."""

    backend: str
    threads: int

    @property
    def label(self) -> str:
        """``backend/threads``, e.g. ``onnxruntime/1``."""
        return f"{self.backend}/{self.threads}"


@dataclass(frozen=True)
class BackendChoice:
    """What :func:`pick_backend` chose.

    Attributes:
        backend: the backend's name.
        threads: the thread count it runs with (PyTorch's is set process-wide by the probe).
        graphs: its stream graphs.
        probe_ms: median milliseconds per new frame of every candidate measured, by label (empty for a
            named backend: nothing was measured).
        skipped: backends ``auto`` could not build here, with the reason.
    """

    backend: str
    threads: int
    graphs: StreamGraphs
    probe_ms: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        """One line for the user: the choice and what the probe measured."""
        thread_word = "thread" if self.threads == 1 else "threads"
        text = f"backend {self.backend}, {self.threads} {thread_word}"
        if self.probe_ms:
            timed = ", ".join(f"{label} {ms:.2f}" for label, ms in self.probe_ms.items())
            text += f" (fastest of a timed probe, ms per new frame: {timed})"
        for name, reason in self.skipped.items():
            text += f"; {name} left out: {reason}"
        return text


def time_candidates(
    steps: dict[str, Callable[[], object]],
    rounds: int = 3,
    per_round: int = 4,
    clock: Callable[[], float] = time.perf_counter,
    give_up: float = 3.0,
) -> dict[str, float]:
    """Median seconds per call of each step function, rounds interleaved.

    Each round calls every function once untimed (its caches and thread pool settle after the others
    ran) and then ``per_round`` times timed; the candidates take turns round by round, so load from
    another process falls on all of them alike. A candidate whose timed call takes ``give_up`` times
    the best median so far is dropped at once: beside a busy process two PyTorch threads can be a
    hundred times slower than one, and a probe that kept timing them would take longer than the stream.

    Returns:
        Median seconds per call (of the calls timed before a drop), by the keys of ``steps``.
    """
    times: dict[str, list[float]] = {name: [] for name in steps}
    dropped: set[str] = set()
    for _ in range(rounds):
        for name, step in steps.items():
            if name in dropped:
                continue
            step()
            others = [statistics.median(ts) for other, ts in times.items() if other != name and ts]
            best = min(others, default=float("inf"))
            for _ in range(per_round):
                t0 = clock()
                step()
                times[name].append(clock() - t0)
                if times[name][-1] > give_up * best:
                    dropped.add(name)
                    break
    return {name: statistics.median(ts) for name, ts in times.items()}


def fastest(medians: dict[str, float], margin: float = 1.05) -> str:
    """The key with the smallest median; an earlier key is kept unless a later one is ``margin`` times
    faster (ties go to the simpler backend: the order of the candidates is the order of preference)."""
    names = list(medians)
    best = names[0]
    for name in names[1:]:
        if medians[name] * margin < medians[best]:
            best = name
    return best


def pick_backend(
    model: CrevNet,
    backend: str,
    frame_size: tuple[int, int],
    batch: int = 1,
    horizon: int = 1,
    threads: Sequence[int] = (1,),
    clock: Callable[[], float] = time.perf_counter,
) -> BackendChoice:
    """Build the stream graphs for ``backend``; for ``"auto"``, the fastest measured on this machine now.

    ``auto`` builds every backend of :func:`available_backends` at every count in ``threads``, times
    push + forecast(``horizon``) of ``batch`` random streams with each (:func:`time_candidates`) and
    keeps the fastest (:func:`fastest`). A candidate that fails to build is left out. The probe sets
    ``torch.set_num_threads`` and leaves it at the chosen count.

    Args:
        model: the network in eval mode, on its device.
        backend: ``"auto"`` or a key of :data:`BACKENDS`.
        frame_size: (H, W) of the stream's frames.
        batch: streams advanced together.
        horizon: frames forecast after every new frame.
        threads: thread counts to try (the first one is used by a named backend).
        clock: time source (for tests).

    Raises:
        DataError: an unknown backend, or a named backend that cannot run here.
    """
    if backend != AUTO:
        graphs = build_graphs(model, backend, frame_size, batch, threads[0])
        torch.set_num_threads(threads[0])
        return BackendChoice(backend, threads[0], graphs)
    device = _device(model)
    counts = sorted(set(threads))
    built: dict[str, tuple[Candidate, StreamGraphs]] = {}
    skipped: dict[str, str] = {}
    for name in available_backends(device):
        graphs = None
        for count in counts:
            candidate = Candidate(name, count)
            try:
                if graphs is None or name in _SESSION_THREADS:
                    graphs = build_graphs(model, name, frame_size, batch, count)
            except Exception as err:  # a backend that cannot build here is no candidate; eager always is
                if name == "eager":
                    raise
                skipped[name] = str(err).splitlines()[0] if str(err) else type(err).__name__
                break
            built[candidate.label] = (candidate, graphs)
    frames = torch.rand(model.config.window + 1, batch, model.config.encoder.in_channels, *frame_size)
    frames = frames.to(device)

    def step_of(candidate: Candidate, graphs: StreamGraphs) -> Callable[[], object]:
        stream = FrameStream(graphs)
        stream.push(frames[:-1].transpose(0, 1))  # one window: the stream is ready

        def step() -> object:
            torch.set_num_threads(candidate.threads)
            stream.push(frames[-1])
            ahead = stream.forecast(horizon)
            if device.type == "cuda":
                torch.cuda.synchronize(device)  # time the work, not its launch
            return ahead

        return step

    medians = time_candidates({label: step_of(c, g) for label, (c, g) in built.items()}, clock=clock)
    label = fastest(medians)
    candidate, graphs = built[label]
    torch.set_num_threads(candidate.threads)
    probe_ms = {k: 1000 * v for k, v in medians.items()}
    return BackendChoice(candidate.backend, candidate.threads, graphs, probe_ms, skipped)
