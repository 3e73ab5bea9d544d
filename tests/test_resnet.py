"""The CIFAR ResNet: the paper's parameter counts, option-A shortcuts, the identity at zero."""

from __future__ import annotations

import pytest
import torch

from lightning_modules.nets.resnet_cifar import BasicBlock, ResNetCifar, ResNetConfig


def n_params(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("depth,paper_millions", [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85), (110, 1.7)])
def test_parameter_counts_match_he_et_al_table_6(depth, paper_millions):
    net = ResNetCifar(ResNetConfig(depth=depth))
    assert round(n_params(net) / 1e6, 2 if depth < 110 else 1) == paper_millions


def test_resnet20_exact_count_and_plain_twin_has_the_same_parameters():
    # stem 3*16*9 + BN 32; stage blocks; fc 64*10+10 -- 269,722 counted once by hand from the layer list
    assert n_params(ResNetCifar(ResNetConfig(depth=20))) == 269_722
    assert n_params(ResNetCifar(ResNetConfig(depth=20, residual=False))) == 269_722


def test_output_shapes_for_cifar_and_mnist():
    net = ResNetCifar(ResNetConfig(depth=8, width=4))
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert ResNetCifar(ResNetConfig(depth=8, width=4), in_channels=1)(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_option_a_shortcut_subsamples_and_zero_pads_channels():
    block = BasicBlock(16, 32, stride=2, residual=True)
    x = torch.randn(2, 16, 32, 32)
    s = block.shortcut(x)
    assert s.shape == (2, 32, 16, 16)
    assert torch.equal(s[:, 8:24], x[:, :, ::2, ::2])  # identity in the middle channels
    assert not s[:, :8].any() and not s[:, 24:].any()  # zeros before and after
    assert block(x).shape == (2, 32, 16, 16)


def test_stage_boundaries_halve_maps_and_double_channels():
    net = ResNetCifar(ResNetConfig(depth=20))
    x = torch.randn(1, 3, 32, 32)
    shapes = []
    h = net.stem(x)
    for b in net.blocks:
        h = b(h)
        shapes.append(tuple(h.shape[1:]))
    assert shapes == [(16, 32, 32)] * 3 + [(32, 16, 16)] * 3 + [(64, 8, 8)] * 3


def test_zero_initialised_residual_blocks_pass_their_input_through_exactly():
    net = ResNetCifar(ResNetConfig(depth=20, zero_init_residual=True)).eval()
    h = net.stem(torch.randn(4, 3, 32, 32))  # post-ReLU: non-negative, so the block's final ReLU is the identity
    for b in net.blocks:
        out = b(h)
        assert torch.equal(
            out, b.shortcut(h)
        )  # F(x) = 0 exactly: x passes unchanged (subsampled/padded at stage starts)
        h = out
    plain = ResNetCifar(ResNetConfig(depth=20, zero_init_residual=True, residual=False)).eval()
    assert not plain.blocks(plain.stem(torch.randn(4, 3, 32, 32))).any()  # without shortcuts nothing gets through
