"""The suite's Lightning training loop vs a minimal hand-written PyTorch loop.

Same network (ResNet-8 by default), same batches (the ImageDataModule's, augmented the same way),
same optimizer and schedule. Prints training images/second for both and their ratio, measured side
by side in one run (alternating, median of the repeats). Target: the suite at least 0.97x.

    python bench/loop_overhead.py [--depth 8] [--images 4096] [--epochs 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import lightning as L
import torch
import torch.nn.functional as F

from experiments import get
from experiments.spec import apply_overrides
from lightning_modules.optim import sgd_with_schedule


def config(args):
    cfg = get("augmentation").resolve("flip+translate", "quick")
    apply_overrides(
        cfg,
        {
            "model.depth": args.depth,
            "data.train_size": args.images,
            "data.batch_size": args.batch,
            "train.max_epochs": args.epochs,
        },
    )
    return cfg


class _Timer(L.Callback):
    def __init__(self):
        self.seconds, self.images = 0.0, 0

    def on_train_epoch_start(self, trainer, pl_module):
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.images += len(batch[1])

    def on_train_epoch_end(self, trainer, pl_module):
        self.seconds += time.perf_counter() - self._t


def suite(args) -> float:
    """The runner's Trainer setup, with validation switched off so both loops do the same work."""
    cfg = config(args)
    exp = get("augmentation")
    module, dm = exp.build(cfg, 0)
    timer = _Timer()
    with tempfile.TemporaryDirectory() as d:
        trainer = L.Trainer(
            max_epochs=cfg.train.max_epochs,
            accelerator="cpu",
            devices=1,
            logger=False,
            callbacks=[timer],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            use_distributed_sampler=False,
            default_root_dir=d,
        )
        trainer.fit(module, datamodule=dm)
    return timer.images / timer.seconds


def hand_written(args) -> float:
    """The same work as a plain loop: slice, augment, normalise, forward, backward, step."""
    cfg = config(args)
    torch.manual_seed(0)
    module, dm = get("augmentation").build(cfg, 0)
    dm.setup()
    net = module.net
    opt = sgd_with_schedule(net.parameters(), cfg.optim, total_steps=cfg.train.max_epochs * len(dm.train_dataloader()))
    optimizer, scheduler = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
    loader = dm.train_dataloader()
    seconds, images = 0.0, 0
    net.train()
    for epoch in range(cfg.train.max_epochs):
        loader.epoch_fn = lambda: epoch  # noqa: B023
        dm._start_epoch(epoch)
        start = time.perf_counter()
        for x, y in loader:
            x = dm.transform(x, train=True)
            loss = F.cross_entropy(net(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            images += len(y)
        seconds += time.perf_counter() - start
    return images / seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--images", type=int, default=4096)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    ours, plain = [], []
    for _ in range(args.repeats):
        plain.append(hand_written(args))
        ours.append(suite(args))
    print(
        "samples (images/s): hand-written "
        + " ".join(f"{v:.0f}" for v in plain)
        + " | suite "
        + " ".join(f"{v:.0f}" for v in ours)
    )
    o, h = statistics.median(ours), statistics.median(plain)
    print(f"{'loop':44s} {'train images/s':>14s}")
    print(f"{'minimal hand-written PyTorch loop':44s} {h:14.0f}")
    print(f"{'this suite (Lightning, torchmetrics, hooks)':44s} {o:14.0f}")
    print(
        f"ratio suite / hand-written: {o / h:.3f}  (target >= 0.97; ResNet-{args.depth}, {args.images} images, "
        f"batch {args.batch}, {args.epochs} epochs, median of {args.repeats}, {torch.get_num_threads()} threads)"
    )


if __name__ == "__main__":
    main()
