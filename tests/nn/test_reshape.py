import pytest
import torch
import torch.nn.functional as F

from crevnet.nn.reshape import depth_to_space, space_to_depth


def test_index_map_2d_is_pinned():
    # Output channel c*4 + dy*2 + dx holds input pixel (c, 2i+dy, 2j+dx): checked element by element.
    b, c, h, w = 2, 3, 4, 6
    x = torch.arange(b * c * h * w, dtype=torch.float64).reshape(b, c, h, w)
    y = space_to_depth(x)
    assert y.shape == (b, 4 * c, h // 2, w // 2)
    for n in range(b):
        for ch in range(c):
            for dy in range(2):
                for dx in range(2):
                    for i in range(h // 2):
                        for j in range(w // 2):
                            assert y[n, ch * 4 + dy * 2 + dx, i, j] == x[n, ch, 2 * i + dy, 2 * j + dx]


def test_matches_pixel_unshuffle_order():
    x = torch.randn(2, 5, 8, 4)
    torch.testing.assert_close(space_to_depth(x), F.pixel_unshuffle(x, 2), rtol=0, atol=0)


def test_3d_acts_per_time_slice():
    x = torch.randn(2, 3, 4, 8, 6)  # (B, C, T, H, W)
    y = space_to_depth(x)
    assert y.shape == (2, 12, 4, 4, 3)
    for t in range(4):
        torch.testing.assert_close(y[:, :, t], F.pixel_unshuffle(x[:, :, t], 2), rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(2, 3, 8, 6), (2, 1, 3, 8, 8)])
def test_exact_inverse(shape):
    x = torch.randn(shape)
    assert torch.equal(depth_to_space(space_to_depth(x)), x)
    y = space_to_depth(x)
    assert torch.equal(space_to_depth(depth_to_space(y)), y)


def test_single_channel_split_puts_even_rows_first():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    first_half = space_to_depth(x)[:, :2]
    assert torch.equal(first_half[0, 0], x[0, 0, 0::2, 0::2])
    assert torch.equal(first_half[0, 1], x[0, 0, 0::2, 1::2])


@pytest.mark.parametrize("shape", [(1, 1, 5, 4), (1, 1, 4, 7), (1, 2, 3, 6, 5)])
def test_odd_sizes_raise_clear_error(shape):
    with pytest.raises(ValueError, match="multiples of 2"):
        space_to_depth(torch.zeros(shape))


def test_rank_and_channel_errors():
    with pytest.raises(ValueError, match=r"\(B, C, \[T,\] H, W\)"):
        space_to_depth(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="divisible by 4"):
        depth_to_space(torch.zeros(1, 6, 2, 2))
