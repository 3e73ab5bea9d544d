"""Batched augmentations: exact small cases, shapes, ranges, determinism, never at evaluation."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from datamodules import augment as aug
from datamodules.images import ImageDataConfig, ImageDataModule, ResidentBatches


def batch(n=16, c=3, h=8, w=8, seed=0):
    return torch.randint(0, 256, (n, c, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_flip_mirrors_exactly_the_chosen_images():
    x = batch()
    out = aug.random_flip(x, gen(1))
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert bool((flipped | kept).all())  # every image is either untouched or mirrored
    assert 0 < int(flipped.sum()) < len(x)  # with 16 images, p = 1/2 gives both kinds (for this seed)
    mask = torch.rand(len(x), generator=gen(1)) < 0.5  # the same draw decides which ones
    assert torch.equal(flipped & ~kept, mask & ~kept)


def test_translate_is_a_window_of_the_zero_padded_image():
    x, pad = batch(n=32), 2
    out = aug.random_translate(x, gen(3), pad)
    padded = F.pad(x, (pad,) * 4)
    shifts = set()
    for i in range(len(x)):
        windows = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if torch.equal(padded[i, :, dy : dy + 8, dx : dx + 8], out[i])
        ]
        assert windows, f"image {i} is not a crop of its padded original"
        shifts.add(windows[0])
    assert len(shifts) > 5  # crops really vary across the batch
    assert torch.equal(aug.random_translate(x, gen(3), 0), x)


def test_translate_keeps_pixels_and_fills_with_zero():
    x = torch.full((4, 1, 6, 6), 200, dtype=torch.uint8)
    out = aug.random_translate(x, gen(0), 3)
    values = set(out.unique().tolist())
    assert values <= {0, 200}


def test_rotation_by_zero_degrees_is_identity_and_ranges_hold():
    x = batch().float() / 255
    assert torch.allclose(aug.random_rotate(x, gen(0), degrees=0.0), x, atol=1e-5)
    r = aug.random_rotate(x, gen(0), degrees=30.0)
    assert r.shape == x.shape and r.min() >= 0 and r.max() <= 1 and not torch.allclose(r, x)


def test_noise_has_the_requested_std_and_stays_in_range():
    x = torch.full((64, 3, 16, 16), 0.5)
    out = aug.gaussian_noise(x.clone(), gen(0), std=0.1)
    assert out.min() >= 0 and out.max() <= 1
    assert abs(float((out - x).std()) - 0.1) < 0.005
    assert abs(float((out - x).mean())) < 0.005


@pytest.mark.parametrize(
    "names",
    [
        ("flip",),
        ("translate",),
        ("flip", "translate"),
        ("rotate",),
        ("noise",),
        ("flip", "translate", "rotate", "noise"),
    ],
)
def test_pipeline_is_deterministic_under_a_seed(names):
    x = batch()
    a = aug.augment(x, names, gen(7))
    b = aug.augment(x, names, gen(7))
    c = aug.augment(x, names, gen(8))
    assert a.dtype == torch.float32 and a.shape == x.shape
    assert 0 <= float(a.min()) and float(a.max()) <= 1
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_unknown_augmentation_is_refused():
    with pytest.raises(ValueError, match="unknown augmentation"):
        aug.augment(batch(), ("warp",), gen(0))


# ----------------------------------------------------------------------------- the data module
def _module(tiny_data_dir, session_cache, monkeypatch, **cfg):
    monkeypatch.setenv("REPRO_DATA_DIR", str(tiny_data_dir))
    monkeypatch.setenv("REPRO_CACHE_DIR", str(session_cache))
    dm = ImageDataModule(ImageDataConfig(val_size=100, train_eval_size=50, **cfg), seed=0)
    dm.setup()
    return dm


def _as_trainer(dm, training):
    dm.trainer = SimpleNamespace(training=training, global_rank=0, world_size=1, current_epoch=0)


def test_evaluation_batches_are_never_augmented(tiny_data_dir, session_cache, monkeypatch):
    dm = _module(tiny_data_dir, session_cache, monkeypatch, augment=("flip", "translate", "rotate", "noise"))
    x, y = next(iter(dm._loader(dm.val, 64, shuffle=False)))
    clean = (x.float() / 255 - dm.mean) / dm.std
    _as_trainer(dm, training=False)  # validating or testing
    out, out_y = dm.on_after_batch_transfer((x, y), 0)
    assert torch.equal(out, clean) and torch.equal(out_y, y)
    _as_trainer(dm, training=True)
    dm._start_epoch(0)
    train_out, _ = dm.on_after_batch_transfer((x, y), 0)
    assert not torch.allclose(train_out, clean)  # the same batch is augmented while training
    # the evaluation loaders serve the held-out images in their fixed order, unshuffled
    for loader, data in ((dm.val_dataloader(), dm.val), (dm.test_dataloader()[0], dm.test)):
        xs = torch.cat([b[0] for b in loader])
        assert torch.equal(xs, data[0])


def test_split_is_fixed_and_disjoint(tiny_data_dir, session_cache, monkeypatch):
    a = _module(tiny_data_dir, session_cache, monkeypatch, train_size=200)
    b = _module(tiny_data_dir, session_cache, monkeypatch, train_size=200)
    assert torch.equal(a.train[0], b.train[0]) and torch.equal(a.val[0], b.val[0])
    assert len(a.train[0]) == 200 and len(a.val[0]) == 100 and len(a.test[0]) == 300
    as_rows = lambda t: {bytes(r.numpy()) for r in t.flatten(1)}  # noqa: E731
    assert not as_rows(a.train[0]) & as_rows(a.val[0])
    # normalisation statistics come from the training images only
    px = a.train[0].float() / 255
    assert torch.allclose(a.mean.flatten(), px.mean(dim=(0, 2, 3)))


def test_batches_shard_by_rank_and_replay_by_epoch():
    x, y = torch.arange(103).view(-1, 1, 1, 1), torch.arange(103)
    epoch = {"e": 0}

    def make(rank, world, shuffle):
        return ResidentBatches(x, y, 10, shuffle=shuffle, seed=5, epoch_fn=lambda: epoch["e"], rank=rank, world=world)

    # evaluation: every example exactly once across ranks
    seen = torch.cat([b[1] for r in range(2) for b in make(r, 2, False)])
    assert sorted(seen.tolist()) == list(range(103))
    # training: equal full batches per rank, disjoint, reproducible per epoch, different across epochs
    r0 = torch.cat([b[1] for b in make(0, 2, True)])
    r1 = torch.cat([b[1] for b in make(1, 2, True)])
    assert len(r0) == len(r1) == 50 and len(make(0, 2, True)) == 5
    assert not set(r0.tolist()) & set(r1.tolist())
    assert torch.equal(r0, torch.cat([b[1] for b in make(0, 2, True)]))
    epoch["e"] = 1
    assert not torch.equal(r0, torch.cat([b[1] for b in make(0, 2, True)]))
    single = make(0, 1, True)
    assert len(single) == 10 and sum(len(b[1]) for b in single) == 100  # drop_last: 10 full batches
