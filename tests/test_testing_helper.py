import pytest
import torch
from torch import nn

from crevnet.testing import assert_invertible, round_trip_errors


class Scale(nn.Module):
    def __init__(self, inverse_factor: float) -> None:
        super().__init__()
        self.inverse_factor = inverse_factor

    def forward(self, x):
        return 2 * x

    def inverse(self, y):
        return y * self.inverse_factor


def test_accepts_an_exact_inverse():
    assert_invertible(Scale(0.5), torch.randn(3, 4, dtype=torch.float64))
    assert round_trip_errors(Scale(0.5), torch.randn(3, 4, dtype=torch.float64)) == (0.0, 0.0)


def test_rejects_a_wrong_inverse_with_both_errors_in_the_message():
    with pytest.raises(AssertionError, match=r"f⁻¹\(f\(x\)\).*f\(f⁻¹\(y\)\)"):
        assert_invertible(Scale(0.5 + 1e-6), torch.randn(3, 4, dtype=torch.float64))


def test_default_tolerance_depends_on_dtype():
    x32 = torch.ones(3, 4)
    assert_invertible(Scale(0.5 + 1e-6), x32)  # 2e-6 error passes float32's 1e-4
    with pytest.raises(ValueError, match="pass atol"):
        assert_invertible(Scale(0.5), torch.ones(2, dtype=torch.float16))
