import pytest
import torch
from torch import nn

from crevnet.nn.coupling import AdditiveCoupling, RevNetCoupling, merge_halves, split_halves
from crevnet.testing import assert_invertible


def residual(c: int) -> nn.Module:
    # Deliberately non-invertible F: invertibility of a coupling must not depend on it.
    return nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.GroupNorm(1, c), nn.ReLU(), nn.Conv2d(c, c, 1))


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_additive_coupling_formula_and_inverse(dtype, atol):
    torch.manual_seed(0)
    f = residual(3).to(dtype)
    layer = AdditiveCoupling(f)
    x = torch.randn(2, 6, 8, 8, dtype=dtype)
    y = layer(x)
    x1, x2 = x[:, :3], x[:, 3:]
    torch.testing.assert_close(y[:, :3], x1 + f(x2))
    assert torch.equal(y[:, 3:], x2)
    assert_invertible(layer, x, atol=atol)


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_revnet_coupling_formula_and_inverse(dtype, atol):
    torch.manual_seed(0)
    f, g = residual(2).to(dtype), residual(2).to(dtype)
    layer = RevNetCoupling(f, g)
    x = torch.randn(3, 4, 6, 6, dtype=dtype)
    y = layer(x)
    y1 = x[:, :2] + f(x[:, 2:])
    torch.testing.assert_close(y[:, :2], y1)
    torch.testing.assert_close(y[:, 2:], x[:, 2:] + g(y1))
    assert_invertible(layer, x, atol=atol)


def test_split_merge_round_trip_and_errors():
    x = torch.randn(2, 6, 3)
    assert torch.equal(merge_halves(*split_halves(x)), x)
    with pytest.raises(ValueError, match="even channel count"):
        split_halves(torch.zeros(2, 5, 3))
