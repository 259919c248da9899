import math

import pytest
import torch
from torch import nn

from crevnet.testing import LogDetCheck, assert_invertible, assert_log_det, check_log_det, round_trip_errors


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


class Doubler(nn.Module):
    """y = 2x: log|det J| = n·log 2 per sample of n numbers."""

    def __init__(self, reported_factor: float = 1.0) -> None:
        super().__init__()
        self.reported_factor = reported_factor

    def forward(self, x):
        return 2 * x

    def inverse(self, y):
        return y / 2

    def log_abs_det_jacobian(self, x):
        return x[0].numel() * math.log(2) * self.reported_factor * x.new_ones(x.shape[0])


def test_check_log_det_reports_both_sides_and_both_round_trips():
    check = check_log_det(Doubler(), torch.rand(3, 2, 2, 2))
    assert isinstance(check, LogDetCheck)
    assert check.numerical == pytest.approx((8 * math.log(2),) * 3, abs=1e-12)
    assert check.log_det_error <= 1e-12 and check.sign == (1.0, 1.0, 1.0)
    assert check.inverse_error == check.forward_error == 0.0
    assert assert_log_det(Doubler(), torch.rand(2, 3)).reported == pytest.approx((3 * math.log(2),) * 2)


def test_assert_log_det_rejects_a_wrong_log_det_naming_both_values():
    with pytest.raises(AssertionError, match=r"reported .* numerical"):
        assert_log_det(Doubler(reported_factor=1.01), torch.rand(2, 3))


def test_check_log_det_wants_one_value_per_sample():
    class Scalar(Doubler):
        def log_abs_det_jacobian(self, x):
            return x.new_zeros(())

    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        check_log_det(Scalar(), torch.rand(2, 3))
