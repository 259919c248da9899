"""Regenerate the README's example pictures: a short CPU training run, then ``crevnet evaluate``.

    python docs/make_examples.py --minutes 7 --data-dir ../shared/data

Trains the quickstart-shaped 2-D CrevNet (``configs/quickstart.yaml``'s ``model.net``, lr 2e-3,
cosine schedule) for ``--minutes`` of wall time on fresh Moving MNIST sequences, saves the checkpoint,
evaluates it on the first ``--limit`` surrogate test sequences and writes
``docs/example_contact_sheet.png`` (two sequences: context | truth | prediction | error, stored as
8-bit grey) and ``docs/example_per_horizon.png``. The pictures in the repository came from a
7-minute run (438 steps of batch 8) on a busy 2-core CPU: far from converged, so the predictions fade.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent


def main() -> None:
    """Train, evaluate and copy the two pictures into ``--out-dir``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=7.0, help="training wall time")
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"), help="holds mnist/")
    parser.add_argument("--limit", type=int, default=200, help="surrogate test sequences evaluated")
    parser.add_argument("--out-dir", default=str(DOCS), help="where the example_*.png files go")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import lightning as L
    from PIL import Image

    from crevnet.commands.evaluate import main as evaluate_main
    from crevnet.data.datamodule import MovingMNISTDataModule
    from crevnet.nn.model import load_config
    from crevnet.train.module import CrevNetModule

    L.seed_everything(0)
    net = load_config(REPO / "configs" / "quickstart.yaml")
    module = CrevNetModule(net=net, lr=2e-3, context=10, schedule={"kind": "cosine", "warmup_steps": 50})
    data = MovingMNISTDataModule(
        data_dir=args.data_dir, batch_size=8, num_frames=20, train_size=1600, val_size=8, download=False
    )
    with tempfile.TemporaryDirectory() as tmp:
        trainer = L.Trainer(
            max_time={"minutes": args.minutes},
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            limit_val_batches=0,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=tmp,
        )
        trainer.fit(module, data)
        ckpt = Path(tmp) / "example.ckpt"
        trainer.save_checkpoint(ckpt)
        report = Path(tmp) / "report"
        argv = ["--ckpt", str(ckpt), "--test-set", "surrogate", "--limit", str(args.limit)]
        argv += ["--data-dir", args.data_dir, "--out", str(report), "--samples", "2", "--device", "cpu"]
        evaluate_main(argv)
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with Image.open(report / "contact_sheet.png") as sheet:
            sheet.convert("L").save(out / "example_contact_sheet.png", optimize=True)
        shutil.copyfile(report / "per_horizon.png", out / "example_per_horizon.png")
        print(
            f"{trainer.global_step} training steps; wrote example_contact_sheet.png and "
            f"example_per_horizon.png in {out}"
        )


if __name__ == "__main__":
    main()
