"""``repro run --all``: every experiment of the lecture at one profile, in slide order, in one command.

Each experiment's runs go through the usual machinery (finished runs skipped, interrupted ones resumed, the
profile's own number of runs at once: child processes, or this process for a profile that runs one at a
time); every run's output goes to its ``run.log``, and this process shows one progress bar over the whole
lecture, in runs. An experiment whose
runs fail does not stop the others: the command ends with one line naming what failed (exit code 1). Each
experiment gets its preview table under the runs folder, and ``runs/lecture-<profile>.md`` lists them with
their verdicts; the citable tables are written on purpose afterwards, by ``repro report --all``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

from base.errors import ReproError, RunsFailed
from base.files import write_atomic
from engine.evidence import evaluate_registered, verdict_counts
from engine.launch import Launch
from engine.orchestrate import launch_runs, submit_runs, unfinished
from engine.plan import RunSpec
from engine.provenance import git_commit
from engine.records import runs_root
from engine.report import write_preview
from engine.slurm import SlurmOptions
from engine.spec import Experiment


@dataclass
class Part:
    exp: Experiment
    profile: str
    specs: list[RunSpec]
    launch: Launch


def plan_lecture(experiments: list[Experiment], profile: str | None, plan_one: Callable) -> list[Part]:
    """One part per experiment that has the profile (None: each experiment's default profile)."""
    if profile and not any(profile == p.name for exp in experiments for p in exp.profiles):
        raise ReproError(f"no experiment has a profile {profile!r}")
    parts = []
    for exp in experiments:
        name = profile or exp.default_profile
        if name not in [p.name for p in exp.profiles]:
            print(f"{exp.name}: no profile {name!r}, skipped")
            continue
        specs, launch = plan_one(exp, name)
        parts.append(Part(exp, name, specs, launch))
    return parts


def run_lecture(parts: list[Part], write_previews: bool = True, slurm: SlurmOptions | None = None) -> int:
    """Run every part; 0 when every run finished, 1 (after the others ran) when some failed. ``slurm``: every
    pending run of the lecture as one SLURM job array instead (previews after ``--wait`` only)."""
    git_commit()
    # every folder's identity first: a conflict stops the command before anything runs
    pending = {id(p): unfinished(p.specs, p.launch) for p in parts}
    todo = sum(len(v) for v in pending.values())
    total = sum(len(p.specs) for p in parts)
    print(f"the lecture: {len(parts)} experiments, {total} runs: {total - todo} finished, {todo} to run")
    if slurm is not None:
        submit_runs([(s, p.launch) for p in parts for s in pending[id(p)]], slurm, "repro-lecture")
        if write_previews and slurm.wait:
            _write_lecture_index(parts, [_preview_row(part) for part in parts])
        return 0
    failures = _run_parts(parts, pending, write_previews)
    if failures:
        raise RunsFailed(f"{len(failures)} of {len(parts)} experiments had failed runs: " + "; ".join(failures))
    return 0


def _run_parts(parts: list[Part], pending: dict, write_previews: bool) -> list[str]:
    """Each part's pending runs in turn, under one progress bar over the lecture; the failures, one a part."""
    from tqdm import tqdm

    todo = sum(len(v) for v in pending.values())
    failures: list[str] = []
    rows = []
    bar = tqdm(total=todo, unit="run", desc="lecture", dynamic_ncols=True, mininterval=1 if sys.stderr.isatty() else 30)
    try:
        for k, part in enumerate(parts, 1):
            runs = pending[id(part)]
            head = f"[{k}/{len(parts)}] {part.exp.name}/{part.profile}: {len(part.specs)} runs, {len(runs)} to run"
            bar.write(head + (f", {part.launch.jobs} at a time" if runs else ""))
            try:
                if runs:
                    launch_runs(runs, part.launch, bar)
            except (RunsFailed, ReproError) as e:
                failures.append(f"{part.exp.name} ({str(e).splitlines()[0]})")
                bar.write(f"{part.exp.name}: {e}")
            if write_previews:
                rows.append(_preview_row(part))
    finally:
        bar.close()
    if write_previews and rows:
        _write_lecture_index(parts, rows)
    return failures


def _preview_row(part: Part) -> str:
    """The lecture index's row of one experiment: its verdicts so far and its preview table."""
    try:
        written = write_preview(part.exp, part.profile)
    except ReproError as e:
        return f"| `{part.exp.name}` | {e} | – |"
    evidence = written.evidence
    claims, regs, checks = evaluate_registered(part.exp, evidence.records)
    text = verdict_counts(claims, checks, regs)
    text = text if evidence.complete else f"{text} ({evidence.problem('incomplete')})"
    return f"| `{part.exp.name}` | {text} | {written.md} |"


def _write_lecture_index(parts: list[Part], rows: list[str]) -> None:
    profile = parts[0].profile if len({p.profile for p in parts}) == 1 else "default"
    index = runs_root() / f"lecture-{profile}.md"
    text = [
        f"# The lecture at profile {profile} (preview)",
        "",
        "Citable tables: `repro report --all` (smoke runs never).",
        "",
        "| experiment | verdicts | preview table |",
        "|---|---|---|",
        *rows,
        "",
    ]
    write_atomic(index, "\n".join(text))
    print(f"previews: {index}")
