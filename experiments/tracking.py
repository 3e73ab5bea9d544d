"""Weights & Biases: where each run is logged, and how.

Every run is one W&B run in project ``lecture7-repro`` (``WANDB_PROJECT`` overrides): group
``<experiment>/<profile>``, job type = variant, name ``<variant>-s<seed>``, tags; config = the resolved
config plus provenance; summary = the final metrics plus group, job type and seed (so that an offline run's
``wandb leet inspect --summary --json`` names them too).

- **online** (an API key is configured): logged live while training, with one id per run folder, so a
  resumed run continues the same W&B run.
- **offline**: written once, when the run has finished, from its record (the per-epoch history and the
  summary). A resumed run therefore still leaves exactly one ``wandb/offline-run-*`` folder, which
  ``wandb leet`` reads and ``wandb sync`` uploads; an interrupted run leaves none until it finishes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

PROJECT = "lecture7-repro"


def _has_key() -> bool:
    """Whether a W&B API key is configured (the environment, or `wandb login`'s netrc entry)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def wandb_mode(choice: str) -> str | None:
    """'online', 'offline' or None (off) for the --wandb choice; online without a key is refused before any run
    starts (W&B would stop the first run with a traceback)."""
    from datamodules.errors import ReproError

    if choice == "off":
        return None
    if choice == "online" and not _has_key():
        raise ReproError("--wandb online: no W&B API key here (set WANDB_API_KEY or run `wandb login`); "
                         "--wandb offline logs locally for a later `wandb sync`")  # fmt: skip
    if choice != "auto":
        return choice
    return "online" if _has_key() else "offline"


def _run_id(folder: Path) -> str:
    """One W&B id per run folder, kept across resumes."""
    from experiments.records import write_atomic

    id_file = folder / "wandb_id.txt"
    if not id_file.is_file():
        write_atomic(id_file, hashlib.sha1(f"{folder.resolve()}{time.time()}".encode()).hexdigest()[:12])
    return id_file.read_text().strip()


def identity(experiment: str, profile: str, variant: str, seed: int) -> dict:
    return {
        "project": os.environ.get("WANDB_PROJECT", PROJECT),
        "group": f"{experiment}/{profile}",
        "job_type": variant,
        "name": f"{variant}-s{seed}",
        "tags": [experiment, profile, variant],
    }


def live_logger(folder: Path, experiment: str, profile: str, variant: str, seed: int, config: dict):
    """The Lightning logger of an online run (None for offline runs: they are written at the end)."""
    from lightning.pytorch.loggers import WandbLogger

    return WandbLogger(
        **identity(experiment, profile, variant, seed),
        id=_run_id(folder),
        config=config,
        save_dir=str(folder),
        resume="allow",
        mode="online",
        log_model=False,
    )


def _summary(record: dict) -> dict:
    prov = record["provenance"]
    return {
        **{k: v for k, v in record["metrics"].items() if v is not None},
        "params": prov["params"],
        "group": f"{record['experiment']}/{record['profile']}",
        "job_type": record["variant"],
        "seed": record["seed"],
    }


def _provenance(record: dict) -> dict:
    prov = record["provenance"]
    return {"provenance": {k: prov[k] for k in ("commit", "dirty", "hardware", "data", "params")}}


def finish_live(logger, record: dict) -> None:
    """Online runs: provenance into the config, the final metrics into the summary, then close."""
    logger.experiment.config.update(_provenance(record), allow_val_change=True)
    logger.experiment.summary.update(_summary(record))
    logger.experiment.finish()


def write_offline(folder: Path, record: dict, config: dict) -> None:
    """Offline runs: the whole W&B run written at once from the finished record, replacing any earlier
    attempt's folder so that exactly one remains."""
    import wandb

    for old in (folder / "wandb").glob("offline-run-*"):
        shutil.rmtree(old, ignore_errors=True)
    run = wandb.init(
        **identity(record["experiment"], record["profile"], record["variant"], record["seed"]),
        id=_run_id(folder),
        dir=str(folder),
        mode="offline",
        config={**config, **_provenance(record)},
        settings=wandb.Settings(silent=True, console="off"),
        reinit="create_new",
    )
    for row in record.get("history", []):
        epoch = row.get("epoch")
        run.log({f"epoch/{k}": v for k, v in row.items() if k != "epoch" and isinstance(v, (int, float))},
                step=int(epoch) if isinstance(epoch, (int, float)) else None)  # fmt: skip
    run.summary.update(_summary(record))
    run.finish()
