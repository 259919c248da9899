"""EpochSampler's resume point and ResumableLoader's saved position."""

import pytest
import torch
from torch.utils.data import DataLoader, SequentialSampler, TensorDataset

from crevnet.data import EpochSampler
from crevnet.data.sampler import PrefetchIterator, ResumableLoader


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


def _prefetch_threads() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name == "crevnet-prefetch"]


def test_prefetch_yields_the_loaders_batches_bit_for_bit_and_stops_its_thread():
    data = TensorDataset(torch.rand(40, 3, 5))
    plain = [
        b[0] for b in ResumableLoader(data, batch_size=4, sampler=EpochSampler(40), position=lambda: (0, 0))
    ]
    sampler = EpochSampler(40)
    sampler.set_epoch(0)
    loader = ResumableLoader(data, batch_size=4, sampler=sampler, position=lambda: (0, 0), prefetch=2)
    it = iter(loader)
    assert isinstance(it, PrefetchIterator)
    got = [b[0] for b in it]
    assert len(got) == len(plain) == 10
    assert all(torch.equal(a, b) for a, b in zip(plain, got, strict=True))
    assert not it.alive and not _prefetch_threads()  # the thread ended with the iteration
    # resumed mid-epoch: the same batches as the loader without prefetch
    loader.load_state_dict({"epoch": 0, "samples": 12})
    assert all(torch.equal(a, b[0]) for a, b in zip(plain[3:], loader, strict=True))


def test_prefetch_reads_nothing_before_the_first_batch_is_asked_for():
    # Lightning makes the iterator, then restores the resume point, then asks for batches: a thread
    # that started reading at iter() would have drawn the indices of the epoch's start.
    data = TensorDataset(torch.rand(40, 3, 5))
    plain = [
        b[0] for b in ResumableLoader(data, batch_size=4, sampler=EpochSampler(40), position=lambda: (0, 0))
    ]
    sampler = EpochSampler(40)
    sampler.set_epoch(0)
    loader = ResumableLoader(data, batch_size=4, sampler=sampler, position=lambda: (0, 0), prefetch=2)
    it = iter(loader)
    assert not it.alive and not _prefetch_threads()  # nothing started yet
    loader.load_state_dict({"epoch": 0, "samples": 12})
    assert all(torch.equal(a, b[0]) for a, b in zip(plain[3:], it, strict=True))
    it.close()
    never = iter(loader)
    never.close()  # closing an iterator that never started does not fail or wait
    assert not never.alive


def _counting_loader(size: int, **kwargs) -> ResumableLoader:
    return ResumableLoader(
        TensorDataset(torch.arange(size)), sampler=EpochSampler(size), position=lambda: (0, 0), **kwargs
    )


def test_prefetch_with_workers_is_the_plain_iterator():
    loader = _counting_loader(8, batch_size=2, prefetch=3, num_workers=1)
    assert not isinstance(iter(loader), PrefetchIterator)  # workers already build batches ahead
    with pytest.raises(ValueError, match="prefetch"):
        ResumableLoader(TensorDataset(torch.arange(8)), position=lambda: (0, 0), prefetch=-1)


class _Failing(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int) -> torch.Tensor:
        if index == 5:
            raise KeyError("bad clip")
        return torch.tensor(index)


def test_prefetch_raises_the_producers_error_after_the_batches_before_it():
    it = PrefetchIterator(iter(DataLoader(_Failing(), batch_size=2)), depth=2)
    assert next(it).tolist() == [0, 1] and next(it).tolist() == [2, 3]
    with pytest.raises(KeyError, match="bad clip"):
        next(it)
    assert not it.alive
    with pytest.raises(StopIteration):
        next(it)


def test_prefetch_stops_without_hanging_when_abandoned_or_closed_with_a_full_queue():
    import gc
    import time

    def endless():
        i = 0
        while True:
            yield i
            i += 1

    it = PrefetchIterator(endless(), depth=2)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    time.sleep(0.2)  # the producer fills the queue and blocks in put()
    start = time.monotonic()
    it.close()
    assert not it.alive and time.monotonic() - start < 2.0
    with pytest.raises(StopIteration):
        next(it)
    # an iterator dropped mid-way (e.g. the training step raised) stops its thread when collected
    abandoned = PrefetchIterator(endless(), depth=2)
    next(abandoned)
    thread = abandoned._thread
    del abandoned
    gc.collect()
    thread.join(2.0)
    assert not thread.is_alive()
    # the loader's close() stops the iterators it handed out
    loader = _counting_loader(100, batch_size=1, prefetch=1)
    live = iter(loader)
    next(live)
    loader.close()
    assert not live.alive
    with pytest.raises(ValueError, match="depth"):
        PrefetchIterator(iter([]), depth=0)
