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


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], generator=gen, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_translate(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Zero-pad by ``pad`` pixels and take a random crop of the original size (He et al.'s recipe)."""
    if pad == 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # [N, H, 1]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # [N, 1, W]
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # gather, back to NCHW


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
    if "flip" in names:
        x = random_flip(x, gen)
    if "translate" in names:
        x = random_translate(x, gen, pad)
    x = x.float().div_(255)
    if "rotate" in names:
        x = random_rotate(x, gen, degrees)
    if "noise" in names:
        x = gaussian_noise(x, gen, noise_std)
    return x
