"""The compiled training path (``train.compile``): the same networks, checkpoints and numbers as the eager one.

On a GPU it is the fast path of the paper-scale profiles (CUDA graphs, a fused optimizer step, no host syncs
inside an epoch: ``bench/compile_speed.py`` measures it); here, on a CPU, it is checked for what must not change.
"""

from __future__ import annotations

import copy
import json
import statistics
from pathlib import Path

import pytest
import torch

from datamodules.errors import ReproError
from experiments import get
from experiments.cli import main
from experiments.config import config_to_dict
from experiments.records import committed_records
from lightning_modules.base import RecordedModule

SMOKE = ["--profile", "smoke", "--wandb", "off"]


def test_a_field_added_at_its_default_leaves_every_committed_identity_as_it_was(monkeypatch):
    # train.compile came after these runs: at its default ("": eager) it is left out of the config's dict, so a
    # committed record's config is still exactly what its profile resolves to, and its run folder resumes
    monkeypatch.setenv("REPRO_RESULTS_DIR", str(Path(__file__).resolve().parents[1] / "results"))
    exp = get("capacity")
    records = committed_records("capacity", "quick")
    assert records
    for (variant, _seed), record in records.items():
        now = config_to_dict(exp.resolve(variant, "quick", record.get("sets") or {}))
        assert now == record["config"] and "compile" not in now["train"]
    compiled = exp.resolve(next(iter(records))[0], "quick", {"train.compile": "reduce-overhead"})
    assert config_to_dict(compiled)["train"]["compile"] == "reduce-overhead"  # a compiled run says so


def test_an_unknown_compile_mode_is_one_line_and_exit_2(data_env, capsys):
    assert main(["run", "augmentation", *SMOKE, "--variant", "none", "--set", "train.compile=fast"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "compile must be one of" in err and "Traceback" not in err


def test_compiling_keeps_the_parameters_the_checkpoint_keys_and_the_outputs():
    exp = get("capacity")
    cfg = exp.resolve(exp.variant_names("smoke")[0], "smoke")
    torch.manual_seed(0)
    module, _ = exp.build(cfg, 0)
    eager = copy.deepcopy(module)
    module.compile_net("default")
    assert module.compiled == "default" and not eager.compiled
    assert list(module.state_dict()) == list(eager.state_dict())  # checkpoints move between the two paths
    x = torch.randn(16, 1, 28, 28)
    module.eval(), eager.eval()
    with torch.no_grad():
        out, ref = module(x), eager(x)
    assert out.shape == ref.shape and torch.allclose(out, ref, atol=1e-5)
    assert module.syncs_each_step  # on a CPU the per-step loss checks stay: they cost nothing there


def test_a_module_without_a_network_refuses_to_compile():
    with pytest.raises(ReproError, match="no network"):
        RecordedModule().compile_net("default")


@pytest.mark.slow
def test_compiled_training_matches_eager_within_seed_noise(data_env, monkeypatch, tmp_path):
    # 3 seeds each of a short schedule: the compiled kernels add in another order, so the runs part in their last
    # bits and drift apart a little; the test errors must agree within the spread between seeds
    def test_errors(mode: str) -> list[float]:
        monkeypatch.setenv("REPRO_RUNS_DIR", str(tmp_path / f"runs-{mode or 'eager'}"))
        sets = ["--set", f"train.compile={mode}"] if mode else []
        assert main(["run", "augmentation", *SMOKE, "--variant", "none", "--seeds", "3", "--no-report", *sets]) == 0
        out = []
        for seed in range(3):
            path = (
                tmp_path / f"runs-{mode or 'eager'}" / "augmentation" / "smoke" / "none" / f"seed{seed}" / "record.json"
            )
            record = json.loads(path.read_text())
            assert record["config"]["train"].get("compile", "") == mode  # the record says how it was trained
            out.append(record["metrics"]["test_error"])
        return out

    eager, compiled = test_errors(""), test_errors("default")
    spread = max(statistics.stdev(eager), statistics.stdev(compiled), 0.01)
    assert abs(statistics.mean(compiled) - statistics.mean(eager)) <= 2 * spread
    assert all(abs(a - b) <= 0.1 for a, b in zip(eager, compiled, strict=True))
