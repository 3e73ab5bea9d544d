"""Batched augmentations: exact small cases, shapes, ranges, determinism, never at evaluation."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from datamodules import augment as aug
from datamodules.batches import ResidentBatches
from datamodules.configs import AUGMENTATIONS
from datamodules.images import ImageDataConfig, ImageDataModule


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


def test_vflip_turns_exactly_the_chosen_images_upside_down():
    x = batch()
    out = aug.random_vflip(x, gen(1))
    flipped = (out == x.flip(-2)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert bool((flipped | kept).all())
    assert 0 < int(flipped.sum()) < len(x)
    mask = torch.rand(len(x), generator=gen(1)) < 0.5  # the same draw decides which ones
    assert torch.equal(flipped & ~kept, mask & ~kept)


def test_both_flips_and_the_crop_are_one_gather_of_the_drawn_choices():
    x, pad = batch(n=32), 2
    out = aug.flip_and_crop(x, gen(4), flip=True, pad=pad, vflip=True)
    g = gen(4)  # the draws, in their documented order
    mirror, upside_down = torch.rand(32, generator=g) < 0.5, torch.rand(32, generator=g) < 0.5
    dy, dx = torch.randint(0, 2 * pad + 1, (32,), generator=g), torch.randint(0, 2 * pad + 1, (32,), generator=g)
    padded = F.pad(x, (pad,) * 4)
    for i in range(len(x)):
        expected = padded[i, :, dy[i] : dy[i] + 8, dx[i] : dx[i] + 8]
        expected = expected.flip(-1) if mirror[i] else expected
        expected = expected.flip(-2) if upside_down[i] else expected
        assert torch.equal(out[i], expected), f"image {i}"
    assert len({(bool(a), bool(b)) for a, b in zip(mirror, upside_down, strict=True)}) == 4  # all combinations


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_pixelflip_inverts_exactly_the_chosen_pixels_in_every_channel(dtype):
    x = batch(n=4, c=3, h=16, w=16)
    x = x if dtype == torch.uint8 else x.float() / 255
    top = 255 if dtype == torch.uint8 else 1.0
    out = aug.random_pixel_flip(x, gen(2), prob=0.2)
    chosen = torch.rand((4, 1, 16, 16), generator=gen(2)) < 0.2  # the same draw decides which
    assert out.dtype == dtype and out.shape == x.shape
    assert torch.equal(out, torch.where(chosen, top - x, x))
    changed = out != x
    assert torch.equal(changed, chosen.expand_as(x) & (x != top - x))  # all channels of a pixel together
    assert 0 < int(chosen.sum()) < chosen.numel()


def test_pixelflip_fraction_is_near_the_probability():
    x = torch.zeros(64, 3, 32, 32)
    for prob in (0.0, 0.05, 0.3, 1.0):
        out = aug.random_pixel_flip(x, gen(5), prob)
        flipped = (out == 1).all(1)  # a chosen pixel is inverted in all three channels
        assert torch.equal(flipped, (out == 1).any(1))
        assert abs(float(flipped.float().mean()) - prob) < 0.006  # 65,536 pixels: std <= 0.002


def test_elastic_with_zero_alpha_is_the_identity_and_strong_warps_stay_in_range():
    x = batch().float() / 255
    assert torch.allclose(aug.elastic_warp(x, gen(0), alpha=0.0, sigma=4.0), x, atol=1e-6)
    out = aug.elastic_warp(x, gen(0), alpha=34.0, sigma=4.0)  # Simard's (strong) setting
    assert out.shape == x.shape and out.dtype == x.dtype
    assert 0 <= float(out.min()) and float(out.max()) <= 1 and not torch.allclose(out, x, atol=1e-3)


def test_elastic_is_deterministic_under_a_seed_and_differs_between_images():
    x = (batch(n=1, h=16, w=16).float() / 255).expand(6, -1, -1, -1)  # six copies of one image
    a = aug.elastic_warp(x, gen(3))
    assert torch.equal(a, aug.elastic_warp(x, gen(3)))
    assert not torch.equal(a, aug.elastic_warp(x, gen(4)))
    distinct = {bytes(img.numpy()) for img in a}
    assert len(distinct) == 6  # each copy got its own field


def test_elastic_moves_each_pixel_by_its_field_in_pixels():
    """On a linear ramp bilinear sampling is exact, so the warped value reads back the displacement:
    out[i, j] = (j + dx[i, j]) / (w - 1) for a left-right ramp (and likewise rows for dy)."""
    n, h, w, alpha, sigma = 4, 12, 12, 8.0, 3.0
    field = aug.elastic_displacement(n, h, w, gen(6), alpha, sigma, "cpu")  # the warp's first and only draw
    rows, cols = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    src_x, src_y = cols + field[:, 0], rows + field[:, 1]
    inside = (src_x >= 0) & (src_x <= w - 1) & (src_y >= 0) & (src_y <= h - 1)  # away from the zero fill
    assert 0.3 < float(inside.float().mean()) < 1  # the fields are big enough to push some pixels out
    for ramp, source, size in ((cols, src_x, w), (rows, src_y, h)):
        x = (ramp / (size - 1)).expand(n, 1, h, w)
        out = aug.elastic_warp(x, gen(6), alpha, sigma)[:, 0]
        assert torch.allclose(out[inside] * (size - 1), source[inside], atol=1e-4)


def neighbour_correlation(field: torch.Tensor) -> float:
    """Correlation of each displacement with its right-hand neighbour's, over the batch."""
    a, b = field[..., :-1].flatten(), field[..., 1:].flatten()
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def test_elastic_displacement_is_smooth_and_scaled_by_alpha():
    field = aug.elastic_displacement(256, 32, 32, gen(7), alpha=16.0, sigma=4.0, device="cpu")
    raw = aug.elastic_displacement(256, 32, 32, gen(7), alpha=1.0, sigma=0.1, device="cpu")  # kernel ~ a delta
    assert neighbour_correlation(field) > 0.95  # theory for sigma 4: exp(-1 / (4 sigma^2)) = 0.98
    assert abs(neighbour_correlation(raw)) < 0.02
    assert abs(float(raw.std()) - 3**-0.5) < 0.01  # uniform [-1, 1): std 1/sqrt(3)
    # a normalised 2-D Gaussian of std s keeps a fraction 1 / (2 sqrt(pi) s) of white noise's std
    expected = 16.0 * 3**-0.5 / (2 * math.sqrt(math.pi) * 4.0)
    assert abs(float(field.std()) / expected - 1) < 0.05
    assert abs(float(field.mean())) < 0.05


@pytest.mark.parametrize(
    "names",
    [
        ("flip",),
        ("translate",),
        ("flip", "translate"),
        ("rotate",),
        ("noise",),
        ("flip", "translate", "rotate", "noise"),
        ("vflip",),
        ("elastic",),
        ("pixelflip",),
        AUGMENTATIONS,
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


# Computed with the code before vflip, elastic and pixelflip existed (at 2669361): the old combinations
# must keep their results and their random draws (the generator's next number after the pipeline).
PINNED_X = [
    172,
    47,
    117,
    192,
    67,
    251,
    195,
    103,
    9,
    211,
    21,
    242,
    36,
    87,
    70,
    216,
    88,
    140,
    58,
    193,
    230,
    39,
    87,
    174,
    88,
    81,
    165,
    25,
    77,
    72,
    9,
    148,
    115,
    208,
    243,
    197,
]
PINNED_FLIP_TRANSLATE = [
    47,
    117,
    0,
    67,
    251,
    0,
    103,
    9,
    0,
    21,
    242,
    0,
    87,
    70,
    0,
    88,
    140,
    0,
    0,
    0,
    0,
    230,
    193,
    58,
    174,
    87,
    39,
    0,
    0,
    0,
    72,
    77,
    25,
    115,
    148,
    9,
]
PINNED_ALL_OLD = [
    0.1807462,
    0.1987019,
    0.1685702,
    0.3260562,
    1.0,
    0.1414431,
    0.1266005,
    0.1391452,
    0.0,
    0.0,
    0.0,
    0.0,
    0.6613703,
    0.7940083,
    0.2455528,
    0.5764832,
    0.4218565,
    0.2505835,
]
PINNED_NEXT_DRAW = {
    ("flip",): 0.9074696898460388,
    ("translate",): 0.9201034307479858,
    ("flip", "translate"): 0.16439151763916016,
    ("rotate",): 0.9074696898460388,
    ("noise",): 0.39689087867736816,
    ("flip", "translate", "rotate", "noise"): 0.22247940301895142,
}
OLD_KWARGS = {"pad": 1, "degrees": 30.0, "noise_std": 0.1}


def test_old_combinations_reproduce_their_results_and_draws_bit_for_bit():
    x = torch.tensor(PINNED_X, dtype=torch.uint8).view(2, 2, 3, 3)
    assert torch.equal(x, batch(n=2, c=2, h=3, w=3))
    g = gen(5)
    out = aug.augment(x, ("flip", "translate"), g, **OLD_KWARGS)
    assert (out * 255).round().to(torch.uint8).flatten().tolist() == PINNED_FLIP_TRANSLATE
    g = gen(5)
    out = aug.augment(x[:, :1], ("flip", "translate", "rotate", "noise"), g, **OLD_KWARGS)
    torch.testing.assert_close(out.flatten(), torch.tensor(PINNED_ALL_OLD), atol=1e-6, rtol=0)
    assert torch.rand(1, generator=g).item() == 0.04969513416290283
    for names, next_draw in PINNED_NEXT_DRAW.items():
        g = gen(5)
        aug.augment(x, names, g, **OLD_KWARGS)
        assert torch.rand(1, generator=g).item() == next_draw, names


def test_old_pipeline_is_exactly_its_ops_in_sequence():
    x, g = batch(), gen(9)
    out = aug.augment(x, ("flip", "translate", "rotate", "noise"), gen(9), pad=2, degrees=20.0, noise_std=0.05)
    by_hand = aug.flip_and_crop(x, g, flip=True, pad=2).float() / 255
    by_hand = aug.gaussian_noise(aug.random_rotate(by_hand, g, 20.0), g, 0.05)
    assert torch.equal(out, by_hand)


def test_new_ops_apply_in_the_documented_order():
    x, g = batch(), gen(9)
    out = aug.augment(x, tuple(reversed(AUGMENTATIONS)), gen(9), pad=2, pixel_flip_prob=0.1)
    by_hand = aug.flip_and_crop(x, g, flip=True, pad=2, vflip=True).float() / 255
    by_hand = aug.random_rotate(aug.elastic_warp(by_hand, g), g, 15.0)
    by_hand = aug.gaussian_noise(aug.random_pixel_flip(by_hand, g, 0.1), g, 0.1)
    assert AUGMENTATIONS == ("flip", "vflip", "translate", "elastic", "rotate", "pixelflip", "noise")
    assert torch.equal(out, by_hand)


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


@pytest.mark.parametrize(
    "names", [("flip", "translate", "rotate", "noise"), ("vflip",), ("elastic",), ("pixelflip",), AUGMENTATIONS]
)
def test_evaluation_batches_are_never_augmented(tiny_data_dir, session_cache, monkeypatch, names):
    dm = _module(tiny_data_dir, session_cache, monkeypatch, augment=names)
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


def test_the_data_module_passes_the_new_parameters(tiny_data_dir, session_cache, monkeypatch):
    """pixel_flip_prob 1 inverts every training pixel; elastic_alpha 0 leaves the images as they are."""
    for cfg, expected in (
        ({"augment": ("pixelflip",), "pixel_flip_prob": 1.0}, lambda x: 1 - x.float() / 255),
        ({"augment": ("elastic",), "elastic_alpha": 0.0}, lambda x: x.float() / 255),
    ):
        dm = _module(tiny_data_dir, session_cache, monkeypatch, **cfg)
        x = dm.train[0][:32]
        _as_trainer(dm, training=True)
        dm._start_epoch(0)
        out, _ = dm.on_after_batch_transfer((x, dm.train[1][:32]), 0)
        assert torch.allclose(out, (expected(x) - dm.mean) / dm.std, atol=1e-4)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("elastic_alpha", -1.0, "elastic_alpha must be >= 0"),
        ("elastic_alpha", math.nan, "elastic_alpha must be >= 0"),
        ("elastic_sigma", math.nan, "elastic_sigma must be > 0"),
        ("pixel_flip_prob", math.nan, "pixel_flip_prob must be in [0, 1]"),
        ("elastic_sigma", 0.0, "elastic_sigma must be > 0"),
        ("pixel_flip_prob", 1.5, "pixel_flip_prob must be in [0, 1]"),
        ("pixel_flip_prob", -0.1, "pixel_flip_prob must be in [0, 1]"),
    ],
)
def test_bad_augmentation_parameters_are_one_line_errors(field, value, message):
    with pytest.raises(ValueError) as e:
        ImageDataConfig(**{field: value}).validate()
    assert str(e.value) == message


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
        return ResidentBatches(
            x, y, batch_size=10, shuffle=shuffle, seed=5, epoch_fn=lambda: epoch["e"], rank=rank, world=world
        )

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
