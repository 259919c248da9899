"""``EpochSampler``: a new block of dataset indices every epoch; ``ResumableLoader``: its position saved.

Lightning saves the ``state_dict`` of a training loader that has one (the ``_Stateful`` protocol) into
every checkpoint and hands it back to ``load_state_dict`` before iterating again. ``ResumableLoader``
uses that to make a resumed run see exactly the batches a straight run would have seen: the state is
the epoch and the number of samples the training loop has consumed in it, read from the trainer's loop
progress at save time (the loader's own iterator runs ahead of the loop because Lightning prefetches),
and on load the sampler starts that many samples into that epoch. Lightning counts the batches already
consumed when it resumes mid-epoch, so the epoch still ends after ``len(loader)`` batches.

With ``prefetch=N`` (and no worker processes) a background thread builds the next ``N`` batches while
the training step runs: the same ``DataLoader`` iterator, consumed in the same order by one thread, so
the batches are exactly the ones the loader yields without it (same indices, same tensors). The thread
is stopped when the iteration ends, fails, is abandoned, or the loader is closed (:meth:`close`).

The training loaders read their items as uint8 NumPy arrays (:class:`RawItems`, ``dataset.raw(i)``),
stack them with NumPy and turn the batch into float32 on the thread that asks for it
(``finish=unit_float``): the prefetch thread runs no torch op. A torch op on a second Python thread
starts a second OpenMP team beside the training step's; on a 2-core machine that team's spinning
workers took CPU from the step's two threads (measured on a 2-core AMD EPYC: a background thread
stacking one batch with ``torch.stack`` every 250 ms slowed the quickstart step from 0.25 s to
0.44-0.50 s; the same work in NumPy to 0.29 s).
"""

from __future__ import annotations

import queue
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = [
    "EpochSampler",
    "PrefetchIterator",
    "RawItems",
    "ResumableLoader",
    "TrainLoaders",
    "stack_raw",
    "unit_float",
]


class RawDataset(Protocol):
    """A dataset whose item ``i`` is also readable as uint8 NumPy (its float item is ``raw / 255``)."""

    def __len__(self) -> int: ...

    def raw(self, index: int) -> np.ndarray: ...


class RawItems(Dataset[np.ndarray]):
    """``dataset``'s items as uint8 arrays, ``dataset.raw(i)`` (T, C, H, W): no torch op in reading them.

    With :func:`stack_raw` as the loader's ``collate_fn`` and :func:`unit_float` as its ``finish``, a
    :class:`ResumableLoader` yields the batches a plain ``DataLoader`` over ``dataset`` yields (the same
    float32 values), with the torch work on the consumer's thread.
    """

    def __init__(self, dataset: RawDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.dataset.raw(int(index))


def stack_raw(items: list[np.ndarray]) -> np.ndarray:
    """A batch of :class:`RawItems` (the ``collate_fn``): ``np.stack``, uint8 (B, T, C, H, W)."""
    return np.stack(items)


def unit_float(batch: np.ndarray) -> torch.Tensor:
    """A uint8 batch as float32 in [0, 1] (``x / 255``, the datasets' own items' values)."""
    return torch.from_numpy(batch).to(torch.float32) / 255.0


class EpochSampler(Sampler[int]):
    """Yield indices ``epoch * size + i`` for ``i`` in ``range(size)``.

    With a generated dataset such as ``MovingMNIST`` (any non-negative index is a new sequence)
    this gives ``size`` never-seen sequences per epoch, all reproducible from (seed, epoch).
    Lightning calls ``set_epoch`` before every training epoch; the sampler runs in the main
    process, so it also works with persistent workers. With ``fixed=True`` the epoch is ignored
    and every epoch sees the same ``size`` sequences.

    Args:
        size: Indices per epoch.
        fixed: Ignore the epoch (always yield ``range(size)``).
    """

    def __init__(self, size: int, fixed: bool = False) -> None:
        if size < 0:
            raise ValueError(f"EpochSampler: size must be >= 0, got {size}")
        self.size = size
        self.fixed = fixed
        self.epoch = 0
        self.resume_at: tuple[int, int] | None = None  # (epoch, samples already consumed in it)

    def set_epoch(self, epoch: int) -> None:
        """Select the block of indices of ``epoch`` (called by Lightning)."""
        self.epoch = epoch

    def resume(self, epoch: int, consumed: int) -> None:
        """In ``epoch`` only, skip the first ``consumed`` indices (they were trained on before a restart)."""
        if epoch < 0 or consumed < 0:
            raise ValueError(f"EpochSampler.resume: need epoch, consumed >= 0, got {epoch}, {consumed}")
        self.resume_at = (epoch, consumed)

    def __iter__(self) -> Iterator[int]:
        start = 0 if self.fixed else self.epoch * self.size
        skip = 0
        if self.resume_at is not None and self.resume_at[0] == self.epoch:
            skip = min(self.resume_at[1], self.size)
        return iter(range(start + skip, start + self.size))

    def __len__(self) -> int:
        return self.size


_POLL_S = 0.05  # how often a blocked producer checks whether it was told to stop


def _produce(source: Iterator[Any], out: queue.Queue, stop: threading.Event) -> None:
    # The producer thread: items of ``source`` in order, then ("end", None); ("error", exc) if it fails.
    # It holds no reference to the PrefetchIterator, so an abandoned iterator is collected (and stops it).
    def put(message: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                out.put(message, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    try:
        for item in source:
            if not put(("item", item)):
                return
        put(("end", None))
    except BaseException as exc:  # handed to the consumer, raised there
        put(("error", exc))


class PrefetchIterator(Iterator[Any]):
    """Iterate ``source`` in a background thread, up to ``depth`` items ahead of the consumer.

    The items and their order are those of ``source`` (one thread consumes it). The thread starts at
    the first ``next``, not before, so ``source`` is first read when its first item is asked for, as
    without prefetching (Lightning restores a loader's resume point between ``iter`` and the first
    ``next``). An exception raised
    by ``source`` is raised by ``next`` (after the items before it). :meth:`close` (also called when
    the iteration ends, fails, or the iterator is garbage-collected) stops the thread; it never hangs
    on a full queue.

    Args:
        source: the iterator to run ahead (e.g. a ``DataLoader``'s).
        depth: items built ahead, >= 1.
    """

    def __init__(self, source: Iterator[Any], depth: int) -> None:
        if depth < 1:
            raise ValueError(f"PrefetchIterator: depth must be >= 1, got {depth}")
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(
            target=_produce, args=(source, self._queue, self._stop), name="crevnet-prefetch", daemon=True
        )
        self._finalizer = weakref.finalize(self, _stop_thread, self._stop, self._queue, self._thread)

    def __iter__(self) -> PrefetchIterator:
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        if self._thread.ident is None:  # the first item asked for: start reading ahead now
            self._thread.start()
        kind, value = self._queue.get()
        if kind == "item":
            return value
        self.close()
        if kind == "error":
            raise value
        raise StopIteration

    @property
    def alive(self) -> bool:
        """Whether the producer thread is still running."""
        return self._thread.is_alive()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the producer thread and wait for it (at most ``timeout`` seconds)."""
        self._done = True
        _stop_thread(self._stop, self._queue, self._thread, timeout)


class _Finished(Iterator[Any]):
    """``finish(batch)`` for each batch of ``source``, on the consumer's thread."""

    def __init__(self, source: Iterator[Any], finish: Callable[[Any], Any], pin: bool) -> None:
        self.source = source
        self.finish = finish
        self.pin = pin

    def __iter__(self) -> _Finished:
        return self

    def __next__(self) -> Any:
        batch = self.finish(next(self.source))
        return batch.pin_memory() if self.pin else batch

    @property
    def alive(self) -> bool:
        """Whether the source's producer thread is still running (False without one)."""
        return bool(getattr(self.source, "alive", False))


def _stop_thread(
    stop: threading.Event, items: queue.Queue, thread: threading.Thread, timeout: float = 10.0
) -> None:
    stop.set()
    while True:  # free the slots so that a producer blocked in put() sees the event at once
        try:
            items.get_nowait()
        except queue.Empty:
            break
    if thread.ident is not None and thread is not threading.current_thread():  # started
        thread.join(timeout)


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over an :class:`EpochSampler` whose position goes into Lightning checkpoints.

    Args:
        *args: as ``DataLoader``; ``sampler`` must be an :class:`EpochSampler`.
        position: returns ``(epoch, batches)``: the current epoch and how many batches of it the
            training loop has consumed (the data module reads them from its trainer).
        prefetch: batches built ahead in a background thread (0: none; ignored with worker processes,
            which already build batches ahead). The batches are the same either way.
        finish: applied to each batch on the thread that asks for it (e.g. :func:`unit_float` after
            :class:`RawItems` and :func:`stack_raw`); None: the batches as built. With ``pin_memory``
            the finished batch is pinned.
        **kwargs: as ``DataLoader``.
    """

    def __init__(
        self,
        *args: Any,
        position: Callable[[], tuple[int, int]],
        prefetch: int = 0,
        finish: Callable[[Any], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if prefetch < 0:
            raise ValueError(f"ResumableLoader: prefetch must be >= 0, got {prefetch}")
        self.position = position
        self.prefetch = prefetch
        self.finish = finish
        self._live: weakref.WeakSet[PrefetchIterator] = weakref.WeakSet()

    def __iter__(self) -> Iterator[Any]:
        # The DataLoader iterator (and so the sampler's indices: epoch and resume point) is made here,
        # on the calling thread; only its batches are built on the producer thread.
        source = super().__iter__()
        if self.prefetch > 0 and self.num_workers == 0:
            source = PrefetchIterator(source, self.prefetch)
            self._live.add(source)
        if self.finish is None:
            return source
        return _Finished(source, self.finish, pin=self.pin_memory and torch.cuda.is_available())

    def close(self) -> None:
        """Stop the prefetch threads of this loader's iterators (the data module's ``teardown``)."""
        for iterator in list(self._live):
            iterator.close()

    def state_dict(self) -> dict[str, int]:
        """``{"epoch", "samples"}``: the epoch and the samples consumed in it (per process)."""
        epoch, batches = self.position()
        return {"epoch": int(epoch), "samples": int(batches) * int(self.batch_size or 1)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Start the next iteration where the saved run stopped."""
        if not isinstance(self.sampler, EpochSampler):
            # e.g. Lightning's DistributedSamplerWrapper under DDP: the skipped indices would
            # shift every rank's share; the epoch restarts from its first batch instead.
            warnings.warn(
                "ResumableLoader: the sampler is not an EpochSampler "
                f"({type(self.sampler).__name__}); the resumed epoch starts from its first batch",
                stacklevel=2,
            )
            return
        self.sampler.resume(int(state["epoch"]), int(state["samples"]))


class TrainLoaders:
    """Mixin for a data module whose training loaders may run prefetch threads: they stop with ``fit``.

    A data module lists it before ``LightningDataModule`` and passes every training loader it makes
    through :meth:`track`; Lightning's ``teardown("fit")`` and ``on_exception`` hooks (the end of fit,
    or its failure) then close them, so no prefetch thread outlives the run.
    """

    def track(self, loader: ResumableLoader) -> ResumableLoader:
        """Remember ``loader`` for closing at the end of fit; returns it."""
        self.__dict__.setdefault("_train_loaders", []).append(loader)
        return loader

    def close_train_loaders(self) -> None:
        """Stop the prefetch threads of every tracked training loader."""
        loaders = self.__dict__.get("_train_loaders", [])
        while loaders:
            loaders.pop().close()

    def teardown(self, stage: str) -> None:
        """Stop the training loaders' prefetch threads (end of ``fit``)."""
        if stage == "fit":
            self.close_train_loaders()

    def on_exception(self, exception: BaseException) -> None:
        """Stop the prefetch threads when ``fit`` fails or is interrupted."""
        del exception
        self.close_train_loaders()
