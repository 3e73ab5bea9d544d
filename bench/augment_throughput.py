"""Batched tensor augmentation vs torchvision's PIL transforms in a 2-worker DataLoader.

Same augmentations (pad-4 random crop + horizontal flip, then normalisation), same images, same
batch size; prints images/second for each and their ratio, measured side by side in one run
(alternating, median of the repeats). Target: the batched path at least 10x the PIL path.

    python bench/augment_throughput.py [--images 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from datamodules.augment import augment


def images(n: int) -> torch.Tensor:
    try:
        from datamodules.catalog import load_cifar10

        return load_cifar10(download=False).train_x[:n]
    except Exception as e:  # no data here: random images of the same shape and dtype
        print(f"(CIFAR-10 not available: {e}; using random uint8 images)")
        return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)


MEAN, STD = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1), torch.tensor([0.247, 0.243, 0.261]).view(1, 3, 1, 1)


def batched(x: torch.Tensor, batch: int) -> float:
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        out = augment(x[i : i + batch], ("flip", "translate"), gen)
        out = (out - MEAN) / STD
    return len(x) / (time.perf_counter() - start)


class _PilSet(torch.utils.data.Dataset):
    def __init__(self, x):
        from PIL import Image
        from torchvision import transforms as T

        self.pil = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in x]
        self.tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                             T.Normalize(MEAN.flatten().tolist(), STD.flatten().tolist())])

    def __len__(self):
        return len(self.pil)

    def __getitem__(self, i):
        return self.tf(self.pil[i]), 0


def pil_loader(dataset, batch: int, workers: int) -> float:
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers,
                                         persistent_workers=False)
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
    x = images(args.images)
    dataset = _PilSet(x)
    fast, slow = [], []
    for _ in range(args.repeats):  # alternate, so drift in machine load hits both
        fast.append(batched(x, args.batch))
        slow.append(pil_loader(dataset, args.batch, args.workers))
    f, s = statistics.median(fast), statistics.median(slow)
    print(f"{'path':52s} {'images/s':>10s}")
    print(f"{'batched tensor ops (this suite), main process':52s} {f:10.0f}")
    print(f"{f'torchvision PIL transforms, DataLoader {args.workers} workers':52s} {s:10.0f}")
    print(f"ratio batched / PIL: {f / s:.1f}x  (target >= 10x; {torch.get_num_threads()} torch threads, "
          f"{args.images} images, batch {args.batch}, median of {args.repeats})")


if __name__ == "__main__":
    main()
