"""Weights & Biases: where each run is logged, what it holds, and how a table's verdicts join the runs.

Every run is one W&B run in project ``lecture7-repro`` (``WANDB_PROJECT`` overrides; ``WANDB_ENTITY`` names the
team): group ``<experiment>/<profile>``, job type = variant, name ``<variant>-s<seed>``, tags. A run made with
other settings than its profile's (``--set``, precision, several processes) is a run of another table cell, so
its group says how it differs, e.g. ``augmentation/quick [precision bf16-mixed]``: grouping by group and job
type never averages it with the profile's runs. The config holds everything the run's record holds: the
resolved config, the launch (precision, devices, world size), the ``--set`` values, the cell it may fill and
its identity's sha256, and the provenance (commit, hardware with the CPU's instruction set, software, data
fingerprint); the summary holds the final metrics and every per-run curve a plot draws (W&B Tables).

Online and offline runs are both logged live while training, through Lightning's ``WandbLogger``: the W&B
run starts and ends with the training, so its start time and runtime are the training's. W&B cannot resume an
offline run, so a resumed offline run replaces the folder of the session it resumes (its earlier epochs are
replayed into the new one from the checkpoint's history); exactly one ``wandb/offline-run-*`` folder remains,
which ``wandb leet`` reads and ``wandb sync`` uploads.

``repro report`` logs each table it writes as a run of job type ``report`` in the table's group: the verdicts
and the per-variant summary as W&B Tables, so that the project shows the verdicts beside the runs.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

PROJECT = "lecture7-repro"
GROUP_LIMIT = 128  # W&B's longest group name


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
    starts (W&B would stop the first run with a traceback). ``auto`` is off where ``WANDB_MODE=disabled``."""
    from base.errors import ReproError

    if choice == "off":
        return None
    if choice == "online" and not _has_key():
        raise ReproError(
            "--wandb online: no W&B API key here (set WANDB_API_KEY or run `wandb login`); "
            "--wandb offline logs locally for a later `wandb sync`"
        )
    if choice != "auto":
        return choice
    if os.environ.get("WANDB_MODE", "").lower() == "disabled":
        return None
    return "online" if _has_key() else "offline"


def _run_id(folder: Path) -> str:
    """One W&B id per run folder, kept across resumes."""
    from base.files import write_atomic

    id_file = folder / "wandb_id.txt"
    if not id_file.is_file():
        write_atomic(id_file, hashlib.sha1(f"{folder.resolve()}{time.time()}".encode()).hexdigest()[:12])
    return id_file.read_text().strip()


def group_name(experiment: str, profile: str, deviation: str = "") -> str:
    """``<experiment>/<profile>``, with how the run differs from its profile in brackets (shortened with a hash
    of the whole where W&B's limit would cut it)."""
    group = f"{experiment}/{profile}"
    if not deviation:
        return group
    full = f"{group} [{deviation}]"
    if len(full) <= GROUP_LIMIT:
        return full
    digest = hashlib.sha256(deviation.encode()).hexdigest()[:8]
    return f"{group} [{deviation[: GROUP_LIMIT - len(group) - 16]}... {digest}]"


def identity(experiment: str, profile: str, variant: str, seed: int, deviation: str = "", tags=()) -> dict:
    """Where a run goes in W&B; ``deviation``: how its settings differ from the profile's ('' for none)."""
    entity = os.environ.get("WANDB_ENTITY") or None
    return {
        "project": os.environ.get("WANDB_PROJECT", PROJECT),
        **({"entity": entity} if entity else {}),
        "group": group_name(experiment, profile, deviation),
        "job_type": variant,
        "name": f"{variant}-s{seed}",
        "tags": [experiment, profile, variant, *(["other-settings"] if deviation else []), *tags],
    }


def run_config(spec, launch, identity_text: str) -> dict:
    """The W&B config of a run at its start: the resolved config, the launch, the ``--set`` values, the cell it
    may fill and its identity (what config.yaml says), the software and the CPU's instruction set."""
    from engine.config import config_to_dict
    from engine.evidence import describe_settings
    from engine.provenance import cpu_capability, versions

    world, precision = launch.world_size(), launch.precision_name()
    return {
        **config_to_dict(spec.config),
        "experiment": spec.experiment.name,
        "profile": spec.profile,
        "variant": spec.variant,
        "seed": spec.seed,
        "launch": {
            "precision": precision,
            "world_size": world,
            "accelerator": launch.accelerator,
            "devices": launch.devices,
            "strategy": launch.strategy,
            "num_nodes": launch.num_nodes,
        },
        "sets": dict(spec.sets),
        "cell": {
            "table": f"{spec.experiment.name}/{spec.profile}",
            "key": f"{spec.variant}/seed{spec.seed}",
            "settings": describe_settings(spec.sets, world, precision) or "the profile's",
            "identity_sha256": hashlib.sha256(identity_text.encode()).hexdigest(),
        },
        "software": versions(),
        "cpu_capability": cpu_capability(),
    }


def logger(folder: Path, ident: dict, config: dict, mode: str):
    """The Lightning logger of a run, online or offline. An offline run's earlier, interrupted session is
    replaced (W&B cannot resume offline runs): ``ReplayHistory`` puts its epochs back."""
    from lightning.pytorch.loggers import WandbLogger

    if mode == "offline":
        for old in (folder / "wandb").glob("offline-run-*"):
            shutil.rmtree(old, ignore_errors=True)
    return WandbLogger(
        **ident,
        id=_run_id(folder),
        config=config,
        save_dir=str(folder),
        mode=mode,
        log_model=False,
        **({"resume": "allow"} if mode == "online" else {}),
        settings=_settings(),
    )


def _settings():
    import wandb

    return wandb.Settings(silent=True, console="off")


def replay_callback():
    """For offline runs: a callback that logs the epochs a resumed run restored from its checkpoint."""
    import lightning as L

    class ReplayHistory(L.Callback):
        def on_train_start(self, trainer, module) -> None:
            done = [row for row in getattr(module, "history", []) if isinstance(row.get("epoch"), (int, float))]
            if not done or not trainer.loggers or not trainer.is_global_zero:
                return
            per_epoch = trainer.global_step / max(1, trainer.current_epoch)  # the modules' epochs have equal steps
            for row in done:
                values = {f"epoch/{k}": v for k, v in row.items() if k != "epoch" and _number(v)}
                trainer.loggers[0].log_metrics(values, step=int(round(row["epoch"] * per_epoch)))

    return ReplayHistory()


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def summary(record: dict) -> dict:
    """The final metrics, and the run's place (group, job type, seed) so that `wandb leet inspect --summary`
    names them too."""
    prov, history = record["provenance"], record.get("history") or [{}]
    return {
        **{k: v for k, v in record["metrics"].items() if v is not None},
        "params": prov["params"],
        "train_seconds": history[-1].get("seconds") if isinstance(history[-1], dict) else None,
        "job_type": record["variant"],
        "seed": record["seed"],
    }


def provenance(record: dict) -> dict:
    return {"provenance": {k: v for k, v in record["provenance"].items() if k not in ("steps", "resumed")}}


def curves(extras: dict, prefix: str = "") -> dict[str, tuple[list[str], list[list]]]:
    """Every per-run curve or table a record's extras hold, as W&B table columns and rows: a dict's numeric
    lists of one length side by side (``n`` counts from 1), a list of flat dicts row by row, a numeric list as
    (index, value); nested dicts by path; a dict's scalars (a text sample) as one row."""
    out: dict[str, tuple[list[str], list[list]]] = {}
    scalars = {}
    for key, value in extras.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(curves(value, f"{name}/"))
        elif isinstance(value, list) and value and all(_number(v) or v is None for v in value):
            out[name] = (["n", key], [[i + 1, v] for i, v in enumerate(value)])
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            cols = [c for c in value[0] if all(not isinstance(r.get(c), (dict, list)) for r in value)]
            out[name] = (cols, [[r.get(c) for c in cols] for r in value])
        elif isinstance(value, (str, int, float, bool)) or value is None:
            scalars[key] = value
    # a dict of numeric lists of one length: one table, the lists as columns (the ensemble-size curve)
    lists = {k: v for k, v in extras.items() if isinstance(v, list) and out.get(f"{prefix}{k}", ([""],))[0][0] == "n"}
    lengths = {len(v) for v in lists.values()}
    if prefix and len(lists) > 1 and len(lengths) == 1:
        for k in lists:
            del out[f"{prefix}{k}"]
        n = lengths.pop()
        rows = [[i + 1, *(lists[k][i] for k in lists)] for i in range(n)]
        out[prefix.rstrip("/") or "extras"] = (["n", *lists], rows)
    if scalars and prefix:
        out.setdefault(prefix.rstrip("/"), (list(scalars), [list(scalars.values())]))
    return out


def _log_curves(run, record: dict) -> None:
    import wandb

    known = {"experiment", "profile", "variant", "seed", "metrics", "history", "config", "sets", "provenance"}
    extras = {k: v for k, v in record.items() if k not in known}
    for name, (columns, rows) in curves(extras).items():
        table = wandb.Table(columns=columns, data=rows)
        run.log({f"curves/{name}": table}, commit=False)
        if columns[0] == "n" and len(columns) > 1 and len(rows) > 1:
            run.log({f"curves/{name}/plot": wandb.plot.line(table, "n", columns[1], title=name)}, commit=False)


def finish(logger, record: dict, identity_text: str) -> None:
    """At the run's end: the record's provenance (and the identity the trainer settled on) into the config, its
    metrics and curves into the summary, then close the W&B run."""
    run = logger.experiment
    cell = {**run.config.get("cell", {}), "identity_sha256": hashlib.sha256(identity_text.encode()).hexdigest()}
    run.config.update({**provenance(record), "cell": cell}, allow_val_change=True)
    _log_curves(run, record)
    run.summary.update({**summary(record), "group": run.group})
    run.finish()


# ----------------------------------------------------------------------------- tables
def log_report(exp, profile: str, claims: list, records: list[dict], choice: str) -> Path | None:
    """``repro report``: the table's verdicts and per-variant summary as a W&B run of job type ``report`` in the
    table's group (offline: under the runs folder's report folder). Returns the offline folder, or None."""
    mode = wandb_mode(choice)
    if mode is None or not records:
        return None
    import wandb

    from engine.records import runs_root

    folder = runs_root() / exp.name / profile / "report"
    folder.mkdir(parents=True, exist_ok=True)
    if mode == "offline":
        for old in (folder / "wandb").glob("offline-run-*"):
            shutil.rmtree(old, ignore_errors=True)
    ident = identity(exp.name, profile, "report", 0) | {"name": f"{exp.name}-{profile}-verdicts", "job_type": "report"}
    run = wandb.init(
        **ident,
        dir=str(folder),
        mode=mode,
        settings=_settings(),
        reinit="create_new",
        config={"experiment": exp.name, "profile": profile, "runs": len(records)},
    )
    verdicts = [[c.slide, c.statement, v.status, v.statistic, v.test] for c, v in claims if v.has_runs]
    run.log(
        {
            "verdicts": wandb.Table(columns=["slide", "claim", "verdict", "measured", "test"], data=verdicts),
            "summary": _summary_table(records),
        }
    )
    counts = {s: sum(row[2] == s for row in verdicts) for s in ("supported", "contradicted", "inconclusive")}
    run.summary.update(counts)
    run.finish()
    return folder / "wandb" if mode == "offline" else None


def _summary_table(records: list[dict]):
    """Per variant (and settings): n, and mean and sd of every metric."""
    import statistics

    import wandb

    from engine.evidence import deviation

    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        groups.setdefault((r["variant"], deviation(r)), []).append(r)
    metrics = sorted({m for r in records for m, v in r["metrics"].items() if _number(v)})
    rows = []
    for (variant, dev), rs in groups.items():
        row = [variant, dev or "profile", len(rs)]
        for m in metrics:
            xs = [float(r["metrics"][m]) for r in rs if _number(r["metrics"].get(m))]
            row += [statistics.fmean(xs) if xs else None, statistics.stdev(xs) if len(xs) > 1 else None]
        rows.append(row)
    columns = ["variant", "settings", "n", *(f"{m} {s}" for m in metrics for s in ("mean", "sd"))]
    return wandb.Table(columns=columns, data=rows)
