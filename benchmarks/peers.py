"""Peers at equal CPU time: OpenSTL's SimVP and ConvLSTM next to the quickstart and its ablation.

Trains one model for a wall-clock budget on crevnet's own Moving MNIST training stream (the data module
and the ``data:`` section of ``--config``, as ``crevnet fit`` reads them; clip after clip in the same
order) and scores it with crevnet's evaluation (:func:`crevnet.evaluation.evaluate.evaluate_model`) on
the first ``--num`` surrogate test sequences, next to "predict zeros". Every run prints ONE JSON row
(stamped by ``benchmarks/record.py``).

The peers' code is not part of this repository. Fetch OpenSTL (its ``openstl/`` package, with timm
installed) into a folder OUTSIDE the repository and pass that folder (the one holding ``openstl/``)::

    python benchmarks/peers.py --model simvp --peers /path/to/OpenSTL --minutes 13 --lrs 1e-3,4e-3,1e-2
    python benchmarks/peers.py --model convlstm --peers /path/to/OpenSTL --minutes 13 --lrs 5e-4,2e-3,8e-3
    python benchmarks/peers.py --model crevnet --config configs/quickstart.yaml --minutes 13 --seeds 0,1
    python benchmarks/peers.py --model crevnet --config configs/quickstart_conventional.yaml --minutes 13
    python benchmarks/peers.py --model simvp --peers /path/to/OpenSTL --size-only   # the MAC ratio only

Fairness rules (docs/results/peers.md):

* **Compute per sample.** Multiply-accumulates of the training forward on one clip of
  ``data.num_frames`` frames (20 for the quickstart), counted with
  ``torch.utils.flop_counter.FlopCounterMode`` (MACs = FLOPs / 2; convolutions and matrix products),
  must be within 10% of the reference's (``--reference``, default the quickstart). A peer keeps the
  shape of OpenSTL's Moving MNIST recipe and is narrowed to that budget: SimVP (gSTA, ``N_S`` 4,
  ``N_T`` 8) with ``hid_T`` = 8 × ``hid_S`` as in OpenSTL's config, ``hid_T`` then tuned alone;
  ConvLSTM (4 layers, patch 4, filter 5) with one width for all layers. ``--simvp-hid-s/-t`` and
  ``--convlstm-hidden/-layers`` set them by hand. The ratio is printed; outside 10% the run is refused
  unless ``--force``. A CrevNet teacher-forced rollout is counted (a conventional encoder's free-running
  re-encoding is not).
* **Same data, same budget, same score.** All models see the same clips in the same order; the budget is
  the training loop's wall clock (data generation in the loop counts, model building and scoring do not);
  the CrevNet configs run through ``crevnet fit`` itself (``trainer.max_time``, their validation and
  sample pictures included, as a user runs them). Threads: the peers' loop picks 1 or 2 threads by timed
  steps (crevnet's ``ThreadTuner``, as the quickstart's ``AdaptiveThreads``), unless ``--threads N``.
* **The peers' recipes, scaled to the budget.** OpenSTL trains these 200 epochs on a GPU; here its schedules
  follow progress = elapsed / budget: Adam with OneCycle (max lr = ``lr``, 30% warm-up, cosine, ÷25 at the
  start, ÷25e4 at the end, beta1 cycled 0.95 → 0.85 → 0.95) as OpenSTL's ``onecycle``; MSE loss; no
  gradient clipping (OpenSTL's default); batch 16 (``--batch``). SimVP maps 10 frames to the next 10 (for
  other lengths it rolls out as OpenSTL's method does). ConvLSTM's loss is OpenSTL's (MSE of all next
  frames); its scheduled sampling is OpenSTL's (per-clip, per-step coin with probability eta of feeding the
  true frame) with eta falling linearly from 1 to 0 over the first ``--sampling-stop`` (0.4) of the run, the
  fraction OpenSTL's 50,000 of 125,000 iterations give; reverse scheduled sampling is off (OpenSTL's default
  for ConvLSTM). Learning rates: ``--lrs`` sweeps them (each a run); default the recipe's (SimVP 1e-3,
  ConvLSTM 5e-4, CrevNet the config's ``model.lr``).

Fields: ``model``, ``config``, ``sizing``, ``params``, ``gmac_per_sample``, ``ref_gmac_per_sample``,
``mac_ratio``, ``lr``, ``seed``, ``batch``, ``minutes``, ``steps``, ``samples_seen``, ``train_seconds``,
``samples_per_s``, ``threads``, ``peak_rss_mb`` (VmHWM of the run's own process when training ended),
``saved_mb_per_sample`` (what autograd keeps for backward over one training loss, parameters left out,
÷ batch; null with ``saved_mb_note`` when it cannot be counted), ``mse``, ``x_zeros`` (MSE ÷ zeros'),
``ssim``, ``zeros_mse``, ``zeros_ssim``, ``copy_last_mse``, ``num_sequences``, then the record fields.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import yaml
from torch import nn

try:
    import record
except ImportError:  # loaded by file path (the tests): benchmarks/ holds the one record helper
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import record

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "configs" / "quickstart.yaml"
MODELS = ("simvp", "convlstm", "crevnet")
TOLERANCE = 0.10
SIZED = ("sizing", "params", "gmac_per_sample", "ref_gmac_per_sample", "mac_ratio")
RECIPE_LR = {"simvp": 1e-3, "convlstm": 5e-4}  # OpenSTL's configs/mmnist/{simvp/SimVP_gSTA,ConvLSTM}.py
PEER_BATCH = 16  # both OpenSTL Moving MNIST configs
SIMVP = {"model_type": "gSTA", "N_S": 4, "N_T": 8, "ratio": 8}  # OpenSTL: hid_S 64, hid_T 512
CONVLSTM = {"layers": 4, "patch": 4, "filter": 5}  # OpenSTL: num_hidden 128,128,128,128


# -- configs and data -------------------------------------------------------------------------------
def read_config(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a YAML mapping")
    return data


def apply_sets(config: dict[str, Any], sets: list[str]) -> dict[str, Any]:
    """``config`` with each ``KEY.PATH=VALUE`` of ``--set`` applied (VALUE read as YAML)."""
    out = yaml.safe_load(yaml.safe_dump(config)) or {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(
                f"--set {item!r}: expected KEY.PATH=VALUE, e.g. model.net.encoder.coupling=affine"
            )
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ValueError(f"--set {item!r}: {part!r} is not a mapping in the config")
            node = child
        node[leaf] = yaml.safe_load(value)
    return out


def derived_config(path: Path, sets: list[str], folder: Path) -> Path:
    """The config at ``path`` with ``sets`` applied, written as FOLDER/STEM+KEY=VALUE....yaml."""
    config = apply_sets(read_config(path), sets)
    name = Path(path).stem + "".join(
        f"+{s.partition('=')[0].split('.')[-1]}={s.partition('=')[2]}" for s in sets
    )
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.yaml"
    target.write_text(f"# {path} with --set {' '.join(sets)}\n" + yaml.safe_dump(config, sort_keys=False))
    return target


def clip_lengths(config: dict[str, Any]) -> tuple[int, int]:
    """(context, frames) of the config's training clips."""
    model = config.get("model") or {}
    model = model.get("init_args", model)
    context = int(model.get("context", 10))
    frames = int((config.get("data") or {}).get("num_frames", 20))
    if not 0 < context < frames:
        raise ValueError(f"context {context} must be in 1..{frames - 1} (data.num_frames {frames})")
    return context, frames


def frame_size(config: dict[str, Any]) -> int:
    generator = (config.get("data") or {}).get("generator") or {}
    args = generator.get("init_args", {}) if isinstance(generator, dict) else {}
    return int(args.get("image_size", 64))


def datamodule(config: dict[str, Any], batch: int, data_dir: str | None) -> Any:
    """The config's Moving MNIST data module (its ``data:`` keys), batch size ``batch``."""
    from crevnet.data.datamodule import MovingMNISTDataModule

    data = dict(config.get("data") or {})
    if "class_path" in data or isinstance(data.get("generator"), dict):
        raise ValueError("peers.py trains peers on the plain Moving MNIST data module only (no class_path)")
    data.update(batch_size=batch, num_workers=0)
    if data_dir is not None:
        data["data_dir"] = data_dir
    return MovingMNISTDataModule(**data)


def training_stream(dm: Any) -> Any:
    """Batches of the training stream in ``crevnet fit``'s order: epoch e holds the clips e·size ..
    (e+1)·size − 1 (``fixed_train``: the same clips every epoch)."""
    from torch.utils.data import DataLoader

    from crevnet.data.sampler import EpochSampler

    dm.setup("fit")
    sampler = EpochSampler(dm.train_size, fixed=dm.fixed_train)
    loader = DataLoader(dm.train_dataset, batch_size=dm.batch_size, sampler=sampler, num_workers=0)
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


# -- counting ---------------------------------------------------------------------------------------
def count_macs(fn: Callable[[], object]) -> int:
    """Multiply-accumulates of ``fn()`` (FlopCounterMode's FLOPs / 2), without autograd."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        fn()
    return counter.get_total_flops() // 2


def saved_mb_per_sample(model: nn.Module, loss_fn: Callable[[], torch.Tensor], batch: int) -> float:
    from crevnet.nn import SavedTensorCounter

    with SavedTensorCounter(exclude=model.parameters()) as counter:
        loss = loss_fn()
    del loss
    return round(counter.bytes / 2**20 / batch, 3)


def peak_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


# -- the peers --------------------------------------------------------------------------------------
_IMPORTED: dict[tuple[Path, str], Any] = {}


def import_peer(folder: Path, module: str) -> Any:
    """``openstl.<module>`` from ``folder`` (the folder holding ``openstl/``, or ``openstl/`` itself)."""
    folder = Path(folder).resolve()
    if (folder, module) in _IMPORTED:
        return _IMPORTED[folder, module]
    if folder.name == "openstl" and not (folder / "openstl").is_dir():
        folder = folder.parent
    if not (folder / "openstl" / Path(*module.split("."))).with_suffix(".py").is_file():
        raise FileNotFoundError(
            f"--peers {folder}: no openstl/{module.replace('.', '/')}.py there; pass the folder that holds "
            "OpenSTL's openstl/ package (see this script's docstring)"
        )
    for name in [n for n in sys.modules if n == "openstl" or n.startswith("openstl.")]:
        del sys.modules[name]  # another folder's copy
    _IMPORTED.clear()
    sys.path.insert(0, str(folder))
    try:
        _IMPORTED[folder, module] = importlib.import_module(f"openstl.{module}")
    finally:
        sys.path.remove(str(folder))
    return _IMPORTED[folder, module]


def patches(frames: torch.Tensor, p: int) -> torch.Tensor:
    """(B, T, H, W, C) -> (B, T, H/p, W/p, p·p·C), OpenSTL's patch layout (row, column, channel)."""
    b, t, h, w, c = frames.shape
    x = frames.reshape(b, t, h // p, p, w // p, p, c).permute(0, 1, 2, 4, 3, 5, 6)
    return x.reshape(b, t, h // p, w // p, p * p * c)


def unpatch(x: torch.Tensor, p: int) -> torch.Tensor:
    """The inverse of :func:`patches`."""
    b, t, hp, wp, d = x.shape
    c = d // (p * p)
    x = x.reshape(b, t, hp, wp, p, p, c).permute(0, 1, 2, 4, 3, 5, 6)
    return x.reshape(b, t, hp * p, wp * p, c)


class Peer:
    """One peer model with OpenSTL's training loss and prediction, as its method files define them."""

    name = ""
    net: nn.Module

    def loss(self, clip: torch.Tensor, progress: float, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, past: torch.Tensor, horizon: int) -> torch.Tensor:
        raise NotImplementedError

    def macs(self, frames: int, size: int) -> int:
        """MACs of the training forward on one clip of ``frames`` frames (zeros; the counts do not
        depend on the values)."""
        clip = torch.zeros(1, frames, 1, size, size)
        gen = torch.Generator().manual_seed(0)
        return count_macs(lambda: self.loss(clip, 0.0, gen))


class SimVP(Peer):
    """OpenSTL's ``SimVP_Model``: ``context`` frames in, the next ``context`` out (methods/simvp.py)."""

    name = "simvp"

    def __init__(self, folder: Path, context: int, size: int, hid_s: int, hid_t: int, **kw: Any) -> None:
        cls = import_peer(folder, "models.simvp_model").SimVP_Model
        self.context, self.hid_s, self.hid_t = context, hid_s, hid_t
        self.net = cls(
            in_shape=(context, 1, size, size),
            hid_S=hid_s,
            hid_T=hid_t,
            N_S=kw.get("N_S", SIMVP["N_S"]),
            N_T=kw.get("N_T", SIMVP["N_T"]),
            model_type=kw.get("model_type", SIMVP["model_type"]),
            drop_path=0.0,
        )

    @property
    def sizing(self) -> dict[str, Any]:
        return {"hid_S": self.hid_s, "hid_T": self.hid_t}

    def rollout(self, past: torch.Tensor, horizon: int) -> torch.Tensor:
        out, seq = [], past
        while sum(o.shape[1] for o in out) < horizon:
            seq = self.net(seq)
            out.append(seq)
        return torch.cat(out, dim=1)[:, :horizon]

    def loss(self, clip: torch.Tensor, progress: float, gen: torch.Generator) -> torch.Tensor:
        # OpenSTL's loader hands the model separate (contiguous) input and target tensors
        past, future = clip[:, : self.context].contiguous(), clip[:, self.context :]
        return nn.functional.mse_loss(self.rollout(past, future.shape[1]), future)

    def predict(self, past: torch.Tensor, horizon: int) -> torch.Tensor:
        return self.rollout(past[:, -self.context :].contiguous(), horizon)


class ConvLSTM(Peer):
    """OpenSTL's ``ConvLSTM_Model`` on patches, with scheduled sampling (methods/predrnn.py, convlstm.py)."""

    name = "convlstm"

    def __init__(
        self,
        folder: Path,
        context: int,
        frames: int,
        size: int,
        hidden: int,
        layers: int = CONVLSTM["layers"],
        patch: int = CONVLSTM["patch"],
        filter_size: int = CONVLSTM["filter"],
        sampling_stop: float = 0.4,
    ) -> None:
        cls = import_peer(folder, "models.convlstm_model").ConvLSTM_Model
        self.context, self.frames, self.patch = context, frames, patch
        self.hidden, self.layers = hidden, layers
        self.sampling_stop = sampling_stop
        self.configs = SimpleNamespace(
            in_shape=(frames, 1, size, size),
            patch_size=patch,
            filter_size=filter_size,
            stride=1,
            layer_norm=0,
            pre_seq_length=context,
            aft_seq_length=frames - context,
            total_length=frames,
            reverse_scheduled_sampling=0,
        )
        self.net = cls(layers, [hidden] * layers, self.configs)

    @property
    def sizing(self) -> dict[str, Any]:
        return {"layers": self.layers, "hidden": self.hidden, "patch": self.patch}

    def eta(self, progress: float) -> float:
        """Probability of feeding the true frame: 1 -> 0 over the first ``sampling_stop`` of the run."""
        return max(0.0, 1.0 - progress / self.sampling_stop) if self.sampling_stop > 0 else 0.0

    def _mask(self, batch: int, size: int, eta: float, gen: torch.Generator) -> torch.Tensor:
        p, steps = self.patch, self.frames - self.context - 1
        coins = (torch.rand(batch, steps, generator=gen) < eta).float()
        return coins[:, :, None, None, None].expand(batch, steps, size // p, size // p, p * p).contiguous()

    def loss(self, clip: torch.Tensor, progress: float, gen: torch.Generator) -> torch.Tensor:
        ims = patches(clip.permute(0, 1, 3, 4, 2), self.patch)
        mask = self._mask(clip.shape[0], clip.shape[-1], self.eta(progress), gen)
        _, loss = self.net(ims, mask, return_loss=True)
        return loss

    def predict(self, past: torch.Tensor, horizon: int) -> torch.Tensor:
        b, t, c, h, w = past.shape
        if t != self.context or horizon != self.frames - self.context:
            raise ValueError(f"convlstm: trained for {self.context} + {self.frames - self.context} frames")
        clip = torch.cat([past, past.new_zeros(b, horizon, c, h, w)], dim=1)
        ims = patches(clip.permute(0, 1, 3, 4, 2), self.patch)
        mask = ims.new_zeros(b, horizon - 1, *ims.shape[2:])
        gen, _ = self.net(ims, mask, return_loss=False)
        return unpatch(gen, self.patch)[:, -horizon:].permute(0, 1, 4, 2, 3)


class Scored(nn.Module):
    """What :func:`evaluate_model` calls: ``config.window``, ``parameters()``, ``predict(past, horizon)``."""

    def __init__(self, peer: Peer) -> None:
        super().__init__()
        self.net = peer.net
        self.peer = peer
        self.config = SimpleNamespace(window=1)

    def predict(self, past: torch.Tensor, horizon: int) -> torch.Tensor:
        return self.peer.predict(past, horizon)


# -- sizing -----------------------------------------------------------------------------------------
def reference_macs(config_path: Path) -> int:
    from crevnet.nn import CrevNet

    config = read_config(config_path)
    context, frames = clip_lengths(config)
    net = CrevNet.from_config(config_path).eval()
    size = frame_size(config)
    clip = torch.zeros(1, frames, 1, size, size)
    return count_macs(lambda: net(clip, sampling_prob=0.0, context=context))


def _closest(target: int, lo: int, hi: int, macs: Callable[[int], int]) -> tuple[int, int]:
    """The width in lo..hi whose MACs (non-decreasing in it) are closest to ``target``."""
    seen: dict[int, int] = {}

    def at(w: int) -> int:
        if w not in seen:
            seen[w] = macs(w)
        return seen[w]

    a, b = lo, hi
    while b - a > 1:
        mid = (a + b) // 2
        if at(mid) < target:
            a = mid
        else:
            b = mid
    best = min((a, b), key=lambda w: abs(at(w) - target))
    return best, at(best)


def build_peer(args: argparse.Namespace, context: int, frames: int, size: int, target: int | None) -> Peer:
    """The peer, sized to ``target`` MACs per clip unless its widths are given."""
    folder = Path(args.peers)
    if args.model == "simvp":
        kw = {"model_type": args.simvp_model_type, "N_S": args.simvp_n_s, "N_T": args.simvp_n_t}

        def make(hid_t: int, hid_s: int | None = None) -> Peer:
            # OpenSTL's ratio hid_T = 8 hid_S; hid_S even (its GroupNorm has 2 groups)
            hid_s = hid_s or args.simvp_hid_s or max(2, 2 * round(hid_t / SIMVP["ratio"] / 2))
            return SimVP(folder, context, size, hid_s, hid_t, **kw)

        if args.simvp_hid_t is None:
            if target is None:
                raise ValueError("simvp: give --simvp-hid-t or let it be sized")
            hid_t, _ = _closest(target, 2, 1024, lambda w: make(w).macs(frames, size))
            return make(hid_t)
        return make(args.simvp_hid_t)
    layers = args.convlstm_layers

    def make_lstm(hidden: int) -> Peer:
        return ConvLSTM(
            folder,
            context,
            frames,
            size,
            hidden,
            layers,
            args.convlstm_patch,
            args.convlstm_filter,
            args.sampling_stop,
        )

    if args.convlstm_hidden is None:
        if target is None:
            raise ValueError("convlstm: give --convlstm-hidden or let it be sized")
        hidden, _ = _closest(target, 1, 512, lambda w: make_lstm(w).macs(frames, size))
        return make_lstm(hidden)
    return make_lstm(args.convlstm_hidden)


def sizing(args: argparse.Namespace) -> dict[str, Any]:
    """The model's MACs per clip against the reference's: the widths chosen, the ratio."""
    ref = reference_macs(args.reference)
    config = read_config(args.config)
    context, frames = clip_lengths(config)
    size = frame_size(config)
    torch.manual_seed(0)
    if args.model == "crevnet":
        macs, widths, params = reference_macs(args.config), {}, None
        from crevnet.nn import CrevNet

        params = sum(p.numel() for p in CrevNet.from_config(args.config).parameters())
    else:
        peer = build_peer(args, context, frames, size, ref)
        macs, widths = peer.macs(frames, size), peer.sizing
        params = sum(p.numel() for p in peer.net.parameters())
    return {
        "sizing": widths,
        "params": params,
        "gmac_per_sample": round(macs / 1e9, 4),
        "ref_gmac_per_sample": round(ref / 1e9, 4),
        "mac_ratio": round(macs / ref, 3),
        "frames": frames,
    }


# -- training ---------------------------------------------------------------------------------------
def one_cycle(progress: float, lr: float) -> tuple[float, float]:
    """(lr, beta1) of OpenSTL's ``onecycle`` (torch OneCycleLR defaults, final_div_factor 1e4) at
    ``progress`` of the run."""
    start, end, pct = lr / 25.0, lr / 25.0 / 1e4, 0.3

    def cos(a: float, b: float, f: float) -> float:
        return b + (a - b) / 2.0 * (1.0 + math.cos(math.pi * f))

    if progress <= pct:
        f = progress / pct
        return cos(start, lr, f), cos(0.95, 0.85, f)
    f = min(1.0, (progress - pct) / (1.0 - pct))
    return cos(lr, end, f), cos(0.85, 0.95, f)


def train_peer(args: argparse.Namespace, spec: dict[str, Any]) -> tuple[Peer, dict[str, Any]]:
    """Train the peer for ``spec['minutes']`` (or ``max_steps``) on the config's training stream."""
    from crevnet.train.threads import ThreadTuner, usable_cores

    config = read_config(args.config)
    context, frames = clip_lengths(config)
    size = frame_size(config)
    torch.manual_seed(spec["seed"])
    peer = build_peer(args, context, frames, size, None)
    peer.net.train()
    batch = spec["batch"]
    gen = torch.Generator().manual_seed(spec["seed"])
    row: dict[str, Any] = {}
    try:
        probe = torch.rand(batch, frames, 1, size, size, generator=torch.Generator().manual_seed(1))
        row["saved_mb_per_sample"] = saved_mb_per_sample(peer.net, lambda: peer.loss(probe, 0.5, gen), batch)
    except Exception as exc:  # a hook the peer's ops refuse: say so, train anyway
        row["saved_mb_per_sample"], row["saved_mb_note"] = None, f"not countable: {exc}"
    optimizer = torch.optim.Adam(peer.net.parameters(), lr=spec["lr"], weight_decay=0.0)
    stream = training_stream(datamodule(config, batch, args.data_dir))
    tuner = None
    if args.threads == "adaptive" and min(2, usable_cores()) > 1:
        tuner = ThreadTuner(tuple(range(1, min(2, usable_cores()) + 1)))
        torch.set_num_threads(tuner.threads)
    elif args.threads != "adaptive":
        torch.set_num_threads(int(args.threads))
    budget = spec["minutes"] * 60.0
    steps, start = 0, time.monotonic()
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= budget or (args.max_steps and steps >= args.max_steps):
            break
        t0 = time.perf_counter()
        clip = next(stream)
        progress = min(1.0, elapsed / budget)
        lr, beta1 = one_cycle(progress, spec["lr"])
        for group in optimizer.param_groups:
            group["lr"], group["betas"] = lr, (beta1, group["betas"][1])
        optimizer.zero_grad(set_to_none=True)
        loss = peer.loss(clip, progress, gen)
        if not torch.isfinite(loss):
            row["note"] = f"loss not finite at step {steps}: stopped"
            break
        loss.backward()
        optimizer.step()
        steps += 1
        if tuner is not None:
            threads = tuner.step_done(time.perf_counter() - t0)
            if threads != torch.get_num_threads():
                torch.set_num_threads(threads)
    row.update(
        steps=steps,
        train_seconds=round(time.monotonic() - start, 2),
        threads=torch.get_num_threads(),
        peak_rss_mb=peak_rss_mb(),
    )
    return peer, row


def train_crevnet(args: argparse.Namespace, spec: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """``crevnet fit --config CONFIG`` for the budget, in this process; the trained ``CrevNet``."""
    import lightning as L

    from crevnet.nn import CrevNet
    from crevnet.nn.model import check_memory_saving
    from crevnet.train.cli import CrevNetCLI
    from crevnet.train.loss import LossWeights, prediction_loss

    config = read_config(args.config)
    context, frames = clip_lengths(config)
    size = frame_size(config)
    model_cfg = config.get("model") or {}
    batch = spec["batch"]
    row: dict[str, Any] = {}
    net = CrevNet.from_config(args.config).train()
    mode = check_memory_saving(net.config, model_cfg.get("memory_saving", "off") or "off", "memory_saving")
    weights = LossWeights(**(model_cfg.get("loss") or {}))
    probe = torch.rand(batch, frames, 1, size, size, generator=torch.Generator().manual_seed(1))

    def loss() -> torch.Tensor:
        pred, target = net(probe, sampling_prob=0.0, context=context, memory_saving=mode)
        return prediction_loss(pred, target, weights)

    row["saved_mb_per_sample"] = saved_mb_per_sample(net, loss, batch)

    class Ended(L.Callback):
        """Steps, time and peak memory when training ends (before the config's end-of-fit report)."""

        def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            row.update(
                steps=trainer.global_step,
                train_seconds=round(pl_module.train_seconds(), 2),
                threads=torch.get_num_threads(),
                peak_rss_mb=peak_rss_mb(),
            )

    seconds = round(spec["minutes"] * 60)
    run_root = Path(args.runs_dir) / f"{Path(args.config).stem}_lr{spec['lr']:g}_seed{spec['seed']}"
    argv = [
        "fit",
        "--config",
        str(args.config),
        f"--seed_everything={spec['seed']}",
        f"--model.lr={spec['lr']}",
        f"--data.batch_size={batch}",
        f"--trainer.max_time=00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}",
        f"--trainer.logger.init_args.save_dir={run_root}",
        f"--checkpoint.dirpath={run_root / 'checkpoints'}",
    ]
    if args.max_steps:
        argv.append(f"--trainer.max_steps={args.max_steps}")
    if args.data_dir is not None:
        argv.append(f"--data.data_dir={args.data_dir}")
    if args.threads != "adaptive":
        argv.append(f"--torch_threads={int(args.threads)}")
    cli = CrevNetCLI(args=argv, trainer_defaults={"callbacks": [Ended()]})
    return cli.model.net, row


def run_one(args: argparse.Namespace, spec: dict[str, Any]) -> dict[str, Any]:
    """Train and score one run in this process; its row (without the record fields)."""
    from crevnet.data.testset import load_test_set
    from crevnet.evaluation.evaluate import evaluate_model

    config = read_config(args.config)
    context, frames = clip_lengths(config)
    if args.model == "crevnet":
        model, row = train_crevnet(args, spec)
    else:
        peer, row = train_peer(args, spec)
        model = Scored(peer)
    load_after = record.load_1min()
    test = load_test_set("surrogate", args.data_dir, args.num)
    metrics = evaluate_model(model, test, context, frames - context, args.eval_batch, "cpu", progress=False)
    ours, zeros = metrics.model, metrics.baselines["zeros"]
    samples = row["steps"] * spec["batch"]
    seconds = row["train_seconds"]
    return {
        **row,
        "samples_seen": samples,
        "samples_per_s": round(samples / seconds, 2) if seconds > 0 else None,
        "mse": round(ours.mse, 3),
        "x_zeros": round(ours.mse / zeros.mse, 4),
        "ssim": round(ours.ssim, 4),
        "zeros_mse": round(zeros.mse, 3),
        "zeros_ssim": round(zeros.ssim, 4),
        "copy_last_mse": round(metrics.baselines["copy_last"].mse, 3),
        "num_sequences": metrics.num_sequences,
        "horizon": metrics.horizon,
        "load_after_training": load_after,
    }


# -- the command line -------------------------------------------------------------------------------
def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=MODELS, required=True)
    p.add_argument("--peers", type=Path, help="folder holding OpenSTL's openstl/ package (simvp, convlstm)")
    p.add_argument("--config", type=Path, default=QUICKSTART, help="crevnet: the config trained; peers: "
                   "its data: section and clip lengths")  # fmt: skip
    p.add_argument("--reference", type=Path, default=QUICKSTART, help="the MACs per clip to match")
    p.add_argument("--minutes", type=float, default=13.0, help="training wall-clock budget per run")
    p.add_argument("--lrs", type=_floats, default=None, help="comma-separated; each a run (default: recipe)")
    p.add_argument("--seeds", type=_ints, default=[0], help="comma-separated; each a run")
    p.add_argument("--batch", type=int, default=None, help="default: 16 (peers), the config's (crevnet)")
    p.add_argument("--threads", default="adaptive", help="'adaptive' (1 or 2, timed) or a count")
    p.add_argument("--max-steps", type=int, default=None, help="stop earlier after this many steps")
    p.add_argument("--num", type=int, default=500, help="surrogate test sequences scored")
    p.add_argument("--eval-batch", type=int, default=50)
    p.add_argument("--data-dir", default=None, help="MNIST data directory (default: crevnet's)")
    p.add_argument("--runs-dir", type=Path, default=REPO / "runs" / "peers", help="crevnet run folders")
    p.add_argument("--force", action="store_true", help="run even when the MACs differ by more than 10%%")
    p.add_argument("--size-only", action="store_true", help="print the sizing line and stop")
    p.add_argument("--simvp-hid-s", type=int, default=None)
    p.add_argument("--simvp-hid-t", type=int, default=None)
    p.add_argument("--simvp-model-type", default=SIMVP["model_type"])
    p.add_argument("--simvp-n-s", type=int, default=SIMVP["N_S"])
    p.add_argument("--simvp-n-t", type=int, default=SIMVP["N_T"])
    p.add_argument("--convlstm-hidden", type=int, default=None)
    p.add_argument("--convlstm-layers", type=int, default=CONVLSTM["layers"])
    p.add_argument("--convlstm-patch", type=int, default=CONVLSTM["patch"])
    p.add_argument("--convlstm-filter", type=int, default=CONVLSTM["filter"])
    p.add_argument("--sampling-stop", type=float, default=0.4, help="convlstm: eta is 0 from this progress")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="crevnet: change one config key for these runs (repeatable), e.g. "
        "model.net.encoder.coupling=affine; the derived config is written to --runs-dir",
    )
    p.add_argument("--run-one", default=None, help=argparse.SUPPRESS)
    return p


def _child_argv(argv: list[str], sized: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """This command line for one run in a fresh process (its own peak RSS), the widths fixed."""
    fixed: list[str] = []
    widths = sized["sizing"]
    if "hid_S" in widths:
        fixed = ["--simvp-hid-s", str(widths["hid_S"]), "--simvp-hid-t", str(widths["hid_T"])]
    elif "hidden" in widths:
        fixed = ["--convlstm-hidden", str(widths["hidden"])]
    return [sys.executable, str(Path(__file__).resolve()), *argv, *fixed, "--run-one", json.dumps(spec)]


def _without_sets(argv: list[str]) -> list[str]:
    """``argv`` less its ``--set``/``--config`` options (both spellings), for the derived config."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--set", "--config"):
            skip = True
        elif not a.startswith(("--set=", "--config=")):
            out.append(a)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    args = parser().parse_args(argv)
    if args.model != "crevnet" and args.peers is None:
        parser().error(f"--model {args.model} needs --peers FOLDER (OpenSTL, fetched outside the repository)")
    if args.set:
        if args.model != "crevnet":
            parser().error("--set changes a crevnet config; the peers are sized by their own flags")
        try:
            derived = derived_config(args.config, args.set, Path(args.runs_dir))
        except (ValueError, OSError) as err:
            parser().error(str(err))
        argv = [*_without_sets(argv), "--config", str(derived)]
        args.config, args.set = derived, []
    if args.run_one:
        spec = json.loads(args.run_one)
        print(json.dumps(run_one(args, spec)), flush=True)
        return 0
    sized = sizing(args)
    ratio = sized["mac_ratio"]
    print(
        f"peers: {args.model} {sized['sizing'] or args.config.name}: {sized['params']:,} parameters, "
        f"{sized['gmac_per_sample']} GMAC per {sized['frames']}-frame sample against "
        f"{sized['ref_gmac_per_sample']} ({args.reference.name}): ratio {ratio}",
        file=sys.stderr,
        flush=True,
    )
    if abs(ratio - 1.0) > TOLERANCE and not args.force:
        print(
            f"peers: refused: MACs per sample {ratio}x the reference's, outside ±{TOLERANCE:.0%} "
            "(set the widths by flag, or --force to run anyway)",
            file=sys.stderr,
        )
        return 2
    if args.size_only:
        return 0
    config = read_config(args.config)
    if args.lrs is None:
        model_cfg = (config.get("model") or {}).get("init_args", config.get("model") or {})
        args.lrs = [float(model_cfg.get("lr", 5e-4))] if args.model == "crevnet" else [RECIPE_LR[args.model]]
    batch = args.batch or (int((config.get("data") or {}).get("batch_size", 8)) if args.model == "crevnet"
                           else PEER_BATCH)  # fmt: skip
    base = [a for a in argv if a != "--force"]
    sitting = record.start(__file__, argv)
    failed = 0
    for seed in args.seeds:
        for lr in args.lrs:
            spec = {"lr": lr, "seed": seed, "batch": batch, "minutes": args.minutes}
            out = subprocess.run(_child_argv(base, sized, spec), capture_output=True, text=True)
            if out.returncode != 0:
                print(f"peers: run lr {lr} seed {seed} failed:\n{out.stderr[-3000:]}", file=sys.stderr)
                failed += 1
                sitting = sitting.again()
                continue
            result = json.loads(out.stdout.strip().splitlines()[-1])
            load_after = result.pop("load_after_training", None)
            row = {
                "model": args.model if args.model != "crevnet" else f"crevnet:{args.config.stem}",
                "config": str(args.config),
                **{k: sized[k] for k in SIZED},
                "lr": lr,
                "seed": seed,
                "batch": batch,
                "minutes": args.minutes,
                **result,
            }
            print(json.dumps(sitting.stamp(row, load_after=load_after)), flush=True)
            sitting = sitting.again()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
