"""MovingMNISTDataModule: batches, splits, epochs, and parsing from YAML as LightningCLI does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from crevnet.data import CrevNetGenerator, StandardGenerator, load_mnist, load_test_set
from crevnet.data.datamodule import MovingMNISTDataModule


def _module(shared_data: Path, **kwargs) -> MovingMNISTDataModule:
    options = {"batch_size": 4, "train_size": 8, "val_size": 6, "test_size": 5, "download": False}
    return MovingMNISTDataModule(data_dir=str(shared_data), **{**options, **kwargs})


def test_batches_and_splits(shared_data: Path) -> None:
    module = _module(shared_data, num_frames=12)
    module.prepare_data()
    module.setup()
    batch = next(iter(module.train_dataloader()))
    assert batch.shape == (4, 12, 1, 64, 64) and batch.dtype == torch.float32
    assert float(batch.min()) >= 0.0 and float(batch.max()) <= 1.0 and float(batch.max()) > 0.5
    train = load_mnist("train", shared_data, download=False).images
    # Train digits: first 50,000 of the train split; val: the last 10,000; never test digits.
    np.testing.assert_array_equal(module.train_dataset.digits, train[:50000])
    np.testing.assert_array_equal(module.val_dataset.digits, train[50000:])
    # Every digit pasted in a train sequence is its train image (max overlay => crop >= digit).
    sequence, motion = module.train_dataset.sequence(3), module.train_dataset.motion(3)
    for d, index in enumerate(motion.digit_indices):
        y, x = motion.corners[d, 0]
        assert (sequence[0, y : y + 28, x : x + 28] >= train[:50000][index]).all()
    val = torch.cat(list(module.val_dataloader()))
    assert val.shape == (6, 12, 1, 64, 64)
    assert module.test_set_name == "surrogate test set (seed 1234, N=5)"
    test = torch.cat(list(module.test_dataloader()))
    expected = load_test_set("surrogate", shared_data, num=5, download=False).float_batches(5)
    torch.testing.assert_close(test, next(expected), rtol=0, atol=0)
    assert not torch.equal(val[:5, :12], test[:, :12])


def test_fresh_training_sequences_each_epoch(shared_data: Path) -> None:
    module = _module(shared_data)
    module.setup("fit")
    loader = module.train_dataloader()
    epoch0 = torch.cat(list(loader))
    loader.sampler.set_epoch(1)
    epoch1 = torch.cat(list(loader))
    loader.sampler.set_epoch(0)
    torch.testing.assert_close(torch.cat(list(loader)), epoch0, rtol=0, atol=0)  # reproducible
    assert epoch0.shape == epoch1.shape == (8, 20, 1, 64, 64)
    assert not any(torch.equal(a, b) for a in epoch0 for b in epoch1)
    fixed = _module(shared_data, fixed_train=True)
    fixed.setup("fit")
    fixed_loader = fixed.train_dataloader()
    fixed_loader.sampler.set_epoch(3)
    torch.testing.assert_close(torch.cat(list(fixed_loader)), epoch0, rtol=0, atol=0)


def test_parsed_from_yaml_like_lightning_cli() -> None:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(MovingMNISTDataModule, "data")
    config = parser.parse_string(
        "data:\n  batch_size: 3\n  test_size: null\n  generator:\n"
        "    class_path: crevnet.data.CrevNetGenerator\n    init_args:\n      max_speed: 2\n"
    )
    module = parser.instantiate(config).data
    assert module.batch_size == 3 and module.test_size is None
    assert module.generator == CrevNetGenerator(max_speed=2)
    assert MovingMNISTDataModule().generator == StandardGenerator()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="batch_size >= 1"):
        MovingMNISTDataModule(batch_size=0)
    with pytest.raises(ValueError, match=r"val_digits must be in 1\.\.59999"):
        MovingMNISTDataModule(val_digits=60000)


def test_prefetched_training_batches_are_the_same_bit_for_bit(shared_data: Path) -> None:
    import threading

    plain, ahead = (
        _module(shared_data, train_size=12),
        _module(shared_data, train_size=12, prefetch_batches=2),
    )
    plain.setup("fit"), ahead.setup("fit")
    loaders = plain.train_dataloader(), ahead.train_dataloader()
    for epoch in (0, 1):
        for loader in loaders:
            loader.sampler.set_epoch(epoch)
        expected, got = (list(loader) for loader in loaders)
        assert len(expected) == len(got) == 3
        assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))
    live = iter(loaders[1])
    next(live)
    ahead.teardown("fit")  # end of fit: the prefetch thread is stopped
    assert not live.alive
    assert not [t for t in threading.enumerate() if t.name == "crevnet-prefetch"]
    with pytest.raises(ValueError, match="prefetch_batches"):
        _module(shared_data, prefetch_batches=-1)


def test_training_batches_are_the_datasets_items_and_float_only_on_the_consumers_thread(
    shared_data: Path,
) -> None:
    import threading

    ahead = _module(shared_data, train_size=12, prefetch_batches=2)
    ahead.setup("fit")
    loader = ahead.train_dataloader()
    seen: list[tuple[str, type, np.dtype]] = []
    finish = loader.finish

    def spy(batch: np.ndarray) -> torch.Tensor:  # what crosses from the prefetch thread, and where
        seen.append((threading.current_thread().name, type(batch), batch.dtype))
        return finish(batch)

    loader.finish = spy
    loader.sampler.set_epoch(1)
    got = list(loader)
    # the batches are the dataset's own float items, stacked (what a plain DataLoader gave before)
    expected = [
        torch.stack([ahead.train_dataset[i] for i in range(12 + b * 4, 16 + b * 4)]) for b in range(3)
    ]
    assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))
    # the producer thread hands over uint8 NumPy; the torch work happens on this thread
    assert seen == [(threading.current_thread().name, np.ndarray, np.dtype(np.uint8))] * 3
