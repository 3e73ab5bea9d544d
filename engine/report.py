"""Run records -> ``results/<name>.md`` + ``.png`` + ``.csv``, the records committed beside them, and the index.

A table is written only on purpose (``repro report``) and only from complete evidence: every (variant, seed)
its profile names must have a finished run whose config is the one the profile resolves to today, else the
report stops with one line naming what is missing (``--partial`` writes it anyway and says "partial: k of n
runs"). The records it used are committed beside it (``results/runs/...``, see ``engine/records.py``),
so a fresh clone rebuilds every table byte for byte, and runs from several machines merge. Smoke runs check
the plumbing and never reach ``results/``. Claims pair only runs of one configuration; runs made with other
settings (``--set`` values, another world size or precision) are shown in rows of their own.
"""

from __future__ import annotations

import csv
import io
import math
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from base.errors import ReproError
from base.files import remove_stale_temp_files, write_atomic
from engine import registration
from engine.claims import percent_metric
from engine.evidence import (
    Evidence,
    deviation,
    evaluate_registered,
    gather,
    main_signature,
    signature,
    verdict_counts,
)
from engine.plots import default_plot, summary_plot
from engine.records import (
    committed_dir,
    committed_records,
    profiles_with_records,
    results_dir,
    runs_root,
    save_committed,
)
from engine.spec import PILOT, Experiment

NOT_CITABLE = ("smoke",)  # profiles whose runs never reach results/


def report_stem(exp: Experiment, profile: str) -> str:
    """File name of a profile's report: ``<name>`` for the experiment's default profile (the one this
    class of machine runs), ``<name>-<profile>`` for the others, so a GPU profile's table sits beside it."""
    return exp.name if profile == exp.default_profile else f"{exp.name}-{profile}"


# ----------------------------------------------------------------------------- formatting
def _scale(metric: str) -> float:
    return 100.0 if percent_metric(metric) else 1.0


def fmt_mean_std(values: list, metric: str) -> str:
    vals = [v * _scale(metric) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not vals:
        return "–"
    mean = statistics.fmean(vals)
    share = set(vals) == {0, 1}  # flags (diverged, ended by a rule) that differ between runs: the mean is a share
    whole = _scale(metric) == 1 and all(float(v).is_integer() for v in vals) and not share  # counts, epochs, ranks
    big = abs(mean) >= 1000  # throughputs: decimals would be noise
    digits = 0 if whole or big or metric in ("epochs", "wall_time") else 3 if metric == "params_m" else 2
    if digits == 2 and 0 < abs(mean) < 0.005:  # a small loss (0.0018) would read 0.00: two significant digits,
        if abs(mean) < 1e-4:  # and rounding noise of an exact result (1e-15) reads as such
            return f"{mean:.1e}" if len(vals) == 1 else f"{mean:.1e} ± {statistics.stdev(vals):.1e}"
        digits = 1 - math.floor(math.log10(abs(mean)))
    if len(vals) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(vals):.{digits}f}"


_TAG = re.compile(r"<(?=[A-Za-z/!?])")  # where HTML would read a tag ('rank <= k' stays as it is)


def md_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(c) -> str:  # a literal | (a norm, ||w||) would end the cell; text from records is input: a newline
        # would end the table (and start a heading), a tag would be HTML
        text = " ".join(str(c).replace("|", "\\|").splitlines())
        return _TAG.sub("&lt;", text)

    out = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(out)


def _uniq(records: list[dict], key) -> str:
    seen = []
    for r in records:
        v = key(r)
        if v not in seen:
            seen.append(v)
    return "; ".join(str(v) for v in seen)


def _provenance(records: list[dict]) -> dict[str, str]:
    def commit(r) -> str:
        return r["provenance"]["commit"][:10] + (" (uncommitted code changes)" if r["provenance"].get("dirty") else "")

    dates = sorted(r["provenance"]["finished"][:10] for r in records)
    data = r"{0[name]} (fingerprint {0[fingerprint]})"
    out = {
        "Hardware": _uniq(records, lambda r: r["provenance"]["hardware"]),
        "Precision": _uniq(records, lambda r: r["provenance"]["precision"]),
        "Data": _uniq(records, lambda r: data.format(r["provenance"]["data"])),
        "Seeds": ", ".join(str(s) for s in sorted({r["seed"] for r in records})),
        "Date": dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}",
        "Commit": _uniq(records, commit),
        "Software": _uniq(records, lambda r: " ".join(f"{k} {v}" for k, v in r["provenance"]["versions"].items())),
    }
    named = [r["provenance"]["cpu_capability"] for r in records if r["provenance"].get("cpu_capability")]
    if named:  # CPU reruns are exact only on the same instruction set (records name it since 2026-12-06)
        older = len(records) - len(named)
        out["Instruction set"] = "; ".join(sorted(set(named))) + (f" ({older} runs predate it)" if older else "")
    on_gpu = [r["provenance"] for r in records if not r["provenance"]["hardware"].startswith("CPU")]
    if stacks := [p["gpu"] for p in on_gpu if p.get("gpu")]:  # GPU reruns are exact only on the same stack
        gpus = {
            f"{g['device']} (compute {g['compute_capability']}), driver {g['driver']}, CUDA {g['cuda']}, "
            f"cuDNN {g['cudnn']}"
            for g in stacks
        }
        older = len(on_gpu) - len(stacks)
        out["GPU stack"] = "; ".join(sorted(gpus)) + (f" ({older} GPU runs predate it)" if older else "")
    elif on_gpu:
        out["GPU stack"] = (
            "not recorded: these GPU runs predate it (2026-12-06); the Software row names the CUDA build of PyTorch"
        )
    deviating = [f"{r['variant']}/s{r['seed']}: {deviation(r)}" for r in records if deviation(r)]
    if deviating:
        out["Other settings"] = f"{len(deviating)} of {len(records)} runs: " + "; ".join(deviating)
    stopped = [f"{r['variant']}/s{r['seed']}" for r in records if r["provenance"].get("stopped_by_time")]
    if stopped:
        out["Stopped by time"] = f"{len(stopped)} of {len(records)} runs (`train.max_minutes`): " + ", ".join(stopped)
    # records made before the runner wrote `stopped_by_time`: under a time cap, whether it stopped them is unknown
    unknown = sorted({_max_minutes(r) for r in records if "stopped_by_time" not in r["provenance"]} - {0})
    if unknown:
        caps = " / ".join(f"{m:g}" for m in unknown)
        out["Stopped by time"] = ((out["Stopped by time"] + "; ") if stopped else "") + (
            f"not recorded by runs made before the records said so; they ran under a cap of {caps} min of training "
            "(`train.max_minutes`), so any of them may have stopped there"
        )
    diverged = [f"{r['variant']}/s{r['seed']}" for r in records if r["metrics"].get("diverged")]
    if diverged:
        out["Diverged"] = (
            f"{len(diverged)} of {len(records)} runs (scores a diverged model cannot give are left out of means): "
            + ", ".join(diverged)
        )
    return out


def _max_minutes(record: dict) -> float:
    return float((record.get("config") or {}).get("train", {}).get("max_minutes") or 0)


def _runs_cell(recs: list[dict]) -> str:
    notes = [f"s{r['seed']} diverged" for r in recs if r["metrics"].get("diverged")]
    notes += [f"s{r['seed']} uncommitted code" for r in recs if r["provenance"].get("dirty")]
    return f"{len(recs)}" + (f" ({'; '.join(notes)})" if notes else "")


def _verdict_rows(claims, regs, profile: str) -> list[list[str]]:
    def status(c, v, r) -> str:
        if not r.counts:  # runs made before the claim stood as it does, or a finding counted already
            why = f"a duplicate of {r.duplicate_of}" if r.duplicate_of else r.status
            return f"**no verdict** ({why}; its test reads {v.status})"
        elsewhere = bool(c.decided_by) and c.decided_by != profile
        return f"**{v.status}**" + (f" (decided only by the `{c.decided_by}` profile: not counted here)" * elsewhere)

    return [
        [c.slide, c.statement, status(c, v, r), v.statistic, v.test, registration.row_text(r)]
        for (c, v), r in zip(claims, regs, strict=True)
    ]


def _check_rows(checks) -> list[list[str]]:
    rows = []
    for c, o in checks:
        result = "no runs" if o.holds is None else "**holds**" if o.holds else "**fails**"
        error = "–" if o.largest_error is None or not math.isfinite(o.largest_error) else f"{o.largest_error:.3g}"
        rows.append([c.slide, c.statement, result, error, o.detail])
    return rows


# ----------------------------------------------------------------------------- the report
@dataclass(frozen=True)
class Written:
    """A table written: its markdown file, and the evidence it was written from (gathered once, for whoever
    reports on it next: the verdicts of a preview, the runs set aside, W&B)."""

    md: Path
    exp: Experiment
    profile: str
    evidence: Evidence


def write_report(
    exp: Experiment,
    profile: str,
    partial: bool = False,
    out_dir: Path | None = None,
    evidence: Evidence | None = None,
) -> Written:
    """Write one profile's table from ``evidence`` (None: gathered here). ``out_dir`` None: the citable table in
    results/ (with its records committed beside it); a folder: a preview there (e.g. under the runs folder),
    partial allowed, no records copied."""
    exp.profile(profile)
    preview = out_dir is not None
    if profile in NOT_CITABLE and not preview:
        raise ReproError(f"{profile} runs check the plumbing only and are never written to results/")
    evidence = evidence or gather(exp, profile)
    records = evidence.records
    label = f"{exp.name} --profile {profile}"
    if not records:
        raise ReproError(f"no finished runs of {label} under {runs_root()} or {committed_dir(exp.name, profile)}")
    if not evidence.complete and not (partial or preview or profile == PILOT):  # a pilot runs what sizing needs
        raise ReproError(evidence.problem(f"table {exp.name}/{profile} not written") + "; run them or pass --partial")
    out_dir = out_dir or results_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(out_dir)  # what a report killed mid-write left
    stem = report_stem(exp, profile)
    lines = render(exp, profile, evidence, stem, preview)
    png = out_dir / f"{stem}.png"
    by_variant: dict[str, list[dict]] = defaultdict(list)
    for r in records:  # plots do arithmetic: a value JSON could not hold (null: NaN or inf) is a NaN there
        metrics = {k: math.nan if v is None else v for k, v in r["metrics"].items()}
        history = [{k: math.nan if v is None else v for k, v in row.items()} for row in r.get("history", [])]
        by_variant[r["variant"]].append({**r, "metrics": metrics, "history": history})
    curves = any(r["history"] for recs in by_variant.values() for r in recs)
    (exp.plot or default_plot if curves else summary_plot)(exp, dict(by_variant), png, profile)
    write_atomic(out_dir / f"{stem}.csv", table_csv(records, profile))
    write_atomic(out_dir / f"{stem}.md", "\n".join(lines))
    if not preview:
        save_committed(exp.name, profile, records)
    return Written(out_dir / f"{stem}.md", exp, profile, evidence)


def write_preview(exp: Experiment, profile: str) -> Written:
    """The preview table of a profile's runs so far, under the runs folder (runs never write tracked files;
    the citable table is written on purpose, by ``repro report``)."""
    return write_report(exp, profile, out_dir=runs_root() / exp.name / profile / "report")


def render(exp: Experiment, profile: str, evidence: Evidence, stem: str, preview: bool) -> list[str]:
    """The table's markdown lines, top to bottom: the head, the verdicts, the checks, the experiment's tables,
    its own sections, the variants, the plot and where the per-run data is."""
    records = evidence.records
    by_variant: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_variant[r["variant"]].append(r)
    lines = _head(exp, profile, evidence, preview)
    lines += _verdicts(exp, profile, records)
    lines += _tables(exp, profile, records)
    lines += [
        "Mean ± standard deviation over seeds. Errors in %, gaps in percentage points. A published figure stands "
        "beside a measurement only where the settings are comparable; elsewhere the cell says why not.",
        "",
    ]
    if exp.sections:
        lines += exp.sections(dict(by_variant), profile)
    variants = [[f"`{v.name}`", v.description] for v in exp.variants if v.name in by_variant]
    lines += ["## Variants", "", md_table(["variant", "what changes"], variants), ""]
    lines += [
        "## Plot",
        "",
        f"![{exp.name}]({stem}.png)",
        "",
        "## Per-run data",
        "",
        f"Every run's final metrics and provenance: [{stem}.csv]({stem}.csv); every run's whole record (config, "
        f"`--set` values, per-epoch history, provenance): `results/runs/{exp.name}/{profile}/<variant>/seed<k>.json`. "
        f"Compare the runs in Weights & Biases: project `lecture7-repro`, group `{exp.name}/{profile}`.",
        "",
    ]
    return lines


def _head(exp: Experiment, profile: str, evidence: Evidence, preview: bool) -> list[str]:
    """Title, claim, and the table of what the runs were: profile, provenance, what sized it, how to rerun."""
    records, prof = evidence.records, exp.profile(profile)
    source = f"`results/runs/{exp.name}/{profile}/`" if not preview else "the runs folder (a preview, not citable)"
    lines = [
        f"# {exp.title} (slide {exp.slides})",
        "",
        f"> **Lecture claim.** {exp.claim}.",
        "",
        f"_Generated by `repro report {exp.name} --profile {profile}` from the run records in {source}; do not "
        "edit by hand._",
        "",
    ]
    info = {"Profile": f"`{profile}`: {prof.description}"}
    if not evidence.complete:
        info["PARTIAL"] = evidence.problem(f"{len(records)} of {len(evidence.expected)} runs")
    info.update(_provenance(records))
    if prof.power:
        info["Sized by"] = prof.power
    seeds = len({r["seed"] for r in records})
    info["Rerun"] = (
        f"the table: `repro run {exp.name} --profile {profile} --seeds {seeds}`, then `repro report {exp.name} "
        f"--profile {profile}`; one cell: `repro run {exp.name} --profile {profile} --variant V --seed K` (with the "
        "run's `--set` values, if any, from the CSV)"
    )
    return lines + [md_table(["", ""], [[f"**{k}**", v] for k, v in info.items()]), ""]


def _verdicts(exp: Experiment, profile: str, records: list[dict]) -> list[str]:
    """The claims' verdicts (those without runs here named beneath), then the checks."""
    if profile == PILOT:
        return [
            "## Verdicts",
            "",
            "None: a pilot sizes a table (its runs are on seeds no table uses, and its design may still change); "
            "the verdicts are the table's.",
            "",
        ]
    claims, regs, checks = evaluate_registered(exp, records)
    lines = []
    if deviating := [r for r in records if signature(r) != main_signature(records)]:
        lines += [
            f"Verdicts pair runs of one configuration only: {len(deviating)} run(s) with other settings are "
            "shown in rows of their own and left out of the verdicts.",
            "",
        ]
    lines += ["## Verdicts", ""]
    tested = [(c, v, r) for (c, v), r in zip(claims, regs, strict=True) if v.has_runs]
    if tested:
        rows = _verdict_rows([(c, v) for c, v, _ in tested], [r for _, _, r in tested], profile)
        lines += [
            "Registered: whether every run the verdict pairs was made with the claim as it stands (its fingerprint "
            "in the run's record); a claim changed after its runs, or runs made before records carried "
            "fingerprints, gets no verdict: its row shows what the test reads, and the index never counts it "
            "(`engine/registration.py`). Rerunning the table with the claim as it stands registers it.",
            "",
            md_table(["slide", "claim", "verdict", "measured", "test", "registered"], rows),
            "",
        ]
    if untested := [c for c, v in claims if not v.has_runs]:
        lines += [
            "No verdict here, for want of runs of their variants in this table (another of the experiment's "
            "tables may run them: see the index, results/README.md): "
            + "; ".join(f"slide {c.slide}: {c.statement}" for c in untested)
            + ".",
            "",
        ]
    if checks:
        lines += [
            "## Checks",
            "",
            "Exact identities, and facts that hold by construction or arithmetic, that every run must show (not "
            "verdicts: each holds, up to float rounding, or fails; for a fact of each seed the error is its failing "
            "seeds).",
            "",
            md_table(["slide", "identity", "result", "largest error", "measured"], _check_rows(checks)),
            "",
        ]
    return lines


def _tables(exp: Experiment, profile: str, records: list[dict]) -> list[str]:
    main = main_signature(records)
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)  # (variant, deviation) -> runs
    for r in records:
        groups[(r["variant"], "" if signature(r) == main else deviation(r))].append(r)
    lines, shown = [], 0
    for table in exp.tables:
        rows_of = [k for v in table.variants for k in sorted(groups) if k[0] == v]
        if not rows_of:
            continue
        shown += 1
        present = {v for v, _ in rows_of}
        refs = [r for r in exp.references if r.variant in present and r.metric in table.metrics]
        header = ["variant", "runs"] + [exp.metrics.get(m, m) for m in table.metrics]
        header += ["published"] if refs else []
        rows = []
        for variant, dev in rows_of:
            recs = groups[(variant, dev)]
            row = [f"`{variant}`" + (f" ({dev})" if dev else ""), _runs_cell(recs)]
            # every run, diverged ones included: their undefined scores are NaN in the record, and drop out of
            # the mean; what stays defined (the share that diverged, when, how fast) counts every run
            row += [fmt_mean_std([r["metrics"].get(m) for r in recs], m) for m in table.metrics]
            if refs:
                row.append("; ".join(ref.cell(profile) for ref in refs if ref.variant == variant))
            rows.append(row)
        lines += [f"## Table {shown}: {table.title}", "", md_table(header, rows), ""]
        if table.caption_for(profile):
            lines += [table.caption_for(profile), ""]
    return lines


# Per-run CSV columns: these identify and describe the run; every other column is a final metric.
_KEY_COLUMNS = ("experiment", "profile", "variant", "seed")
_INFO_COLUMNS = (
    "sets",
    "dirty",
    "devices",
    "precision",
    "threads",
    "params",
    "hardware",
    "data",
    "data_fingerprint",
    "commit",
    "finished",
)


def table_csv(records: list[dict], profile: str) -> str:
    """One row per run. The profile column is the report's (the folder the records were read from), which a
    record made under an earlier name of the same settings may not carry."""
    metrics = sorted({m for r in records for m in r["metrics"]})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*_KEY_COLUMNS, *metrics, *_INFO_COLUMNS])
    for r in records:
        p = r["provenance"]
        sets = " ".join(f"{k}={v}" for k, v in sorted((r.get("sets") or {}).items()))
        threads = (r.get("config") or {}).get("train", {}).get("threads", p.get("threads", ""))
        info = (
            sets,
            int(bool(p.get("dirty"))),
            p.get("devices", 1),
            p["precision"],
            threads,
            p["params"],
            p["hardware"],
            p["data"]["name"],
            p["data"]["fingerprint"],
            p["commit"],
            p["finished"],
        )
        keys = {**r, "profile": profile}
        values = [r["metrics"].get(m) for m in metrics]
        w.writerow([*(keys[k] for k in _KEY_COLUMNS), *("" if v is None else v for v in values), *info])
    return buf.getvalue()


# ----------------------------------------------------------------------------- many tables
def citable_profiles(exp: Experiment) -> list[str]:
    """Profiles of ``exp`` with records (committed or local), smoke excluded, in the experiment's order."""
    have = set(profiles_with_records(exp.name))
    return [p.name for p in exp.profiles if p.name in have and p.name not in NOT_CITABLE]


def write_all(experiments: list[Experiment], partial: bool = False) -> list[Written]:
    """Every citable table, after checking that all are complete (nothing is written when one is not)."""
    todo = [(e, p, gather(e, p)) for e in experiments for p in citable_profiles(e)]
    if not partial:
        for exp, profile, evidence in todo:
            if not evidence.complete and profile != PILOT:
                raise ReproError(
                    evidence.problem(f"table {exp.name}/{profile} not written") + "; run them or pass "
                    "--partial (no table was written)"
                )
    return [write_report(exp, p, partial, evidence=ev) for exp, p, ev in todo]


def _index_tables(exp: Experiment, out_dir: Path) -> tuple[dict, list, list]:
    """One experiment's written tables (pilots aside): per profile its claims' (verdict, registration), in the
    experiment's order; the index rows; the default table's check outcomes."""
    tables, rows, checked = {}, [], []
    for prof in exp.profiles:
        stem = report_stem(exp, prof.name)
        records = committed_records(exp.name, prof.name)
        if prof.name == PILOT or not (out_dir / f"{stem}.md").is_file() or not records:
            continue
        claims, regs, checks = evaluate_registered(exp, list(records.values()))
        tables[prof.name] = [(v, r) for (_, v), r in zip(claims, regs, strict=True)]
        if prof.name == exp.default_profile:
            checked += [outcome.holds for _, outcome in checks if outcome.holds is not None]
        hardware = _uniq(list(records.values()), lambda r: r["provenance"]["hardware"].split(",")[0])
        verdicts = verdict_counts(claims, checks, regs)
        rows.append([f"`{exp.name}`", exp.slides, exp.claim, verdicts, f"[{stem}.md]({stem}.md)", prof.name, hardware])
    return tables, rows, checked


def write_index(experiments: list[Experiment], out_dir: Path | None = None) -> Path:
    """results/README.md: every experiment with its claim, its tables and their verdicts, from the committed
    records (what the tables were written from)."""
    out_dir = out_dir or results_dir()
    rows, counted, checked, waiting = [], [], [], 0
    for exp in experiments:
        tables, exp_rows, exp_checked = _index_tables(exp, out_dir)
        rows += exp_rows or [[f"`{exp.name}`", exp.slides, exp.claim, "not run yet", "–", "–", "–"]]
        checked += exp_checked
        for i, pair in enumerate(tables.get(exp.default_profile, [])):
            if by := exp.claims[i].decided_by:  # counted from its own profile's table only
                pair = tables[by][i] if by in tables else None
                waiting += pair is None or not pair[0].has_runs
            elif not pair[0].has_runs:  # the default profile runs none of its variants: the first table that does
                pair = next((vs[i] for vs in tables.values() if vs[i][0].has_runs), pair)
            counted += [pair] if pair is not None and pair[0].has_runs else []
    decided = sum(v.status != "inconclusive" and r.counts for v, r in counted)
    unregistered = sum(not r.counts for _, r in counted)
    total = len(counted)
    share = f"{decided} of {total} ({100 * decided / total:.0f}%)" if total else "none"
    conservative = (
        f"; counted as undecided, they make it {decided} of {total + waiting} "
        f"({100 * decided / (total + waiting):.1f}%)"
        if waiting and total
        else ""
    )
    text = "\n".join(
        [
            "# Results",
            "",
            "One table per experiment and profile, each written by `repro report <name> --profile <profile>` from "
            "the run records committed beside it in `runs/`; `repro report --all` rebuilds them all, and this index, "
            "from those records alone.",
            "",
            f"Verdicts decided (supported or contradicted, 3 or more seeds, and registered before their runs) in "
            f"the default tables: {share}; {unregistered} of them were not registered before their runs (changed "
            "after, or runs older than registration) and count as undecided whatever they say. A claim that its "
            "experiment's default profile does not run counts in the first table that runs it; "
            f"{waiting} claim(s) that only a larger profile can decide (`decided_by`, e.g. on a GPU) wait for its "
            f"runs and are not counted{conservative}.",
            "",
            f"Checks (exact identities and facts that hold by construction or arithmetic, listed apart from the "
            f"verdicts and never counted with them) in the default tables: {sum(checked)} of {len(checked)} hold.",
            "",
            md_table(["experiment", "slides", "lecture claim", "verdicts", "table", "profile", "hardware"], rows),
            "",
            "**Citing a table.** Name the file, its profile and the commits in its header (e.g. "
            "`results/augmentation.md`, quick profile, commit `abc1234`). Every cell traces to its runs: the CSV "
            "beside each table lists one row per run, and `runs/<experiment>/<profile>/<variant>/seed<k>.json` holds "
            "that run's whole record. To rerun one cell, check out the commit and run the command in the table's "
            "Rerun row.",
            "",
        ]
    )
    path = out_dir / "README.md"
    write_atomic(path, text)
    return path
