"""The generator reproduces the standard protocol's trivial-baseline figures (DESIGN section 5)."""

from crevnet.data import load_test_set
from crevnet.evaluation.baselines import copy_last_baseline, zeros_baseline
from crevnet.evaluation.metrics import frame_mse


def test_surrogate_baselines_match_the_published_figures(mnist_dir):
    # DESIGN: on the standard generator, 500 sequences: zeros MSE ≈ 172, copy-last ≈ 276 (sum per frame).
    ts = load_test_set("surrogate", data_dir=mnist_dir, num=500, download=False)
    assert ts.is_surrogate and "surrogate" in ts.name
    video = ts.videos.double() / 255.0
    context, target = video[:, :10], video[:, 10:]
    zeros = frame_mse(zeros_baseline(context, 10), target).mean().item()
    copy_last = frame_mse(copy_last_baseline(context, 10), target).mean().item()
    assert 165 < zeros < 180, zeros
    assert 265 < copy_last < 295, copy_last
    # zeros-baseline MSE is the mean energy of a target frame: an independent formula
    assert abs(zeros - target.square().sum(dim=(2, 3, 4)).mean().item()) < 1e-9
