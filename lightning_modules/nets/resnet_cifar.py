"""The CIFAR ResNets of He et al. 2015 (section 4.2): 6n+2 layers, option-A shortcuts.

A 3x3 conv, three stages of n basic blocks on 32/16/8-pixel maps with 16/32/64 filters (stride-2
downsampling at each new stage), global average pooling, a linear classifier. Option A: the
shortcut is the identity, subsampled and zero-padded in channels where the shape changes, so a
ResNet and its plain twin (``residual=False``) have exactly the same parameters.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lightning_modules.configs import ResNetConfig


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN, plus the (option A) identity shortcut, then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int, residual: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride, self.extra_channels, self.residual = stride, planes - in_planes, residual

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels:  # zero channels split before and after, as in the paper's option A
            half = self.extra_channels // 2
            x = F.pad(x, (0, 0, 0, 0, half, self.extra_channels - half))
        return x

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        if self.residual:
            out = out + self.shortcut(x)
        return F.relu(out)


class ResNetCifar(nn.Module):
    def __init__(self, cfg: ResNetConfig, in_channels: int = 3, num_classes: int = 10):
        super().__init__()
        cfg.validate()
        n, w = (cfg.depth - 2) // 6, cfg.width
        self.stem = nn.Sequential(nn.Conv2d(in_channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        blocks, planes = [], w
        for stage, width in enumerate((w, 2 * w, 4 * w)):
            for i in range(n):
                blocks.append(BasicBlock(planes, width, 2 if stage > 0 and i == 0 else 1, cfg.residual))
                planes = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if cfg.zero_init_residual:
            for b in self.blocks:
                nn.init.zeros_(b.bn2.weight)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))

    def forward_with_activations(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits, and the stem's output followed by every block's output (for gradient probes)."""
        acts = [self.stem(x)]
        for block in self.blocks:
            acts.append(block(acts[-1]))
        return self.fc(acts[-1].mean(dim=(2, 3))), acts
