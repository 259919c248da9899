"""EpochSampler's resume point and ResumableLoader's saved position."""

import pytest
import torch
from torch.utils.data import DataLoader, SequentialSampler, TensorDataset

from crevnet.data import EpochSampler
from crevnet.data.sampler import ResumableLoader


def test_epoch_blocks_and_resume_point():
    sampler = EpochSampler(5)
    sampler.set_epoch(2)
    assert list(sampler) == [10, 11, 12, 13, 14]
    sampler.resume(2, 3)
    assert list(sampler) == [13, 14] and len(sampler) == 5  # the epoch keeps its length
    sampler.set_epoch(3)
    assert list(sampler) == [15, 16, 17, 18, 19]  # only the resumed epoch is shortened
    sampler.resume(3, 99)
    assert list(sampler) == []  # everything of that epoch was consumed
    fixed = EpochSampler(4, fixed=True)
    fixed.set_epoch(7)
    fixed.resume(7, 1)
    assert list(fixed) == [1, 2, 3]
    with pytest.raises(ValueError, match="consumed"):
        sampler.resume(0, -1)


def _loader(position, sampler=None):
    data = TensorDataset(torch.arange(100))
    return ResumableLoader(data, batch_size=4, sampler=sampler or EpochSampler(12), position=position)


def test_loader_state_is_the_trainers_position_not_its_own_iterator():
    loader = _loader(lambda: (3, 2))
    it = iter(loader)
    next(it), next(it), next(it)  # the loader ran ahead (prefetching): the state ignores that
    assert loader.state_dict() == {"epoch": 3, "samples": 8}
    fresh = _loader(lambda: (0, 0))
    fresh.load_state_dict(loader.state_dict())
    fresh.sampler.set_epoch(3)  # Lightning sets the restored epoch before iterating
    assert [b[0].tolist() for b in fresh] == [[44, 45, 46, 47]]  # 36 + 8 onwards: the last batch


def test_loader_with_another_sampler_warns_and_restarts_the_epoch():
    loader = _loader(lambda: (0, 0), sampler=SequentialSampler(range(12)))
    with pytest.warns(UserWarning, match="not an EpochSampler"):
        loader.load_state_dict({"epoch": 0, "samples": 8})
    assert len(list(loader)) == 3
    assert isinstance(loader, DataLoader)
