"""Batched tensor augmentation vs torchvision's PIL transforms in a 2-worker DataLoader.

Same augmentations (pad-4 random crop + horizontal flip, then normalisation), same images, same
batch size; prints images/second for each and their ratio, measured side by side in one run
(alternating, median of the repeats). Target: the batched path at least 10x the PIL path.
Then the batched throughput of each augmentation alone (``augment`` with one name, uint8 in,
float out), on the CPU and, when there is one, on the GPU.

    python bench/augment_throughput.py [--images 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from datamodules import augment as aug
from datamodules.configs import AUGMENTATIONS
from datamodules.images import ImageDataConfig, ImageDataModule


def data_module(n: int) -> ImageDataModule:
    """The suite's CIFAR-10 data module, with He et al.'s augmentation (needs REPRO_DATA_DIR or a download)."""
    dm = ImageDataModule(
        ImageDataConfig(augment=("flip", "translate"), train_size=n, val_size=1000), seed=0, channels_last=True
    )
    dm.setup()
    return dm


def batched(dm: ImageDataModule, batch: int) -> float:
    """The exact path of a training batch: slice, flip + crop, to float, normalise (DataModule.transform)."""
    x = dm.train[0]
    dm._start_epoch(0)
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        dm.transform(x[i : i + batch], train=True)
    return len(x) / (time.perf_counter() - start)


def per_op(x: torch.Tensor, batch: int, repeats: int) -> dict[str, float]:
    """images/s of each augmentation alone on ``x``'s device, median of ``repeats`` passes over ``x``."""
    gen = torch.Generator(device=x.device).manual_seed(0)
    rates = {}
    for name in AUGMENTATIONS:
        aug.augment(x[:batch], (name,), gen)  # warm up (kernels, allocator)
        times = []
        for _ in range(repeats):
            if x.is_cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            for i in range(0, len(x), batch):
                aug.augment(x[i : i + batch], (name,), gen)
            if x.is_cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        rates[name] = len(x) / statistics.median(times)
    return rates


class _PilSet(torch.utils.data.Dataset):
    def __init__(self, x, mean, std):
        from PIL import Image
        from torchvision import transforms as T

        self.pil = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in x]
        self.tf = T.Compose(
            [
                T.RandomCrop(32, padding=4),
                T.RandomHorizontalFlip(),
                T.ToTensor(),
                T.Normalize(mean.flatten().tolist(), std.flatten().tolist()),
            ]
        )

    def __len__(self):
        return len(self.pil)

    def __getitem__(self, i):
        return self.tf(self.pil[i]), 0


def pil_loader(dataset, batch: int, workers: int) -> float:
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=False
    )
    start = time.perf_counter()
    n = sum(len(b[0]) for b in loader)
    return n / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=10000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    dm = data_module(args.images)
    dataset = _PilSet(dm.train[0], dm.mean, dm.std)
    fast, slow = [], []
    for _ in range(args.repeats):  # alternate, so drift in machine load hits both
        fast.append(batched(dm, args.batch))
        slow.append(pil_loader(dataset, args.batch, args.workers))
    f, s = statistics.median(fast), statistics.median(slow)
    print(f"{'path':52s} {'images/s':>10s}")
    print(f"{'batched tensor ops (this suite), main process':52s} {f:10.0f}")
    print(f"{f'torchvision PIL transforms, DataLoader {args.workers} workers':52s} {s:10.0f}")
    print(
        f"ratio batched / PIL: {f / s:.1f}x  (target >= 10x; {torch.get_num_threads()} torch threads, "
        f"{args.images} images, batch {args.batch}, median of {args.repeats})"
    )
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rates = {d.type: per_op(dm.train[0].to(d), args.batch, args.repeats) for d in devices}
    print(f"\none augmentation alone, batch {args.batch}, images/s")
    print(f"{'op':12s}" + "".join(f"{d.type:>14s}" for d in devices))
    for name in AUGMENTATIONS:
        print(f"{name:12s}" + "".join(f"{rates[d.type][name]:14.0f}" for d in devices))


if __name__ == "__main__":
    main()
