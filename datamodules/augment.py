"""Batched data augmentation as tensor ops on whole batches, on the training device.

Every function takes a batch [N, C, H, W] and a ``torch.Generator`` on the batch's device, so a
run's augmentations are a pure function of (seed, epoch, rank): resuming from a checkpoint replays
exactly the same random crops and flips. Pixel-exact geometric ops (flips, crops) work on uint8, the
interpolating and photometric ones on floats in [0, 1]. Nothing here is ever applied to validation
or test batches (see ImageDataModule).

The lecture's list (slide 6): translation (``translate``), horizontal/vertical flips (``flip``,
``vflip``), rotation (``rotate``), smooth warping (``elastic``), noise (``noise``: Gaussian;
``pixelflip``: inverted random pixels, the slide's own example).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from datamodules.configs import AUGMENTATIONS, ELASTIC_ALPHA, ELASTIC_SIGMA, PIXEL_FLIP_PROB


def flip_and_crop(x: torch.Tensor, gen: torch.Generator, flip: bool, pad: int, vflip: bool = False) -> torch.Tensor:
    """Random horizontal and/or vertical flips (probability 1/2 each, independently) and/or random crops
    of the ``pad``-padded image, as one gather: a flipped crop is the same window read right to left
    (or bottom to top), so all of them become one index per pixel.
    Works on uint8 [N, C, H, W]; returns the same shape in channels-last memory (what the convs want).
    Draws, in this order and only for what is asked: left-right choices, upside-down choices, row
    offsets, column offsets."""
    n, c, h, w = x.shape
    mirror = torch.rand(n, generator=gen, device=x.device) < 0.5 if flip else None
    upside_down = torch.rand(n, generator=gen, device=x.device) < 0.5 if vflip else None
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
    rows = torch.arange(h, device=x.device).expand(n, h)
    if upside_down is not None:
        rows = torch.where(upside_down[:, None], rows.flip(1), rows)
    rows = dy[:, None] + rows  # [N, H]
    start = torch.arange(n, device=x.device)[:, None, None] * hp
    index = (start + rows[:, :, None]) * wp + cols[:, None, :]  # [N, H, W] into the flattened pixels
    out = pixels.view(n * hp * wp, c).index_select(0, index.flatten())
    return out.view(n, h, w, c).permute(0, 3, 1, 2)


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    return flip_and_crop(x, gen, flip=True, pad=0)


def random_vflip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Turn each image upside down (mirror top-bottom) with probability 1/2."""
    return flip_and_crop(x, gen, flip=False, pad=0, vflip=True)


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


def elastic_displacement(
    n: int, h: int, w: int, gen: torch.Generator, alpha: float, sigma: float, device, dtype=torch.float32
) -> torch.Tensor:
    """Simard et al.'s random smooth displacement fields, in pixels: [N, 2, H, W] (dx, then dy).

    Uniform [-1, 1) noise per pixel, smoothed by a normalised Gaussian of std ``sigma`` (separable,
    truncated at 3 sigma), times ``alpha``. The noise is drawn on a margin of the kernel's radius
    around the image and smoothed without padding, so every pixel, the border ones included, gets a
    field of the same statistics (zero padding would damp the warp near the edges)."""
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    size = (2 * n, 1, h + 2 * radius, w + 2 * radius)
    raw = torch.rand(size, generator=gen, device=device, dtype=dtype).mul_(2).sub_(1)
    smooth = F.conv2d(F.conv2d(raw, kernel.view(1, 1, -1, 1)), kernel.view(1, 1, 1, -1))
    return smooth.view(n, 2, h, w).mul_(alpha)


def elastic_warp(
    x: torch.Tensor, gen: torch.Generator, alpha: float = ELASTIC_ALPHA, sigma: float = ELASTIC_SIGMA
) -> torch.Tensor:
    """Elastic distortion (Simard, Steinkraus & Platt 2003): move each pixel of each float image by its
    own random smooth displacement field (``elastic_displacement``), bilinear, zero fill."""
    n, _, h, w = x.shape
    field = elastic_displacement(n, h, w, gen, alpha, sigma, x.device, x.dtype)
    # pixel centres in grid_sample's [-1, 1] coordinates (align_corners=False): (2 i + 1) / size - 1
    cols = (2 * torch.arange(w, device=x.device, dtype=x.dtype) + 1) / w - 1
    rows = (2 * torch.arange(h, device=x.device, dtype=x.dtype) + 1) / h - 1
    grid = torch.stack([cols + field[:, 0] * (2 / w), rows[:, None] + field[:, 1] * (2 / h)], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_pixel_flip(x: torch.Tensor, gen: torch.Generator, prob: float = PIXEL_FLIP_PROB) -> torch.Tensor:
    """Invert each pixel (all its channels together) with probability ``prob``: v -> 1 - v on floats in
    [0, 1], v -> 255 - v on uint8."""
    n, _, h, w = x.shape
    chosen = torch.rand((n, 1, h, w), generator=gen, device=x.device) < prob
    top = 1.0 if x.is_floating_point() else 255
    return torch.where(chosen, top - x, x)


def augment(
    x: torch.Tensor,
    names: tuple[str, ...],
    gen: torch.Generator,
    pad: int = 4,
    degrees: float = 15.0,
    noise_std: float = 0.1,
    *,
    elastic_alpha: float = ELASTIC_ALPHA,
    elastic_sigma: float = ELASTIC_SIGMA,
    pixel_flip_prob: float = PIXEL_FLIP_PROB,
) -> torch.Tensor:
    """uint8 batch -> augmented float batch in [0, 1], applying ``names`` in the order of ``AUGMENTATIONS``."""
    unknown = set(names) - set(AUGMENTATIONS)
    if unknown:
        raise ValueError(f"unknown augmentation(s) {sorted(unknown)}; known: {', '.join(AUGMENTATIONS)}")
    if "flip" in names or "vflip" in names or ("translate" in names and pad):
        x = flip_and_crop(x, gen, flip="flip" in names, pad=pad if "translate" in names else 0, vflip="vflip" in names)
    x = x.float().div_(255)
    if "elastic" in names:
        x = elastic_warp(x, gen, elastic_alpha, elastic_sigma)
    if "rotate" in names:
        x = random_rotate(x, gen, degrees)
    if "pixelflip" in names:
        x = random_pixel_flip(x, gen, pixel_flip_prob)
    if "noise" in names:
        x = gaussian_noise(x, gen, noise_std)
    return x
