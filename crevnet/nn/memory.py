"""Memory saving: what a training step recomputes in backward instead of storing.

:class:`MemorySaving` is the run option (``off``, ``encoder``, ``full``); it is an argument of the run,
never a field of the model's config, so a checkpoint written in one mode resumes in another.

Two mechanisms serve it. :func:`reversible_chain` is the memory-saving backward for chains of
invertible steps (RevNet, Gomez et al. 2017, sec. 4), used by the encoder and the decoder.
:func:`recomputed` keeps only the inputs of one step (for the RPM: the latent entering a time step and
the recurrent state) and rebuilds the step's graph in backward (gradient checkpointing, Chen et al.
2016), used by the RPM in ``full`` mode.

Reversible chains. Forward runs every step without recording a graph, so no activation is stored;
only the chain's output is kept. Backward walks the chain from the end: it recomputes each step's
input from its output with the step's inverse, re-runs the step with autograd on, and
back-propagates through that one step. The peak activation memory is that of one step, whatever the depth.

What is supported: ``loss.backward()`` and ``torch.autograd.grad`` (parameters are explicit inputs of
the autograd function, so DDP's gradient hooks fire as usual), inputs that do or do not require grad,
outputs that feed other modules, several calls in one graph. Buffers (BatchNorm running statistics)
are restored after the recomputation, so they are updated once per forward, as in plain mode.

Not supported: double backward (``create_graph=True``), steps whose output depends on random numbers
(dropout), and steps whose forward is not reproducible from their inverse within float tolerance
(for example half-precision couplings; the encoder runs its couplings in float32 or float64).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from enum import Enum
from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable

__all__ = [
    "MemorySaving",
    "ReversibleStep",
    "SavedTensorCounter",
    "frozen_buffers",
    "recomputed",
    "reversible_chain",
]


class MemorySaving(str, Enum):
    """How much of the training graph is recomputed in backward instead of stored (a run option).

    Attributes:
        OFF: plain autograd: every activation is stored.
        ENCODER: the encoder and the decoder (its inverse) use :func:`reversible_chain`: they store
            their outputs only, whatever their depth.
        FULL: ``ENCODER`` plus the RPM: each time step keeps only the latent entering it and the
            recurrent state, and is recomputed in backward (:func:`recomputed`).

    Gradients equal those of ``OFF`` up to float round-off (tested); the cost is the recomputation.
    """

    OFF = "off"
    ENCODER = "encoder"
    FULL = "full"

    @property
    def encoder(self) -> bool:
        """Whether the encoder and decoder recompute their activations."""
        return self is not MemorySaving.OFF

    @property
    def predictor(self) -> bool:
        """Whether the RPM recomputes each time step."""
        return self is MemorySaving.FULL

    @classmethod
    def parse(cls, value: MemorySaving | str | bool, who: str = "memory_saving") -> MemorySaving:
        """``value`` as a :class:`MemorySaving`, or a ValueError naming ``who`` and the choices.

        ``False`` means ``off`` (YAML 1.1 reads a bare ``off`` as false) and ``True`` means
        ``encoder`` (what the former boolean switch did).
        """
        if isinstance(value, bool):
            return cls.ENCODER if value else cls.OFF
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(m.value for m in cls)
            raise ValueError(f"{who} must be one of {choices}, got {value!r}") from None


Replay = Callable[[torch.Tensor], tuple[tuple[torch.Tensor, ...], torch.Tensor]]


class ReversibleStep:
    """One invertible step of a chain: its forward, its inverse and the module owning its parameters.

    Args:
        forward: maps the step's input tensor to its output tensor.
        inverse: maps the output back to the input.
        module: the module whose parameters and buffers the step uses.
        replay: optional fused recomputation. Given the step's output ``y``, it returns
            ``(parts, y_re)``: leaf tensors requiring grad whose concatenation on dim 1 is the step's
            input, and the output recomputed from them with a graph. Without it, backward runs
            ``inverse`` and then ``forward`` again; a coupling can do both with one evaluation of
            its residual function (see :meth:`crevnet.nn.IRevNetBlock.replay_forward`).
    """

    __slots__ = ("forward", "inverse", "module", "replay")

    def __init__(
        self,
        forward: Callable[[torch.Tensor], torch.Tensor],
        inverse: Callable[[torch.Tensor], torch.Tensor],
        module: nn.Module,
        replay: Replay | None = None,
    ) -> None:
        self.forward = forward
        self.inverse = inverse
        self.module = module
        self.replay = replay


@contextmanager
def frozen_buffers(module: nn.Module) -> Iterator[None]:
    """Restore every buffer of ``module`` (e.g. BatchNorm running stats) on exit."""
    saved = [(b, b.detach().clone()) for b in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buf, value in saved:
                buf.copy_(value)


class _ReversibleChain(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, steps: Sequence[ReversibleStep], *params: Any) -> Any:
        ctx.steps = steps
        ctx.param_list = params
        with torch.no_grad():
            y = x
            for step in steps:
                y = step.forward(y)
        y = y.detach()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_y: torch.Tensor) -> Any:
        (y,) = ctx.saved_tensors
        y = y.detach()  # the saved output carries this node as grad_fn; the replay needs a plain tensor
        steps: Sequence[ReversibleStep] = ctx.steps
        params = ctx.param_list
        index = {id(p): i for i, p in enumerate(params)}
        grads: list[torch.Tensor | None] = [None] * len(params)
        for step in reversed(steps):
            step_params = [p for p in step.module.parameters() if p.requires_grad]
            with frozen_buffers(step.module):
                if step.replay is not None:
                    with torch.enable_grad():
                        parts, y_re = step.replay(y)
                        found = torch.autograd.grad(y_re, (*parts, *step_params), grad_y, allow_unused=True)
                    n = len(parts)
                    x = torch.cat([t.detach() for t in parts], dim=1)
                    grad_y = torch.cat(found[:n], dim=1)
                else:
                    with torch.no_grad():
                        x = step.inverse(y)
                    x = x.detach().requires_grad_(True)
                    with torch.enable_grad():
                        y_re = step.forward(x)
                        found = torch.autograd.grad(y_re, (x, *step_params), grad_y, allow_unused=True)
                    n = 1
                    grad_y = found[0]
            for p, g in zip(step_params, found[n:], strict=True):
                if g is None:
                    continue
                i = index[id(p)]
                grads[i] = g if grads[i] is None else grads[i] + g
            y = x.detach()
            del y_re, found
        return (grad_y, None, *grads)


def reversible_chain(x: torch.Tensor, steps: Sequence[ReversibleStep]) -> torch.Tensor:
    """Apply ``steps`` in order to ``x``, storing no activations for backward.

    Gradients equal those of plain autograd through the same steps up to the round-off of the
    inverse (tested to rtol 1e-4 in float32 and float64).

    Args:
        x: input of the first step.
        steps: the invertible steps.

    Returns:
        The output of the last step.
    """
    params: list[nn.Parameter] = []
    seen: set[int] = set()
    for step in steps:
        for p in step.module.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                params.append(p)
    if not torch.is_grad_enabled() or not (x.requires_grad or params):
        with torch.no_grad():
            y = x
            for step in steps:
                y = step.forward(y)
        return y
    return _ReversibleChain.apply(x, steps, *params)


StepFn = Callable[..., Sequence[torch.Tensor | None]]


class _Layout:
    """Which argument and result slots of a recomputed step hold tensors (the others hold None)."""

    __slots__ = ("inputs", "outputs")

    def __init__(self, inputs: list[bool]) -> None:
        self.inputs = inputs
        self.outputs: list[bool] = []


def _place(tensors: Sequence[torch.Tensor], present: Sequence[bool]) -> list[torch.Tensor | None]:
    found = iter(tensors)
    return [next(found) if has else None for has in present]


def _autocast_state(device_type: str) -> tuple[bool, torch.dtype] | None:
    if not torch.amp.is_autocast_available(device_type):
        return None
    return torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)


class _Recomputed(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, fn: StepFn, module: nn.Module, layout: _Layout, n_inputs: int, *args: Any) -> Any:
        inputs = args[:n_inputs]
        ctx.fn, ctx.module, ctx.layout, ctx.n_inputs = fn, module, layout, n_inputs
        ctx.params = args[n_inputs:]
        # Autograd runs backward outside the caller's autocast block: replay the step under the same one.
        ctx.device_type = inputs[0].device.type if inputs else "cpu"
        ctx.autocast = _autocast_state(ctx.device_type)
        with torch.no_grad():
            outs = fn(*_place(inputs, layout.inputs))
        layout.outputs = [o is not None for o in outs]
        # An input handed back unchanged (a cell without memory passes it through) must become a new
        # tensor: autograd does not let a Function return its own input as an output of its graph.
        kept = tuple(o.clone() if any(o is i for i in inputs) else o for o in outs if o is not None)
        ctx.save_for_backward(*inputs)  # version-checked: an input changed in place is an error
        ctx.set_materialize_grads(False)
        return kept

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, *grads: torch.Tensor | None) -> Any:
        n = ctx.n_inputs
        needs = ctx.needs_input_grad[4:]
        leaves = [
            t.detach().requires_grad_(need) for t, need in zip(ctx.saved_tensors, needs[:n], strict=True)
        ]
        params = [p for p, need in zip(ctx.params, needs[n:], strict=True) if need]
        wrt = [leaf for leaf, need in zip(leaves, needs[:n], strict=True) if need] + params
        state = ctx.autocast
        replay_autocast = (
            torch.autocast(ctx.device_type, dtype=state[1], enabled=state[0]) if state else nullcontext()
        )
        # The buffers (BatchNorm running statistics) are restored only after autograd.grad: the
        # recomputed batch_norm saved them for its backward, and restoring them is an in-place write.
        with frozen_buffers(ctx.module):
            with torch.enable_grad(), replay_autocast:
                # views, not the leaves: module hooks (FlopCounterMode's tracker) cannot register on
                # a leaf while autograd.grad runs
                outs = ctx.fn(*_place([t.view_as(t) for t in leaves], ctx.layout.inputs))
            outs = [o for o in outs if o is not None]
            pairs = [(o, g) for o, g in zip(outs, grads, strict=True) if g is not None and o.requires_grad]
            found = iter([None] * len(wrt))
            if pairs and wrt:
                outputs, grad_outputs = [o for o, _ in pairs], [g for _, g in pairs]
                found = iter(torch.autograd.grad(outputs, wrt, grad_outputs, allow_unused=True))
            del outs, pairs
        return (None, None, None, None, *(next(found) if need else None for need in needs))


def recomputed(
    fn: StepFn, inputs: Sequence[torch.Tensor | None], module: nn.Module
) -> list[torch.Tensor | None]:
    """Run ``fn(*inputs)``, keeping only ``inputs`` for backward; backward runs ``fn`` again with a graph.

    Gradient checkpointing of one step (Chen et al. 2016), written as an ``autograd.Function`` that
    stores its inputs with ``save_for_backward``, so that :class:`SavedTensorCounter` sees what it
    keeps and autograd's version check turns an input changed in place after the forward into an
    error instead of a silently wrong gradient. The parameters of ``module`` are explicit inputs of
    the function (DDP's gradient hooks fire as usual); its buffers are restored after the
    recomputation, as in :func:`reversible_chain`; the autocast state of the forward is re-entered.

    Limits: ``fn`` must be deterministic (no dropout: the random state is not replayed), must not
    change its inputs in place, and must use no parameters outside ``module``; no double backward.
    Under ``no_grad``, or when nothing requires grad, ``fn`` simply runs.

    Args:
        fn: the step; takes ``inputs`` positionally and returns a sequence of tensors or None.
        inputs: its arguments: tensors, or None for an absent (e.g. initial zero) state.
        module: the module whose parameters ``fn`` uses.

    Returns:
        ``fn``'s outputs, with a graph that reaches ``inputs`` and the parameters.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    tensors = [t for t in inputs if t is not None]
    if not torch.is_grad_enabled() or not (params or any(t.requires_grad for t in tensors)):
        return list(fn(*inputs))
    layout = _Layout([t is not None for t in inputs])
    outs = _Recomputed.apply(fn, module, layout, len(tensors), *tensors, *params)
    return _place(outs, layout.outputs)


class SavedTensorCounter:
    """Count the bytes autograd saves for backward inside a ``with`` block, each storage once.

    Uses :func:`torch.autograd.graph.saved_tensors_hooks`; parameters saved by an op count too (they
    are the same in both modes) unless passed as ``exclude``. Example::

        with SavedTensorCounter(exclude=model.parameters()) as counter:
            loss = model(x).square().mean()
        print(counter.bytes)

    Args:
        exclude: tensors whose storages are not counted (e.g. the model's parameters, which exist
            whatever autograd keeps).
    """

    def __init__(self, exclude: Iterable[torch.Tensor] = ()) -> None:
        self._storages: dict[int, int] = {}
        self._excluded = {t.untyped_storage().data_ptr() for t in exclude}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in self._excluded:
            self._storages[storage.data_ptr()] = storage.nbytes()
        return t

    @staticmethod
    def _unpack(t: torch.Tensor) -> torch.Tensor:
        return t

    @property
    def bytes(self) -> int:
        """Total bytes of the distinct storages saved so far."""
        return sum(self._storages.values())

    def __enter__(self) -> SavedTensorCounter:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)
