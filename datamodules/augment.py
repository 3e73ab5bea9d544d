"""Batched data augmentation as tensor ops on whole batches, on the training device.

Every function takes a batch [N, C, H, W] and a ``torch.Generator`` on the batch's device, so a
run's augmentations are a pure function of (seed, epoch, rank): resuming from a checkpoint replays
exactly the same random crops and flips. Geometric ops work on uint8, photometric ones on floats
in [0, 1]. Nothing here is ever applied to validation or test batches (see ImageDataModule).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Order in which a pipeline applies them: geometry on uint8 first, then float ops.
GEOMETRIC = ("flip", "translate")
PHOTOMETRIC = ("rotate", "noise")
NAMES = GEOMETRIC + PHOTOMETRIC


def flip_and_crop(x: torch.Tensor, gen: torch.Generator, flip: bool, pad: int) -> torch.Tensor:
    """Random horizontal flips (probability 1/2) and/or random crops of the ``pad``-padded image, as one
    gather: a flipped crop is the same window read right to left, so both become one index per pixel.
    Works on uint8 [N, C, H, W]; returns the same shape in channels-last memory (what the convs want)."""
    n, c, h, w = x.shape
    mirror = torch.rand(n, generator=gen, device=x.device) < 0.5 if flip else None
    if pad:
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=x.device)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=x.device)
    else:
        dy = dx = torch.zeros(n, dtype=torch.long, device=x.device)
    pixels = F.pad(x.permute(0, 2, 3, 1), (0, 0, pad, pad, pad, pad)).contiguous()  # [N, H+2p, W+2p, C]
    hp, wp = h + 2 * pad, w + 2 * pad
    cols = torch.arange(w, device=x.device).expand(n, w)
    if mirror is not None:
        cols = torch.where(mirror[:, None], cols.flip(1), cols)
    cols = dx[:, None] + cols  # [N, W]
    rows = dy[:, None] + torch.arange(h, device=x.device)  # [N, H]
    start = torch.arange(n, device=x.device)[:, None, None] * hp
    index = (start + rows[:, :, None]) * wp + cols[:, None, :]  # [N, H, W] into the flattened pixels
    out = pixels.view(n * hp * wp, c).index_select(0, index.flatten())
    return out.view(n, h, w, c).permute(0, 3, 1, 2)


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    return flip_and_crop(x, gen, flip=True, pad=0)


def random_translate(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Zero-pad by ``pad`` pixels and take a random crop of the original size (He et al.'s recipe)."""
    return flip_and_crop(x, gen, flip=False, pad=pad) if pad else x


def random_rotate(x: torch.Tensor, gen: torch.Generator, degrees: float = 15.0) -> torch.Tensor:
    """Rotate each float image by an angle uniform in [-degrees, degrees] (bilinear, zero fill)."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=gen, device=x.device) * 2 - 1) * math.radians(degrees)
    cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def gaussian_noise(x: torch.Tensor, gen: torch.Generator, std: float = 0.1) -> torch.Tensor:
    """Add N(0, std^2) pixel noise to float images in [0, 1], clamped back to [0, 1]."""
    noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    return (x + std * noise).clamp_(0, 1)


def augment(
    x: torch.Tensor,
    names: tuple[str, ...],
    gen: torch.Generator,
    pad: int = 4,
    degrees: float = 15.0,
    noise_std: float = 0.1,
) -> torch.Tensor:
    """uint8 batch -> augmented float batch in [0, 1], applying ``names`` in a fixed order."""
    unknown = set(names) - set(NAMES)
    if unknown:
        raise ValueError(f"unknown augmentation(s) {sorted(unknown)}; known: {', '.join(NAMES)}")
    if "flip" in names or ("translate" in names and pad):
        x = flip_and_crop(x, gen, flip="flip" in names, pad=pad if "translate" in names else 0)
    x = x.float().div_(255)
    if "rotate" in names:
        x = random_rotate(x, gen, degrees)
    if "noise" in names:
        x = gaussian_noise(x, gen, noise_std)
    return x
