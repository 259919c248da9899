"""``MovingMNISTDataModule``: Moving MNIST for Lightning (the only data module importing lightning).

Splits (all from the genuine MNIST digits, never overlapping):

- **train**: ``train_size`` sequences per epoch generated on the fly from the first 50,000 digits
  of the MNIST *train* split (``stream`` 1 of ``sequence_rng``). By default every epoch gets fresh
  sequences (``EpochSampler``: epoch ``e`` uses indices ``e * train_size + i``), reproducible from
  ``seed``; ``fixed_train=True`` reuses the same ``train_size`` sequences every epoch.
- **val**: a fixed set of ``val_size`` sequences from the held-out last ``val_digits`` (10,000)
  digits of the train split (``stream`` 2), so validation never sees test digits and never
  equals the surrogate test set.
- **test**: ``load_test_set(test_set, ...)``: "surrogate" (MNIST *test* digits, seed ``test_seed``),
  "standard" (``mnist_test_seq.npy``) or a path to a (T, N, H, W) uint8 ``.npy``; the first
  ``test_size`` sequences (None = all). ``test_set_name`` says which one was used.

Batches are float32 (B, T, 1, H, W) in [0, 1]. With ``prefetch_batches=N`` (and ``num_workers=0``) the
training batches are built by a background thread up to N batches ahead of the training step: the same
batches in the same order (see :class:`~crevnet.data.sampler.ResumableLoader`), off the training thread.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset

from crevnet.data.dataset import MovingMNIST
from crevnet.data.fashion_mnist import ImageSetName, image_set
from crevnet.data.generator import MovingMNISTGenerator, StandardGenerator
from crevnet.data.mnist import ensure_mnist, load_mnist
from crevnet.data.sampler import EpochSampler, RawItems, ResumableLoader, TrainLoaders, stack_raw, unit_float
from crevnet.data.testset import SURROGATE_SEED, TestSet, load_test_set

__all__ = ["TRAIN_STREAM", "VAL_STREAM", "MovingMNISTDataModule"]

TRAIN_STREAM = 1
VAL_STREAM = 2


class MovingMNISTDataModule(TrainLoaders, L.LightningDataModule):
    """Moving MNIST train / val / test data (see the module docstring for the splits).

    Args:
        data_dir: Data directory (None: ``$CREVNET_DATA_DIR``, else the project's ``data/``).
        batch_size: Sequences per batch.
        num_workers: DataLoader worker processes (0 = generate in the main process).
        num_frames: Frames per generated sequence T.
        train_size: Training sequences per epoch.
        val_size: Validation sequences (fixed).
        test_set: "surrogate", "standard" or a path to a (T, N, H, W) uint8 ``.npy``.
        test_size: Use the first ``test_size`` test sequences (None = all).
        seed: Seed of the train and val sequences.
        test_seed: Seed of the surrogate test set.
        generator: Moving MNIST generator (default ``StandardGenerator()``), e.g.
            ``CrevNetGenerator()``; in YAML a ``class_path`` with ``init_args``.
        fixed_train: Reuse the same training sequences every epoch.
        val_digits: Train-split digits held out for validation (the last ones).
        download: Download MNIST if missing.
        pin_memory: Pin batches in page-locked memory (helps GPU transfers).
        images: "mnist", or "fashion_mnist" for Moving Fashion-MNIST (OpenSTL's ``mfmnist``: the
            same generator fed with Fashion-MNIST images, train/val/test split as for MNIST; its
            test set is the surrogate drawn from the Fashion-MNIST test images).
        prefetch_batches: training batches generated ahead in a background thread (0: generated on
            the training thread when Lightning asks; ignored when ``num_workers > 0``). The batches
            are identical either way, and so is a resumed run.

    Shape:
        batches: (B, T, 1, H, W) float32 in [0, 1].
    """

    def __init__(
        self,
        data_dir: str | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        num_frames: int = 20,
        train_size: int = 10000,
        val_size: int = 256,
        test_set: str = "surrogate",
        test_size: int | None = 500,
        seed: int = 0,
        test_seed: int = SURROGATE_SEED,
        generator: MovingMNISTGenerator | None = None,
        fixed_train: bool = False,
        val_digits: int = 10000,
        download: bool = True,
        pin_memory: bool = False,
        images: ImageSetName = "mnist",
        prefetch_batches: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1 or num_workers < 0 or num_frames < 1:
            raise ValueError(
                "MovingMNISTDataModule: need batch_size >= 1, num_workers >= 0, num_frames >= 1; "
                f"got {batch_size}, {num_workers}, {num_frames}"
            )
        if train_size < 1 or val_size < 1 or (test_size is not None and test_size < 1):
            raise ValueError(
                "MovingMNISTDataModule: train_size, val_size and test_size must be >= 1; got "
                f"{train_size}, {val_size}, {test_size}"
            )
        if prefetch_batches < 0:
            raise ValueError(f"MovingMNISTDataModule: prefetch_batches must be >= 0, got {prefetch_batches}")
        if not 0 < val_digits < 60000:
            raise ValueError(f"MovingMNISTDataModule: val_digits must be in 1..59999, got {val_digits}")
        self.save_hyperparameters(ignore=["generator"], logger=False)  # CrevNetModule logs them under data
        self.data_dir = data_dir
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.num_frames = num_frames
        self.train_size = train_size
        self.val_size = val_size
        self.test_set_spec = test_set
        self.test_size = test_size
        self.seed = seed
        self.test_seed = test_seed
        self.generator = StandardGenerator() if generator is None else generator
        self.fixed_train = fixed_train
        self.val_digits = val_digits
        self.download = download
        self.pin_memory = pin_memory
        self.images = images
        self.image_set = image_set(images)
        self.prefetch_batches = prefetch_batches
        self.train_dataset: MovingMNIST | None = None
        self.val_dataset: MovingMNIST | None = None
        self.test_data: TestSet | None = None

    def prepare_data(self) -> None:
        """Download the MNIST files if missing (once, on the main process)."""
        ensure_mnist(self.data_dir, download=self.download, images=self.image_set)

    def _train_digits(self) -> np.ndarray:
        return load_mnist("train", self.data_dir, download=self.download, images=self.image_set).images

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets the stage needs ("fit", "validate", "test" or None for all)."""
        if stage in (None, "fit"):
            digits = self._train_digits()
            self.train_dataset = MovingMNIST(
                digits[: len(digits) - self.val_digits],
                self.train_size,
                self.seed,
                self.num_frames,
                self.generator,
                stream=TRAIN_STREAM,
            )
        if stage in (None, "fit", "validate"):
            digits = self._train_digits()
            self.val_dataset = MovingMNIST(
                digits[len(digits) - self.val_digits :],
                self.val_size,
                self.seed,
                self.num_frames,
                self.generator,
                stream=VAL_STREAM,
            )
        if stage in (None, "test"):
            self.test_data = load_test_set(
                self.test_set_spec,
                self.data_dir,
                self.test_size,
                self.test_seed,
                download=self.download,
                images=self.images,
            )

    @property
    def test_set_name(self) -> str:
        """Name of the test set (for reports), available after ``setup("test")``."""
        if self.test_data is None:
            raise RuntimeError("MovingMNISTDataModule: call setup('test') first")
        return self.test_data.name

    def _loader_kwargs(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "shuffle": False,
            "num_workers": self.num_workers,
            "persistent_workers": self.num_workers > 0,
            "pin_memory": self.pin_memory,
        }

    def _loader(self, dataset: Dataset) -> DataLoader:
        return DataLoader(dataset, **self._loader_kwargs())

    def _train_position(self) -> tuple[int, int]:
        """(epoch, batches the training loop has consumed in it), from the trainer's loop progress."""
        trainer = self.trainer
        if trainer is None:
            return 0, 0
        loop = trainer.fit_loop
        return loop.epoch_progress.current.processed, loop.epoch_loop.batch_progress.current.ready

    def train_dataloader(self) -> DataLoader:
        """Fresh (or fixed) generated training sequences, ``train_size`` per epoch.

        The loader is a :class:`ResumableLoader`: a run resumed from a mid-epoch checkpoint continues
        with the batches a straight run would have seen next (single process; under DDP the resumed
        epoch restarts from its first batch).
        """
        if self.train_dataset is None:
            self.setup("fit")
        sampler = EpochSampler(self.train_size, fixed=self.fixed_train)
        loader = ResumableLoader(
            RawItems(self.train_dataset),  # uint8 off the training thread, float32 on it
            sampler=sampler,
            position=self._train_position,
            prefetch=self.prefetch_batches,
            collate_fn=stack_raw,
            finish=unit_float,
            **self._loader_kwargs(),
        )
        return self.track(loader)

    def val_dataloader(self) -> DataLoader:
        """The fixed validation sequences, in order."""
        if self.val_dataset is None:
            self.setup("validate")
        return self._loader(self.val_dataset)

    def test_dataloader(self) -> DataLoader:
        """The test set's sequences, in order, as float32."""
        if self.test_data is None:
            self.setup("test")
        return self._loader(self.test_data.dataset())
