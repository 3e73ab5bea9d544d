"""The augmentation experiment (slide 6): each variant trains on the images its description promises, the claims
read the slide the right way round, and the quick profile runs every variant a claim or a plot names.
The augmentations themselves are tested op by op in tests/test_augment.py; smoke runs of this experiment run in
tests/test_runner.py and tests/test_faults.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from base.seeds import mix_seed
from datamodules import augment as aug
from engine import stats
from engine.claims import Compare, Contrast
from engine.registry import get
from engine.spec import Results

EXP = get("augmentation")


def claim(start: str):
    (found,) = [c for c in EXP.claims if c.statement.startswith(start)]
    return found


def training_batch(variant, tiny_data_dir, session_cache, monkeypatch, n=64):
    """(uint8 images, the same images as the training step sees them, un-normalised to [0, 1], generator seed)."""
    monkeypatch.setenv("REPRO_DATA_DIR", str(tiny_data_dir))
    monkeypatch.setenv("REPRO_CACHE_DIR", str(session_cache))
    _, dm = EXP.build(EXP.resolve(variant, "smoke"), 0)
    dm.setup()
    x = dm.train[0][:n]
    dm.trainer = SimpleNamespace(training=True, global_rank=0, world_size=1, current_epoch=0)
    dm._start_epoch(0)
    seen = dm.transform(x.clone(), train=True) * dm.std + dm.mean
    return x, seen.contiguous(), mix_seed(0, 0, 0, 2)  # the data module's stream for seed 0, epoch 0, rank 0


def test_variants_are_the_slides_transformations_with_documented_parameters():
    data = {v: EXP.resolve(v, "quick").data for v in ("vflip", "pixelflip", "elastic", "mnist-elastic")}
    assert data["vflip"].augment == ("vflip",) and data["vflip"].dataset == "cifar10"
    assert data["pixelflip"].augment == ("pixelflip",) and data["pixelflip"].pixel_flip_prob == 0.05
    assert data["elastic"].augment == ("elastic",) and data["elastic"].dataset == "cifar10"
    assert (data["elastic"].elastic_alpha, data["elastic"].elastic_sigma) == (16.0, 4.0)
    assert data["mnist-elastic"].augment == ("elastic",) and data["mnist-elastic"].dataset == "mnist"
    assert (data["mnist-elastic"].elastic_alpha, data["mnist-elastic"].elastic_sigma) == (34.0, 4.0)  # Simard's
    # the rest of the run is the baseline's: one thing changes per comparison
    for variant, base in (
        ("vflip", "none"),
        ("pixelflip", "none"),
        ("elastic", "none"),
        ("mnist-elastic", "mnist-none"),
    ):
        a, b = EXP.resolve(variant, "quick"), EXP.resolve(base, "quick")
        assert (a.model, a.optim, a.train) == (b.model, b.optim, b.train)
        assert a.data.train_size == b.data.train_size and a.data.split_seed == b.data.split_seed


def test_vflip_variant_trains_on_upside_down_copies_of_about_half_the_images(tiny_data_dir, session_cache, monkeypatch):
    x, seen, _ = training_batch("vflip", tiny_data_dir, session_cache, monkeypatch)
    clean = x.float() / 255
    kept = torch.isclose(seen, clean, atol=1e-5).flatten(1).all(1)
    upside_down = torch.isclose(seen, clean.flip(-2), atol=1e-5).flatten(1).all(1)
    mirrored = torch.isclose(seen, clean.flip(-1), atol=1e-5).flatten(1).all(1)
    assert bool((kept | upside_down).all())
    assert 16 < int((upside_down & ~kept).sum()) < 48  # p = 1/2 of 64
    assert not bool((mirrored & ~kept & ~upside_down).any())  # rows reversed, never columns


def test_pixelflip_variant_inverts_about_one_pixel_in_twenty(tiny_data_dir, session_cache, monkeypatch):
    x, seen, _ = training_batch("pixelflip", tiny_data_dir, session_cache, monkeypatch)
    clean = x.float() / 255
    same = torch.isclose(seen, clean, atol=1e-5).all(1)  # [N, H, W]: all channels as they were
    inverted = torch.isclose(seen, 1 - clean, atol=1e-5).all(1)  # all channels v -> 1 - v
    assert bool((same | inverted).all())
    share = float((inverted & ~same).float().mean())  # 65,536 pixels: std of the share 0.0009
    assert abs(share - 0.05) < 0.005


@pytest.mark.parametrize("variant, alpha", [("elastic", 16.0), ("mnist-elastic", 34.0)])
def test_elastic_variants_warp_with_their_own_alpha_and_sigma(
    variant, alpha, tiny_data_dir, session_cache, monkeypatch
):
    x, seen, seed = training_batch(variant, tiny_data_dir, session_cache, monkeypatch)
    expected = aug.elastic_warp(x.float() / 255, torch.Generator().manual_seed(seed), alpha=alpha, sigma=4.0)
    assert torch.allclose(seen, expected, atol=1e-5)
    other = aug.elastic_warp(x.float() / 255, torch.Generator().manual_seed(seed), alpha=alpha / 2, sigma=4.0)
    assert not torch.allclose(seen, other, atol=1e-3)


def results(errors: dict[str, list[float]]) -> Results:
    return Results({v: {"test_error": dict(enumerate(e))} for v, e in errors.items()})


def test_new_claims_read_the_slide_the_right_way_round():
    """Plausible per-seed errors: the transformations help, the vertical flip does not; then the other way."""
    helps = results(
        {
            "none": [0.56, 0.57, 0.55],
            "flip": [0.53, 0.535, 0.525],
            "vflip": [0.565, 0.57, 0.56],
            "pixelflip": [0.548, 0.557, 0.539],
            "elastic": [0.545, 0.56, 0.54],
            "mnist-none": [0.050, 0.048, 0.049],
            "mnist-elastic": [0.035, 0.036, 0.033],
        }
    )
    for start in (
        "Noise as flipped random pixels",
        "Smooth warping (elastic deformation) lowers MNIST",
        "Smooth warping (a milder",
        "Vertical flips help CIFAR-10 less",
    ):
        assert claim(start).check(helps).status == "supported", start
    # a vertical flip that helps as much as the horizontal one (e.g. aerial images) leaves the claim undecided,
    # one that helps more contradicts it
    same = results({"flip": [0.53, 0.535, 0.525], "vflip": [0.531, 0.533, 0.526]})
    assert claim("Vertical flips").check(same).status == "inconclusive"
    more = results({"flip": [0.53, 0.535, 0.525], "vflip": [0.52, 0.524, 0.516]})
    assert claim("Vertical flips").check(more).status == "contradicted"
    hurts = results({"mnist-none": [0.050, 0.048, 0.049], "mnist-elastic": [0.06, 0.059, 0.061]})
    assert claim("Smooth warping (elastic deformation) lowers MNIST").check(hurts).status == "contradicted"


def test_two_seeds_never_decide_a_new_claim():
    two = results({"none": [0.56, 0.57], "pixelflip": [0.50, 0.51]})
    verdict = claim("Noise as flipped random pixels").check(two)
    assert verdict.status == "inconclusive" and "points positive" in verdict.statistic
    assert stats.MIN_SEEDS == 3


def variants_of(check) -> set[str]:
    if isinstance(check, Compare):
        return {v for pair in check.pairs for v in pair}
    if isinstance(check, Contrast):
        return {check.first[1], check.first[2], check.second[1], check.second[2]}
    raise AssertionError(f"unexpected claim type {type(check).__name__}")


def test_quick_profile_runs_every_variant_the_claims_and_plots_name_with_enough_seeds():
    quick = EXP.profile("quick")
    ran = set(EXP.variant_names("quick"))
    named = set().union(*(variants_of(c.check) for c in EXP.claims))
    assert named <= ran  # every claim is decided by the quick runs (CIFAR-10's smooth warping too, since 2026-11-29)
    plotted = {v for t in EXP.tables for pair in t.pairs for v in pair}
    assert plotted <= ran
    assert {v.name for v in EXP.variants} == ran  # rotation too, since it has a claim (2026-12-06)
    tabled = {v for t in EXP.tables for v in t.variants}
    assert tabled == {v.name for v in EXP.variants}  # every variant has a row somewhere
    assert quick.seeds >= stats.MIN_SEEDS and quick.cpu_jobs == 2
    assert EXP.resolve("none", "quick").train.threads == 1
    assert quick.power and any(ch.isdigit() for ch in quick.power)
