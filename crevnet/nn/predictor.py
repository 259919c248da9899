"""The reversible predictive module (RPM) of CrevNet (sec. 3.2): stacked recurrent cells with gates.

Each of the ``N`` layers reads the first half ``x1`` of the latent, updates its recurrent state (and the
spatio-temporal memory ``M`` that zig-zags up the layers and on to the next time step), and writes into
the second half::

    h = out(cell(x1, state, M))     g = gate(h)
    x2 <- (1 − g) ⊙ x2 + g ⊙ h      (convex update, eq. 4)   or   x2 <- x2 + g ⊙ h   (additive)
    (x1, x2) <- (x2, x1)            swap, so the next layer updates the other half

``out`` is the identity when the cells are as wide as a latent half (the paper); with another
``hidden`` width (``PredictorConfig.hidden``) it is a 1×1 conv from the cell's hidden state to one half,
so the RPM's capacity is chosen apart from the latent's shape.

Given the hidden states ``h`` of every layer the update is invertible: this is the "conditional"
reversibility of the paper. With the zig-zag memory, the hidden state of layer ``l`` depends on the
inputs of layers ``< l``, so the inverse cannot recompute ``h`` from the *incoming* states alone
(it would need the very inputs it is recovering). :meth:`ReversiblePredictor.inverse` therefore takes
the state that :meth:`ReversiblePredictor.forward` *returned*, whose ``h`` are exactly the ones the
gates used.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

import torch
from torch import nn

from crevnet.nn.cells import ConvLSTMCell, LSTMState, SpatioTemporalLSTMCell
from crevnet.nn.conv import conv_class
from crevnet.nn.coupling import merge_halves, split_halves
from crevnet.nn.memory import recomputed

__all__ = [
    "AdditiveUpdate",
    "ConvSigmoidGate",
    "ConvexUpdate",
    "PredictorConfig",
    "PredictorState",
    "ReversiblePredictor",
    "TwoConvGate",
]

CellKind = Literal["st_lstm", "conv_lstm"]
GateKind = Literal["conv1x1", "two_conv"]
UpdateKind = Literal["convex", "additive"]


@dataclass(frozen=True)
class PredictorConfig:
    """Shape of the reversible predictive module. Defaults: the paper's 8-layer ST-LSTM RPM.

    The channel count (one latent half) and the conv rank come from the encoder, so they are not
    fields here.

    Attributes:
        layers: number of cell + gate layers.
        kernel_size: odd kernel size of the cells' gate convs.
        cell: "st_lstm" (released CrevNet cell, zig-zag memory) or "conv_lstm" (no memory).
        gate: "conv1x1" (released: g = σ(conv1×1(h))) or "two_conv" (paper:
            g = σ(W2 ∗ ReLU(W1 ∗ h + b1) + b2) with W1 1×1 and W2 k×k).
        update: "convex" (x2 ← (1−g)⊙x2 + g⊙h, paper) or "additive" (x2 ← x2 + g⊙h).
        hidden: channels of the cells' hidden state and memory; None (default) for one latent half,
            as in the paper. A different width adds a 1×1 conv per layer from the hidden state to
            one latent half (the update and the gate read that projection).
        gate_bias: None (default): the gates start as PyTorch initialises their convs (g ≈ 0.5). A
            number: every gate starts closed, ``g = σ(gate_bias)`` for every input (zero weights of
            its last conv, that bias), so the untrained RPM is nearly the identity: each predicted
            latent is nearly the last one and, through the exact inverse, each predicted frame nearly
            the last observed frame. Training starts from "copy the last frame" and learns the change
            (with an even number of ``layers``: each layer swaps the latent halves).

    bf16 autocast and memory saving are not fields: they are run options, arguments of
    :meth:`ReversiblePredictor.forward`.
    """

    layers: int = 8  # cell + gate layers
    kernel_size: int = 3  # odd
    cell: CellKind = "st_lstm"  # "st_lstm" | "conv_lstm"
    gate: GateKind = "conv1x1"  # "conv1x1" (released) | "two_conv" (paper)
    update: UpdateKind = "convex"  # "convex" (paper) | "additive"
    hidden: int | None = None  # cells' hidden (and memory) channels; None: one latent half (paper)
    gate_bias: float | None = None  # None: default init; e.g. -4: closed gates, the RPM starts as copy-last

    def __post_init__(self) -> None:
        if self.gate_bias is not None:
            if isinstance(self.gate_bias, bool) or not math.isfinite(float(self.gate_bias)):
                raise ValueError(
                    f"PredictorConfig.gate_bias must be a finite number or null, got {self.gate_bias!r}"
                )
            if self.layers % 2:
                raise ValueError(
                    f"PredictorConfig.gate_bias starts the RPM near the identity, which needs an even number "
                    f"of layers (each swaps the latent halves); got layers={self.layers}: use "
                    f"{self.layers + 1} or {self.layers - 1} layers, or gate_bias: null"
                )
        if self.hidden is not None and (
            isinstance(self.hidden, bool) or not isinstance(self.hidden, int) or self.hidden < 1
        ):
            raise ValueError(
                f"PredictorConfig.hidden must be a positive number of channels or null, got {self.hidden!r}"
            )
        if self.layers < 1:
            raise ValueError(f"PredictorConfig.layers must be >= 1, got {self.layers}")
        if self.kernel_size < 1 or self.kernel_size % 2 != 1:
            raise ValueError(
                f"PredictorConfig.kernel_size must be a positive odd number, got {self.kernel_size}"
            )
        for name, table in (("cell", _CELLS), ("gate", _GATES), ("update", _UPDATES)):
            value = getattr(self, name)
            if value not in table:
                raise ValueError(f"PredictorConfig.{name} must be one of {sorted(table)}, got {value!r}")


class PredictorState(NamedTuple):
    """Recurrent state of the RPM between time steps.

    Attributes:
        cells: one :class:`LSTMState` per layer.
        memory: the spatio-temporal memory leaving the top layer (None for memory-free cells).
    """

    cells: tuple[LSTMState, ...]
    memory: torch.Tensor | None


# -- gates --------------------------------------------------------------------------------------------
class ConvSigmoidGate(nn.Module):
    """Released gate: ``g = σ(conv1×1(h))`` (with bias).

    Shape:
        (B, C, [T,] H, W) -> (B, C, [T,] H, W), values in (0, 1).
    """

    def __init__(self, dims: int, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        del kernel_size  # the released gate is always 1×1
        self.conv = conv_class(dims)(channels, channels, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(h))

    @torch.no_grad()
    def close_(self, bias: float) -> None:
        """Make the gate constant, ``g = σ(bias)`` for every input (zero weights); gradients still flow."""
        self.conv.weight.zero_()
        self.conv.bias.fill_(bias)


class TwoConvGate(nn.Module):
    """Paper gate (eq. 3): ``g = σ(W2 ∗ ReLU(W1 ∗ h + b1) + b2)``, W1 1×1 and W2 k×k.

    Shape:
        (B, C, [T,] H, W) -> (B, C, [T,] H, W), values in (0, 1).
    """

    def __init__(self, dims: int, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        conv = conv_class(dims)
        self.conv1 = conv(channels, channels, 1)
        self.conv2 = conv(channels, channels, kernel_size, padding=kernel_size // 2)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv2(torch.relu(self.conv1(h))))

    @torch.no_grad()
    def close_(self, bias: float) -> None:
        """Make the gate constant, ``g = σ(bias)`` for every input (zero ``W2``); gradients still flow."""
        self.conv2.weight.zero_()
        self.conv2.bias.fill_(bias)


# -- updates ------------------------------------------------------------------------------------------
class ConvexUpdate(nn.Module):
    """Paper update (eq. 4): ``x2' = (1 − g)⊙x2 + g⊙h``; inverse ``x2 = (x2' − g⊙h) / (1 − g)``."""

    def forward(self, x2: torch.Tensor, g: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return x2 + g * (h - x2)

    def inverse(self, y2: torch.Tensor, g: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return (y2 - g * h) / (1 - g)


class AdditiveUpdate(nn.Module):
    """Additive update: ``x2' = x2 + g⊙h``; inverse ``x2 = x2' − g⊙h`` (volume preserving)."""

    def forward(self, x2: torch.Tensor, g: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return x2 + g * h

    def inverse(self, y2: torch.Tensor, g: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return y2 - g * h


# The one place where a config string becomes a class.
_CELLS: dict[str, type[nn.Module]] = {
    "st_lstm": SpatioTemporalLSTMCell,
    "conv_lstm": ConvLSTMCell,
}
_GATES: dict[str, type[nn.Module]] = {"conv1x1": ConvSigmoidGate, "two_conv": TwoConvGate}
_UPDATES: dict[str, type[nn.Module]] = {"convex": ConvexUpdate, "additive": AdditiveUpdate}


class ReversiblePredictor(nn.Module):
    """The reversible predictive module: ``N`` layers of recurrent cell + gate on latent halves.

    Args:
        dims: 2 (Conv2d, latent (B, 2C, H, W)) or 3 (Conv3d, latent (B, 2C, T, H, W)).
        channels: channels of one latent half; also the cells' hidden and memory channels unless
            ``config.hidden`` sets another width.
        config: layers and variants; see :class:`PredictorConfig`.

    Shape:
        forward: latent (B, 2·channels, [T,] H, W) -> latent of the same shape, plus the new
        :class:`PredictorState`. inverse: the reverse, given that state.
    """

    def __init__(self, dims: int, channels: int, config: PredictorConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or PredictorConfig()
        conv_class(dims)  # validates dims
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.dims = dims
        self.channels = channels
        cell, gate, update = _CELLS[config.cell], _GATES[config.gate], _UPDATES[config.update]
        k = config.kernel_size
        self.hidden = hidden = config.hidden or channels
        self.cells = nn.ModuleList(cell(dims, channels, hidden, k) for _ in range(config.layers))
        # h enters the update through a 1x1 projection when the cells are not as wide as a latent half.
        self.outs = nn.ModuleList(
            conv_class(dims)(hidden, channels, 1) if hidden != channels else nn.Identity()
            for _ in range(config.layers)
        )
        self.gates = nn.ModuleList(gate(dims, channels, k) for _ in range(config.layers))
        self.update = update()
        if config.gate_bias is not None:  # start near the identity: predicted frame ≈ last frame
            for g in self.gates:
                g.close_(float(config.gate_bias))

    @torch.no_grad()
    def extend_from(self, shallower: ReversiblePredictor, gate_bias: float = -4.0) -> None:
        """Start a deeper RPM from a trained shallower one: its layers, then near-identity layers.

        The first ``shallower.config.layers`` layers take ``shallower``'s weights; every further layer
        keeps its fresh cell and gets a constant, nearly closed gate ``g = σ(gate_bias)`` (zero gate
        weights), so it barely changes ``x2`` (``x2 + g·(h − x2)``, g ≈ 0.018 at the default): with
        memory-free cells (``conv_lstm``) the deeper RPM predicts almost as the shallower one did, and
        training then opens the gates where they help. (With ``st_lstm`` the zig-zag memory reaches the
        next time step through the new cells, so the start is further from the shallower model.) The
        extra layers must be even in number: each layer swaps the halves, so an odd count would hand
        the decoder swapped halves.

        Args:
            shallower: an RPM whose config equals this one's but for fewer ``layers``.
            gate_bias: the new layers' gate bias (the more negative, the closer to the identity, and
                the smaller the gradient that opens the gate).

        Raises:
            ValueError: the configs differ in more than ``layers``, it is not fewer, or the
                difference is odd.
        """
        mine, theirs = self.config, shallower.config
        added = mine.layers - theirs.layers
        same = replace(theirs, layers=mine.layers) == mine
        if not same or self.dims != shallower.dims or self.channels != shallower.channels:
            raise ValueError(
                "ReversiblePredictor.extend_from needs an RPM that differs only in its number of layers, "
                f"got {theirs} with {shallower.channels} channels for {mine} with {self.channels}"
            )
        if added <= 0 or added % 2:
            raise ValueError(
                f"ReversiblePredictor.extend_from adds an even, positive number of layers (each layer "
                f"swaps the latent halves); {theirs.layers} -> {mine.layers} adds {added}"
            )
        for name in ("cells", "outs", "gates"):
            mine_list, theirs_list = getattr(self, name), getattr(shallower, name)
            for target, source in zip(mine_list, theirs_list, strict=False):
                target.load_state_dict(source.state_dict(), strict=True)
        for gate in list(self.gates)[theirs.layers :]:
            gate.close_(gate_bias)

    def _check(self, z: torch.Tensor, who: str) -> None:
        if z.dim() != self.dims + 2 or z.shape[1] != 2 * self.channels:
            layout = "(B, 2C, T, H, W)" if self.dims == 3 else "(B, 2C, H, W)"
            raise ValueError(
                f"ReversiblePredictor.{who} expects a latent {layout} with 2C = "
                f"{2 * self.channels}, got shape {tuple(z.shape)}"
            )

    def _autocast(self, z: torch.Tensor, bf16: bool) -> torch.autocast | nullcontext[None]:
        # Leave any outer autocast alone when the switch is off.
        if bf16:
            return torch.autocast(z.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def forward(
        self,
        z: torch.Tensor,
        state: PredictorState | None = None,
        *,
        bf16: bool = False,
        memory_saving: bool = False,
    ) -> tuple[torch.Tensor, PredictorState]:
        """Advance the latent one time step.

        Args:
            z: latent, both halves concatenated on the channel axis.
            state: the state returned by the previous step; None for zeros.
            bf16: run the cells and gates under bfloat16 autocast (the x2 update stays in the
                latent's dtype, so the conditional inverse stays exact given the states). Pays off
                only where bf16 matmuls are fast (GPUs, CPUs with AMX or AVX512-BF16); on
                AVX2-only CPUs oneDNN emulates bf16 and a conv runs tens of times slower than fp32.
            memory_saving: keep only ``z`` and ``state`` for backward and recompute the step there
                (:func:`~crevnet.nn.memory.recomputed`); same gradients. The conditional inverse
                could rebuild ``z`` from the output instead, but in :class:`~crevnet.nn.CrevNet`
                ``z`` is the encoder's output, which the encoder's memory-saving backward keeps
                anyway, so keeping a reference to it costs nothing.

        Returns:
            ``(z', state')``: the predicted latent and the state to pass to the next step.
        """
        self._check(z, "forward")
        cells: list[LSTMState | None] = [None] * len(self.cells) if state is None else list(state.cells)
        if len(cells) != len(self.cells):
            raise ValueError(
                f"PredictorState has {len(cells)} layer states, the predictor has {len(self.cells)}"
            )
        memory = None if state is None else state.memory
        if not memory_saving:
            return self._step(z, cells, memory, bf16)
        flat: list[torch.Tensor | None] = [z, memory]
        for s in cells:
            flat += [None, None] if s is None else [s.h, s.c]

        def step(
            z: torch.Tensor, memory: torch.Tensor | None, *hc: torch.Tensor | None
        ) -> list[torch.Tensor | None]:
            pairs = zip(hc[::2], hc[1::2], strict=True)
            layer_states = [None if h is None or c is None else LSTMState(h, c) for h, c in pairs]
            z_new, new = self._step(z, layer_states, memory, bf16)
            return [z_new, new.memory, *(t for s in new.cells for t in s)]

        z_new, memory, *hc = recomputed(step, flat, self)
        assert z_new is not None
        new_cells = tuple(LSTMState(h, c) for h, c in zip(hc[::2], hc[1::2], strict=True))  # type: ignore[arg-type]
        return z_new, PredictorState(new_cells, memory)

    def _step(
        self,
        z: torch.Tensor,
        cells: list[LSTMState | None],
        memory: torch.Tensor | None,
        bf16: bool,
    ) -> tuple[torch.Tensor, PredictorState]:
        x1, x2 = split_halves(z)
        new_cells: list[LSTMState] = []
        for cell, out, gate, s in zip(self.cells, self.outs, self.gates, cells, strict=True):
            with self._autocast(z, bf16):
                s_new, memory = cell(x1, s, memory)
                h = out(s_new.h)
                g = gate(h)
            x2 = self.update(x2, g.to(x2.dtype), h.to(x2.dtype))
            new_cells.append(s_new)
            x1, x2 = x2, x1
        return merge_halves(x1, x2), PredictorState(tuple(new_cells), memory)

    def inverse(self, z_out: torch.Tensor, state: PredictorState, *, bf16: bool = False) -> torch.Tensor:
        """Conditional inverse: recover the input latent from the output and the returned state.

        Args:
            z_out: the latent :meth:`forward` produced.
            state: the state :meth:`forward` *returned* with it (its ``h`` are what the gates saw).
            bf16: the value :meth:`forward` ran with (the gates must see the same precision).

        Returns:
            The latent :meth:`forward` received.
        """
        self._check(z_out, "inverse")
        if len(state.cells) != len(self.cells):
            raise ValueError(
                f"PredictorState has {len(state.cells)} layer states, the predictor has {len(self.cells)}"
            )
        x1, x2 = split_halves(z_out)
        layers = zip(reversed(self.outs), reversed(self.gates), reversed(state.cells), strict=True)
        for out, gate, s in layers:
            x1, x2 = x2, x1  # undo the swap
            with self._autocast(z_out, bf16):
                h = out(s.h)
                g = gate(h)
            x2 = self.update.inverse(x2, g.to(x2.dtype), h.to(x2.dtype))
        return merge_halves(x1, x2)
