"""The image-classification run shared by the image experiments: config tree and builder."""

from __future__ import annotations

from dataclasses import dataclass, field

from datamodules.configs import ImageDataConfig
from engine.spec import TrainConfig
from lightning_modules.configs import MLPConfig, OptimConfig, ResNetConfig


@dataclass
class ImageRunConfig:
    """Defaults are He et al.'s CIFAR-10 recipe (ResNet-20, 164 epochs); profiles scale it down."""

    data: ImageDataConfig = field(default_factory=ImageDataConfig)
    model: ResNetConfig = field(default_factory=ResNetConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_epochs=164))


def build_resnet(cfg: ImageRunConfig):
    import torch

    from lightning_modules.nets.resnet_cifar import ResNetCifar

    in_channels = 1 if cfg.data.dataset == "mnist" else 3
    net = ResNetCifar(cfg.model, in_channels=in_channels, num_classes=10)
    return net.to(memory_format=torch.channels_last) if cfg.train.channels_last else net


def build_resnet_run(cfg: ImageRunConfig, seed: int):
    from datamodules.images import ImageDataModule
    from lightning_modules.classifier import ImageClassifier

    module = ImageClassifier(build_resnet(cfg), cfg.optim, num_classes=10)
    return module, ImageDataModule(cfg.data, seed=seed, channels_last=cfg.train.channels_last)


# The data of every smoke profile: a few hundred images (the tests' tiny data sets have 600 / 300).
SMOKE_DATA = {
    "data.train_size": 256,
    "data.val_size": 128,
    "data.test_size": 256,
    "data.train_eval_size": 128,
    "data.batch_size": 64,
    "data.eval_batch_size": 256,
}

IMAGE_METRICS = {
    "test_error": "test error (%)",
    "best_val_error": "best val error (%)",
    "train_error": "train error (%)",
    "gap": "val - train gap (pts)",
    "epochs": "epochs",
    "wall_time": "train time (s)",
}


@dataclass
class MLPRunConfig:
    """An MLP on MNIST (the dropout paper's setting): 50k/10k train/val split of the training set."""

    data: ImageDataConfig = field(
        default_factory=lambda: ImageDataConfig(dataset="mnist", val_size=10000, batch_size=128)
    )
    model: MLPConfig = field(default_factory=MLPConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.05, weight_decay=0.0, schedule="cosine"))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_epochs=50, channels_last=False))


def build_mlp(cfg: MLPRunConfig):
    from lightning_modules.nets.mlp import MLP

    channels = 1 if cfg.data.dataset == "mnist" else 3
    side = 28 if cfg.data.dataset == "mnist" else 32
    return MLP(cfg.model, in_features=channels * side * side, num_classes=10)


def build_mlp_run(cfg: MLPRunConfig, seed: int):
    from datamodules.images import ImageDataModule
    from lightning_modules.classifier import ImageClassifier

    module = ImageClassifier(build_mlp(cfg), cfg.optim, num_classes=10)
    return module, ImageDataModule(cfg.data, seed=seed, channels_last=False)
