"""Reversibility and memory of the bijective encoder: prints one JSON object per configuration.

    python benchmarks/reversibility.py [--threads 2] [--batch 8] [--steps 20]

For each encoder configuration (the paper's 3-D Moving MNIST encoder, a 2-D encoder, and 2× deeper
versions of both) it measures:

* ``max_abs_err_fp32`` / ``max_abs_err_fp64``: max |x − E⁻¹(E(x))| on inputs in [0, 1], the worse of
  the weights at initialisation and after ``--steps`` Adam steps (lr 1e-3) on a training objective;
* ``saved_bytes_plain`` / ``saved_bytes_memsave``: bytes autograd saves for backward through
  encode → decode at ``--batch`` (each storage once), and their ratio;
* ``grad_max_rel_diff``: max over parameter tensors of max|g_memsave − g_plain| / max|g_plain| in
  float64 (the algorithmic difference); ``grad_max_rel_diff_fp32`` the same in float32, next to
  ``grad_fp32_noise``, the same measure between plain float32 and plain float64 gradients (the
  round-off floor that any float32 comparison sits on); ``grad_max_rel_diff_fp32_global``: the
  float32 difference relative to the model's largest gradient (what the float32 test bounds by 1e-4);
* ``peak_rss_mb_plain`` / ``peak_rss_mb_memsave``: peak resident memory of a fresh process that runs
  one forward + backward at ``--rss-batch`` (default 64: at batch 8 the activations are a few MB,
  lost in the allocator's noise) in that mode, and ``rss_before_mb``, its resident memory
  just before the forward (the torch runtime, the weights and the input).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from crevnet.nn import Encoder, EncoderConfig, SavedTensorCounter

try:
    import record
except ImportError:  # loaded by file path (the tests): benchmarks/ holds the one record helper
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import record

CONFIGS: dict[str, EncoderConfig] = {
    "paper3d": EncoderConfig(),
    "paper3d_deep2x": EncoderConfig(stages=(8, 10, 6)),
    "enc2d": EncoderConfig(dims=2),
    "enc2d_deep2x": EncoderConfig(dims=2, stages=(8, 10, 6)),
}


def make_input(cfg: EncoderConfig, batch: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """Inputs in [0, 1]: (B, C, 3, 64, 64) for 3-D encoders, (B, C, 64, 64) for 2-D."""
    g = torch.Generator().manual_seed(seed)
    shape = (batch, cfg.in_channels, 3, 64, 64) if cfg.dims == 3 else (batch, cfg.in_channels, 64, 64)
    return torch.rand(shape, generator=g, dtype=dtype)


def objective(enc: Encoder, x: torch.Tensor, memory_saving: bool = False) -> torch.Tensor:
    """A training objective that moves every weight: shrink one latent half, decode, match a shift."""
    z = enc(x, memory_saving=memory_saving)
    c = z.shape[1] // 2
    y = enc.inverse(torch.cat((z[:, :c], 0.9 * z[:, c:]), dim=1), memory_saving=memory_saving)
    return (y - x.roll(1, dims=-1)).square().mean() + z[:, :c].square().mean()


def round_trip(enc: Encoder, x: torch.Tensor) -> float:
    with torch.no_grad():
        return (enc.inverse(enc(x)) - x).abs().max().item()


def worst_round_trip(cfg: EncoderConfig, dtype: torch.dtype, steps: int) -> float:
    torch.manual_seed(0)
    enc = Encoder(cfg).to(dtype)
    x = make_input(cfg, 4, dtype, seed=1)
    worst = round_trip(enc, x)
    opt = torch.optim.Adam(enc.parameters(), lr=1e-3)
    for i in range(steps):
        opt.zero_grad()
        objective(enc, make_input(cfg, 4, dtype, seed=100 + i)).backward()
        opt.step()
    return max(worst, round_trip(enc, x))


def gradients(enc: Encoder, x: torch.Tensor, memory_saving: bool) -> dict[str, torch.Tensor]:
    enc.zero_grad()
    objective(enc, x, memory_saving).backward()
    return {n: p.grad.detach().double().clone() for n, p in enc.named_parameters()}


def max_rel(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(((a[n] - b[n]).abs().max() / b[n].abs().max()).item() for n in b)


def max_rel_global(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """max|a − b| over all parameters, relative to the largest gradient of the model."""
    scale = max(g.abs().max().item() for g in b.values())
    return max((a[n] - b[n]).abs().max().item() for n in b) / scale


def saved_bytes(cfg: EncoderConfig, batch: int, memory_saving: bool) -> int:
    torch.manual_seed(0)
    enc = Encoder(cfg)
    x = make_input(cfg, batch, torch.float32)
    with SavedTensorCounter() as counter:
        loss = objective(enc, x, memory_saving)
    loss.backward()
    return counter.bytes


def child_peak_rss(name: str, batch: int, memory_saving: bool, threads: int) -> tuple[float, float]:
    """Peak RSS (MB) of a fresh process doing one forward + backward, and its RSS just before.

    Read from /proc (VmHWM), which starts afresh at exec; ``ru_maxrss`` would carry the parent's peak.
    """
    code = (
        "import torch, sys; sys.path.insert(0, 'benchmarks');"
        f"torch.set_num_threads({threads});"
        "import reversibility as r;"
        f"cfg = r.CONFIGS[{name!r}];"
        "enc = r.Encoder(cfg); x = r.make_input(cfg, "
        f"{batch}, torch.float32);"
        "before = r.proc_status_mb('VmRSS');"
        f"r.objective(enc, x, {memory_saving}).backward();"
        "print(before, r.proc_status_mb('VmHWM'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, peak = out.stdout.strip().splitlines()[-1].split()
    return float(before), float(peak)


def proc_status_mb(key: str) -> float:
    """A memory figure of this process from /proc/self/status, in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{key} not found in /proc/self/status")


def measure(
    name: str, cfg: EncoderConfig, batch: int, steps: int, threads: int, rss_batch: int
) -> dict[str, object]:
    torch.manual_seed(0)
    enc64 = Encoder(cfg).double()
    x64 = make_input(cfg, 2, torch.float64, seed=2)
    ref = gradients(enc64, x64, False)
    mem64 = gradients(enc64, x64, True)
    enc32 = enc64.float()
    x32 = x64.float()
    plain32 = gradients(enc32, x32, False)
    mem32 = gradients(enc32, x32, True)
    plain = saved_bytes(cfg, batch, False)
    memsave = saved_bytes(cfg, batch, True)
    rss_plain = child_peak_rss(name, rss_batch, False, threads)
    rss_memsave = child_peak_rss(name, rss_batch, True, threads)
    return {
        "config": name,
        "params": sum(p.numel() for p in enc64.parameters()),
        "input": list(make_input(cfg, batch, torch.float32).shape),
        "max_abs_err_fp32": worst_round_trip(cfg, torch.float32, steps),
        "max_abs_err_fp64": worst_round_trip(cfg, torch.float64, steps),
        "saved_bytes_plain": plain,
        "saved_bytes_memsave": memsave,
        "saved_ratio": memsave / plain,
        "grad_max_rel_diff": max_rel(mem64, ref),
        "grad_max_rel_diff_fp32": max_rel(mem32, plain32),
        "grad_fp32_noise": max_rel(plain32, ref),
        "grad_max_rel_diff_fp32_global": max_rel_global(mem32, plain32),
        "rss_batch": rss_batch,
        "rss_before_mb": rss_plain[0],
        "peak_rss_mb_plain": rss_plain[1],
        "peak_rss_mb_memsave": rss_memsave[1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps before the 2nd check")
    parser.add_argument("--rss-batch", type=int, default=64, help="batch of the peak-RSS runs")
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.configs:
        sitting = record.start(__file__)
        row = measure(name, CONFIGS[name], args.batch, args.steps, args.threads, args.rss_batch)
        print(json.dumps(sitting.stamp(row)), flush=True)


if __name__ == "__main__":
    main()
