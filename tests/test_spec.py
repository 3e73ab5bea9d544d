"""Config overrides: typed parsing, dotted keys, helpful one-line errors."""

from __future__ import annotations

import pytest

from engine.config import apply_overrides, config_from_dict, config_to_dict, flat_keys
from engine.registry import get, registry
from engine.spec import ReproError
from experiments.common import ImageRunConfig


def test_registry_lists_augmentation_with_its_profiles_and_claims():
    exps = registry()
    assert "augmentation" in exps
    exp = exps["augmentation"]
    assert {p.name for p in exp.profiles} == {"smoke", "quick", "full", "pilot"}
    assert exp.slides == "6" and len(exp.claims) >= 3
    assert {"none", "flip", "translate", "flip+translate", "noise", "mnist-none", "mnist-flip"} <= {
        v.name for v in exp.variants
    }
    # every profile's variant list names real variants
    for p in exp.profiles:
        assert set(exp.variant_names(p.name)) <= {v.name for v in exp.variants}


def test_unknown_experiment_suggests_the_close_name():
    with pytest.raises(ReproError, match="did you mean 'augmentation'"):
        get("augmentaton")


def test_text_overrides_are_parsed_to_the_field_type():
    cfg = ImageRunConfig()
    apply_overrides(
        cfg,
        {
            "optim.lr": "0.05",
            "data.batch_size": "64",
            "model.residual": "false",
            "data.augment": "flip, translate",
            "optim.milestones": "0.3,0.6",
        },
        from_text=True,
    )
    assert cfg.optim.lr == 0.05 and isinstance(cfg.optim.lr, float)
    assert cfg.data.batch_size == 64 and isinstance(cfg.data.batch_size, int)
    assert cfg.model.residual is False
    assert cfg.data.augment == ("flip", "translate")
    assert cfg.optim.milestones == (0.3, 0.6)
    apply_overrides(cfg, {"data.augment": ""}, from_text=True)
    assert cfg.data.augment == ()


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("data.batchsize", "3", "unknown config key 'data.batchsize' (did you mean 'data.batch_size'?)"),
        ("nosuch.key", "3", "unknown config key 'nosuch.key'"),
        ("data", "3", "unknown config key 'data'"),
        ("data.batch_size", "abc", "bad value for data.batch_size: 'abc' (expected an integer)"),
        ("data.batch_size", "2.5", "expected an integer"),
        ("model.residual", "maybe", "expected true or false"),
        ("model.depth", "21", "depth must be 6n+2"),
        ("data.augment", "flip,warp", "unknown augmentation 'warp'"),
        ("data.dataset", "imagenet", "dataset must be one of"),
        ("optim.schedule", "linear", "schedule must be"),
        ("train.max_epochs", "0", "max_epochs must be >= 1"),
    ],
)
def test_bad_overrides_are_one_line_errors(key, value, message):
    with pytest.raises(ReproError) as e:
        apply_overrides(ImageRunConfig(), {key: value}, from_text=True)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_python_overrides_are_type_checked_too():
    cfg = ImageRunConfig()
    apply_overrides(cfg, {"optim.lr": 1})  # int accepted for a float field, stored as float
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    with pytest.raises(ReproError, match="expected int"):
        apply_overrides(cfg, {"data.batch_size": True})
    with pytest.raises(ReproError):
        apply_overrides(cfg, {"data.batch_size": "64"})  # a str where an int is declared, not from the CLI


def test_config_round_trips_through_a_plain_dict():
    exp = get("augmentation")
    cfg = exp.resolve("flip+translate", "quick", {"optim.lr": "0.2"})
    data = config_to_dict(cfg)
    assert data["data"]["augment"] == ["flip", "translate"] and data["optim"]["lr"] == 0.2
    back = config_from_dict(ImageRunConfig(), data)
    assert back == cfg
    assert "data.batch_size" in flat_keys(cfg) and "optim.lr" in flat_keys(cfg)


def test_resolution_order_is_defaults_profile_variant_sets():
    exp = get("augmentation")
    full = exp.resolve("none", "full")
    assert full.model.depth == 20 and full.train.max_epochs == 164  # He et al.'s recipe
    quick = exp.resolve("mnist-flip", "quick", {"model.depth": "14"})
    assert quick.data.dataset == "mnist" and quick.data.augment == ("flip",)  # variant
    assert quick.train.max_epochs == exp.profile("quick").overrides["train.max_epochs"]  # profile
    assert quick.model.depth == 14  # --set wins over the profile


def test_unknown_variant_and_profile():
    exp = get("augmentation")
    with pytest.raises(ReproError, match="unknown variant 'flipp'.*did you mean 'flip'"):
        exp.resolve("flipp", "quick")
    with pytest.raises(ReproError, match="unknown profile 'fast'"):
        exp.resolve("flip", "fast")
