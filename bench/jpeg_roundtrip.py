"""What the JPEG (q75) copy of CIFAR-10 costs, estimated by one more JPEG round trip of the test set.

The original lossless images are not here, so the first JPEG generation's cost cannot be measured directly.
What can: a trained run's test error on the test images as stored, against the same images encoded once more
at quality 75 and decoded (Pillow's defaults otherwise), beside the pixel distortion of that round trip (PSNR).
A second generation at the same quality changes an image less than the first did (q75's quantization has
already removed most of what it removes), and the net was trained on JPEG images too: the difference says how
sensitive the trained net is to the compression, a rough lower bound of what the first generation costs, not
the error a net trained on the original images would reach.

    python bench/jpeg_roundtrip.py resnet-ablation --profile full --variant residual-20 --seed 100
    python bench/jpeg_roundtrip.py augmentation --profile quick --variant none --seed 100   # any trained image run
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from base.errors import ReproError  # noqa: E402
from datamodules.configs import ImageDataConfig  # noqa: E402
from engine.records import load_trained  # noqa: E402
from engine.registry import get  # noqa: E402
from engine.spec import TABLE_SEEDS  # noqa: E402


def jpeg_roundtrip(images: torch.Tensor, quality: int = 75) -> torch.Tensor:
    """uint8 N x C x H x W (C = 1 or 3) -> the same images encoded as JPEG at ``quality`` and decoded."""
    import numpy as np
    from PIL import Image

    out = torch.empty_like(images)
    for i, img in enumerate(images):
        hwc = img.permute(1, 2, 0).numpy()
        buf = io.BytesIO()
        Image.fromarray(hwc[..., 0] if hwc.shape[-1] == 1 else hwc).save(buf, format="JPEG", quality=quality)
        decoded = np.asarray(Image.open(buf)).reshape(hwc.shape)
        out[i] = torch.from_numpy(decoded.copy()).permute(2, 0, 1)
    return out


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.float() - b.float()).pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


@torch.no_grad()
def test_error(module, dm, images: torch.Tensor, labels: torch.Tensor, batch: int = 1000) -> float:
    wrong = 0
    for i in range(0, len(labels), batch):
        x = dm.transform(images[i : i + batch].clone(), train=False)
        wrong += int((module(x).argmax(1) != labels[i : i + batch]).sum())
    return wrong / len(labels)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name")
    p.add_argument("--profile", required=True)
    p.add_argument("--variant", required=True)
    p.add_argument("--seed", type=int, default=TABLE_SEEDS)  # a table's first seed
    p.add_argument("--quality", type=int, default=75)
    args = p.parse_args()
    try:
        exp = get(args.name)
        if not isinstance(getattr(exp.config(), "data", None), ImageDataConfig):
            raise ReproError(f"{args.name} does not train on images: a JPEG round trip measures image experiments")
        cfg, checkpoint = load_trained(exp, args.profile, args.variant, args.seed)
        module, dm = exp.build(cfg, args.seed)
        module.load_state_dict(checkpoint["state_dict"])
        dm.setup()
    except ReproError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    module.eval()
    x, y = dm.test
    again = jpeg_roundtrip(x.cpu(), args.quality)
    stored, twice = test_error(module, dm, x, y), test_error(module, dm, again, y)
    print(f"{args.name} {args.profile} {args.variant} seed {args.seed}: {len(y)} test images of {dm.info['name']}")
    print(f"one more JPEG q{args.quality} round trip: PSNR {psnr(x, again):.1f} dB against the stored images")
    print(
        f"test error: stored {stored * 100:.2f}%, after the round trip {twice * 100:.2f}%, "
        f"difference {100 * (twice - stored):+.2f} pts"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
