import pytest
import torch
from torch import nn

from crevnet.nn.coupling import merge_halves, split_halves


def residual(c: int) -> nn.Module:
    # Deliberately non-invertible F: invertibility of a coupling must not depend on it.
    return nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.GroupNorm(1, c), nn.ReLU(), nn.Conv2d(c, c, 1))


def test_split_merge_round_trip_and_errors():
    x = torch.randn(2, 6, 3)
    assert torch.equal(merge_halves(*split_halves(x)), x)
    with pytest.raises(ValueError, match="even channel count"):
        split_halves(torch.zeros(2, 5, 3))
