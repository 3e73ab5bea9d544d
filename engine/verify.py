"""``repro verify NAME --profile P --variant V --seed K``: rerun one committed cell in a scratch folder and say how
its numbers compare with the committed record's.

- **exact**: every metric equals the committed one (timings aside): the same code on the same kind of machine
  (the same CPU instruction set, or the same GPU, CUDA and cuDNN) gives the same numbers.
- **within seed noise**: some differ, each by at most twice the cell's spread over the table's seeds (the standard
  deviation of that variant's committed runs): another kind of machine, or code that moved, within what a
  different seed would move.
- **outside**: a metric moved by more than that (exit code 1).

The rerun uses the record's own settings (``--set`` values, precision) and trains in a temporary folder that is
removed afterwards: nothing is written under ``results/`` or the runs folder.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import tempfile

from base.errors import ReproError

TIMING = ("time", "second")  # metrics that measure the machine: wall_time, seconds, tokens_per_second


def add_parser(sub) -> None:
    p = sub.add_parser(
        "verify",
        help="rerun one committed cell in a scratch folder: exact, within seed noise, or "
        "outside (exit 1); writes nothing",
    )
    p.add_argument("name", help="the experiment")
    p.add_argument("--profile", help="default: the experiment's, usually quick")
    p.add_argument("--variant", required=True)
    p.add_argument("--seed", type=int, required=True)


def _comparable(metrics: dict) -> dict[str, float | None]:
    out = {}
    for k, v in metrics.items():
        if any(t in k for t in TIMING) or isinstance(v, bool) or not isinstance(v, (int, float, type(None))):
            continue
        out[k] = None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
    return out


def compare(committed: dict, rerun: dict, others: list[dict]) -> tuple[str, list[str]]:
    """('exact' | 'within seed noise' | 'outside', one line per differing metric). ``others``: the committed runs
    of the same variant (every seed), whose spread is the yardstick."""
    old, new = _comparable(committed["metrics"]), _comparable(rerun["metrics"])
    differ = sorted(k for k in old if old[k] != new.get(k))
    if not differ:
        return "exact", []
    lines, outside = [], False
    for k in differ:
        a, b = old[k], new.get(k)
        seeds = [x for r in others if (x := _comparable(r["metrics"]).get(k)) is not None]
        sd = statistics.stdev(seeds) if len(seeds) > 1 else 0.0
        if a is None or b is None:
            lines.append(f"  {k}: {a} committed, {b} now (one of them undefined)")
            outside = True
            continue
        ratio = abs(b - a) / sd if sd > 0 else math.inf
        outside |= ratio > 2
        yardstick = f"sd over {len(seeds)} seeds {sd:.4g}: {ratio:.1f} sd" if sd > 0 else "no spread over seeds"
        lines.append(f"  {k}: {a:.6g} committed, {b:.6g} now (difference {b - a:+.4g}; {yardstick})")
    return ("outside" if outside else "within seed noise"), lines


def _committed_cell(exp, profile: str, variant: str, seed: int) -> tuple[str, dict, dict]:
    """(the profile whose table holds the cell, that table's committed records, the cell's record); one line and
    exit 2 where there is none. A seed of the default profile's pilot is that profile's settings run on a seed its
    table does not use: the pilot's record is the cell (the pilot runs exactly the default profile's settings)."""
    from engine.records import committed_records
    from engine.spec import PILOT

    records = committed_records(exp.name, profile)
    committed = records.get((variant, seed))
    if committed is not None:
        return profile, records, committed
    seeds = exp.profile(profile).seed_list
    span = f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else f"{seeds[0]}"
    where = f"the table's seeds are {span}" if len(seeds) > 1 else f"its seed is {span}"
    pilot = committed_records(exp.name, PILOT) if profile != PILOT else {}
    if (variant, seed) in pilot:
        if profile == exp.default_profile:
            print(
                f"seed {seed} is not one of the {profile} table's seeds ({span}): the "
                f"{profile} profile's settings ran it as the {PILOT}, whose committed record is the cell"
            )
            return PILOT, pilot, pilot[(variant, seed)]
        where += f"; seed {seed} is a pilot's (of the {exp.default_profile} profile): add --profile {PILOT}"
    raise ReproError(
        f"no committed record of {exp.name} --profile {profile} --variant {variant} --seed {seed} ({where})"
    )


def cmd_verify(args: argparse.Namespace) -> int:
    from engine.launch import Launch
    from engine.orchestrate import run_all
    from engine.plan import plan
    from engine.provenance import cpu_capability, git_commit
    from engine.records import read_record
    from engine.registry import get

    exp = get(args.name)
    profile = args.profile or exp.default_profile
    exp.profile(profile)
    exp.variant(args.variant)
    profile, records, committed = _committed_cell(exp, profile, args.variant, args.seed)
    prov = committed["provenance"]
    if prov.get("devices", 1) != 1:
        raise ReproError(f"that cell was made with {prov['devices']} processes: verify reruns single-process cells")
    scratch = tempfile.mkdtemp(prefix="repro-verify-")
    before = os.environ.get("REPRO_RUNS_DIR")
    os.environ["REPRO_RUNS_DIR"] = scratch  # the rerun's folder, and its children's
    try:
        specs = plan(exp, profile, [args.variant], [args.seed], committed.get("sets") or {})
        run_all(specs, Launch(precision=str(prov.get("precision") or "32-true"), wandb="off", jobs=1))
        rerun = read_record(specs[0].dir)
    finally:
        if before is None:
            os.environ.pop("REPRO_RUNS_DIR", None)
        else:
            os.environ["REPRO_RUNS_DIR"] = before
        shutil.rmtree(scratch, ignore_errors=True)
    if rerun is None:
        raise ReproError("the rerun left no record")
    others = [r for (v, _), r in records.items() if v == args.variant]
    outcome, lines = compare(committed, rerun, others)
    head, _ = git_commit()
    print(
        f"verify {exp.name}/{profile}/{args.variant}/seed{args.seed}: committed at {prov['commit'][:10]} on "
        f"{prov['hardware']} (instruction set {prov.get('cpu_capability', 'not recorded')}); rerun at "
        f"{head[:10]} on {rerun['provenance']['hardware']} (instruction set {cpu_capability()})"
    )
    for who, stack in (("committed", prov.get("gpu")), ("rerun", rerun["provenance"].get("gpu"))):
        if stack:  # a GPU rerun is exact only on the same device, driver, CUDA and cuDNN
            print(f"  {who} on the GPU stack " + ", ".join(f"{k} {v}" for k, v in stack.items()))
    if head != prov["commit"]:
        print(f"  the code here is not the record's commit: `git checkout {prov['commit'][:10]}` reruns it as made")
    n = len(_comparable(committed["metrics"]))
    print(
        f"{outcome}: "
        + ("every metric equals the committed record's" if not lines else f"{len(lines)} of {n} metrics differ")
        + f" ({n} compared, timings aside)"
    )
    for line in lines:
        print(line)
    return 1 if outcome == "outside" else 0
