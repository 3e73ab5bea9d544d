"""The suite's Lightning training loop vs a minimal hand-written PyTorch loop.

Same network (ResNet-8 by default), same batches (the ImageDataModule's, augmented the same way),
same optimizer and schedule, same precision. Prints training images/second for both and their ratio,
measured side by side in one run (alternating, median of the repeats; the first epoch of each loop is
a warm-up and is not timed). Targets: the suite at least 0.97x on a CPU, 0.9x on a GPU.

    python bench/loop_overhead.py [--depth 8] [--images 4096] [--epochs 3] [--repeats 3]
    python bench/loop_overhead.py --accelerator gpu --precision bf16-mixed --depth 56 --images 45000 --batch 128
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time

import lightning as L
import torch
import torch.nn.functional as F

from engine.config import apply_overrides
from engine.registry import get
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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Timer(L.Callback):
    """Training images and seconds, from the second epoch on (the first warms up kernels and caches)."""

    def __init__(self):
        self.seconds, self.images = 0.0, 0

    def on_train_epoch_start(self, trainer, pl_module):
        _sync(pl_module.device)
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch > 0:
            self.images += len(batch[1])

    def on_train_epoch_end(self, trainer, pl_module):
        _sync(pl_module.device)
        if trainer.current_epoch > 0:
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
            accelerator=args.accelerator,
            devices=1,
            precision=args.precision,
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
    device = torch.device("cuda" if args.accelerator == "gpu" else "cpu")
    for name in ("train", "val", "test", "train_eval"):  # resident on the device, as the suite keeps it
        setattr(dm, name, tuple(t.to(device) for t in getattr(dm, name)))
    dm.mean, dm.std = dm.mean.to(device), dm.std.to(device)
    net = module.net.to(device)
    bf16 = args.precision.startswith("bf16")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    opt = sgd_with_schedule(net.parameters(), cfg.optim, total_steps=cfg.train.max_epochs * len(dm.train_dataloader()))
    optimizer, scheduler = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
    loader = dm.train_dataloader()
    seconds, images = 0.0, 0
    net.train()
    for epoch in range(cfg.train.max_epochs):
        loader.epoch_fn = lambda: epoch  # noqa: B023
        dm._start_epoch(epoch)
        _sync(device)
        start = time.perf_counter()
        for x, y in loader:
            x = dm.transform(x, train=True)
            with autocast():
                loss = F.cross_entropy(net(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            images += len(y) if epoch > 0 else 0
        _sync(device)
        seconds += time.perf_counter() - start if epoch > 0 else 0.0
    return images / seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--images", type=int, default=4096)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3, help="per loop; the first is not timed")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--accelerator", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--precision", default="32-true", help="32-true or bf16-mixed")
    args = p.parse_args()
    if args.epochs < 2:
        p.error("--epochs must be >= 2 (the first is a warm-up)")
    if args.accelerator == "gpu" and not torch.cuda.is_available():
        print("error: --accelerator gpu: no GPU here", file=sys.stderr)
        sys.exit(2)
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
    where = torch.cuda.get_device_name() if args.accelerator == "gpu" else f"CPU, {torch.get_num_threads()} threads"
    target = 0.9 if args.accelerator == "gpu" else 0.97
    print(
        f"ratio suite / hand-written: {o / h:.3f}  (target >= {target}; ResNet-{args.depth}, {args.images} images, "
        f"batch {args.batch}, {args.epochs - 1} timed epochs, median of {args.repeats}, {args.precision}, {where})"
    )


if __name__ == "__main__":
    main()
