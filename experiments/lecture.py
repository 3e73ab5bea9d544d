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

from datamodules.errors import ReproError, RunsFailed
from experiments.plan import Launch, RunSpec
from experiments.records import read_record, runs_root, write_atomic
from experiments.spec import Experiment


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


def _verdicts(exp: Experiment, profile: str) -> str:
    from experiments.evidence import evaluate, gather, verdict_counts

    evidence = gather(exp, profile)
    if not evidence.records:
        return "no runs"
    text = verdict_counts(*evaluate(exp, evidence.records, exp.profile(profile).looks))
    return text if evidence.complete else f"{text} ({evidence.problem('incomplete')})"


def _in_process(runs: list[RunSpec], launch: Launch, bar) -> None:
    """An experiment whose profile runs one at a time (its runs take seconds: a process start each would cost
    more) trains in this process, each run's output going to its run.log."""
    import contextlib
    import traceback

    from experiments.runner import run_one

    failed = []
    for spec in runs:
        spec.dir.mkdir(parents=True, exist_ok=True)
        with open(spec.dir / "run.log", "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            try:
                record = run_one(spec, launch)
            except (ReproError, RunsFailed):
                raise
            except Exception:  # a crash of one run: in its log, and the others go on
                traceback.print_exc(file=log)
                record = None
        if record is None:
            failed.append(spec)
            bar.write(f"{spec.label}: FAILED (log: {spec.dir / 'run.log'})")
        bar.update(1)
    if failed:
        raise RunsFailed(f"{len(failed)} run(s) failed: " + ", ".join(s.label for s in failed))


def run_lecture(parts: list[Part], write_previews: bool = True) -> int:
    """Run every part; 0 when every run finished, 1 (after the others ran) when some failed."""
    from tqdm import tqdm

    from experiments.pool import run_children
    from experiments.provenance import git_commit
    from experiments.records import check_identity, identity_text
    from experiments.report import write_report
    from experiments.runner import prepare_data

    git_commit()
    for part in parts:  # every folder's identity first: a conflict stops the command before anything runs
        for s in part.specs:
            launch = part.launch
            identity = identity_text(s.experiment.name, s.profile, s.variant, s.seed, s.config, launch.world_size(),
                                     launch.precision_name())  # fmt: skip
            check_identity(s.dir, identity, say=True)
    pending = {id(p): [s for s in p.specs if read_record(s.dir) is None] for p in parts}
    todo = sum(len(v) for v in pending.values())
    total = sum(len(p.specs) for p in parts)
    print(f"the lecture: {len(parts)} experiments, {total} runs: {total - todo} finished, {todo} to run")
    failures: list[str] = []
    lines = []
    bar = tqdm(total=todo, unit="run", desc="lecture", dynamic_ncols=True, mininterval=1 if sys.stderr.isatty() else 30)
    try:
        for k, part in enumerate(parts, 1):
            runs = pending[id(part)]
            head = f"[{k}/{len(parts)}] {part.exp.name}/{part.profile}: {len(part.specs)} runs, {len(runs)} to run"
            bar.write(head + (f", {part.launch.jobs} at a time" if runs else ""))
            try:
                if runs:
                    prepare_data(runs, part.launch.world_size())
                    if part.launch.jobs == 1 and not part.launch.multi_process:
                        _in_process(runs, part.launch, bar)
                    else:
                        run_children(runs, part.launch, lecture_bar=bar)
            except (RunsFailed, ReproError) as e:
                failures.append(f"{part.exp.name} ({str(e).splitlines()[0]})")
                bar.write(f"{part.exp.name}: {e}")
            if write_previews:
                out = runs_root() / part.exp.name / part.profile / "report"
                try:
                    preview = write_report(part.exp, part.profile, out_dir=out)
                    lines.append(f"| `{part.exp.name}` | {_verdicts(part.exp, part.profile)} | {preview} |")
                except ReproError as e:
                    lines.append(f"| `{part.exp.name}` | {e} | – |")
    finally:
        bar.close()
    if write_previews and lines:
        profile = parts[0].profile if len({p.profile for p in parts}) == 1 else "default"
        index = runs_root() / f"lecture-{profile}.md"
        text = [f"# The lecture at profile {profile} (preview)", "",
                "Citable tables: `repro report --all` (smoke runs never).", "",
                "| experiment | verdicts | preview table |", "|---|---|---|", *lines, ""]  # fmt: skip
        write_atomic(index, "\n".join(text))
        print(f"previews: {index}")
    if failures:
        raise RunsFailed(f"{len(failures)} of {len(parts)} experiments had failed runs: " + "; ".join(failures))
    return 0
