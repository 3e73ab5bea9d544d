"""Run records -> ``results/<name>.md`` + ``<name>.png`` + ``<name>.csv``, and the results index.

Everything here is computed from the run records (``record.json``) of one experiment and profile;
published figures come from the experiment's references and are always labelled as such.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import os
import statistics
from collections import defaultdict
from pathlib import Path

from experiments.runner import read_record, runs_root, write_atomic
from experiments.spec import Experiment, ReproError, Results

PROFILE_ORDER = ("full", "quick", "smoke")  # the report picks the largest profile that has runs


def results_dir() -> Path:
    return Path(os.environ.get("REPRO_RESULTS_DIR", "results"))


def load_records(exp: Experiment, profile: str) -> list[dict]:
    base = runs_root() / exp.name / profile
    records = [read_record(p.parent) for p in sorted(base.glob("*/seed*/record.json"))]
    return sorted((r for r in records if r), key=lambda r: (r["variant"], r["seed"]))


def profiles_with_runs(exp: Experiment) -> list[str]:
    return [p.name for p in exp.profiles if any((runs_root() / exp.name / p.name).glob("*/seed*/record.json"))]


def choose_profile(exp: Experiment, profile: str | None) -> str:
    if profile:
        exp.profile(profile)
        return profile
    have = profiles_with_runs(exp)
    for name in PROFILE_ORDER:
        if name in have:
            return name
    if have:
        return have[0]
    raise ReproError(f"no finished runs of {exp.name} under {runs_root()}; run `repro run {exp.name}` first")


def report_stem(exp: Experiment, profile: str) -> str:
    """File name of a profile's report: ``<name>`` for the experiment's default profile (the one this
    class of machine runs), ``<name>-<profile>`` for the others, so a GPU profile's table sits beside it."""
    return exp.name if profile == exp.default_profile else f"{exp.name}-{profile}"


def results_of(records: list[dict]) -> Results:
    values: dict = defaultdict(lambda: defaultdict(dict))
    for r in records:
        for metric, v in r["metrics"].items():
            values[r["variant"]][metric][r["seed"]] = v
    return Results({k: dict(v) for k, v in values.items()})


# ----------------------------------------------------------------------------- formatting
def _scale(metric: str) -> float:
    """Errors, gaps and accuracies (``*_acc``, ``*_exact``) are stored as fractions and shown in %."""
    return 100.0 if metric.endswith(("error", "_acc", "_exact")) or metric == "gap" else 1.0


def fmt_mean_std(values: list[float], metric: str) -> str:
    vals = [v * _scale(metric) for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return "–"
    whole = _scale(metric) == 1 and all(float(v).is_integer() for v in vals)  # counts, epochs, ranks
    mean = statistics.fmean(vals)
    big = abs(mean) >= 1000  # throughputs: decimals would be noise
    digits = 0 if whole or big or metric in ("epochs", "wall_time") else 3 if metric == "params_m" else 2
    if len(vals) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(vals):.{digits}f}"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(c) -> str:  # a literal | (a norm, ||w||) would end the cell
        return str(c).replace("|", "\\|")

    out = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(out)


def _provenance(records: list[dict]) -> dict[str, str]:
    def uniq(key) -> str:
        seen = []
        for r in records:
            v = key(r)
            if v not in seen:
                seen.append(v)
        return "; ".join(str(v) for v in seen)

    commits = uniq(
        lambda r: r["provenance"]["commit"][:10] + (" (uncommitted changes)" if r["provenance"]["dirty"] else "")
    )
    dates = sorted(r["provenance"]["finished"][:10] for r in records)
    out = {
        "Hardware": uniq(lambda r: r["provenance"]["hardware"]),
        "Precision": uniq(lambda r: r["provenance"]["precision"]),
        "Data": uniq(
            lambda r: f"{r['provenance']['data']['name']} (fingerprint {r['provenance']['data']['fingerprint']})"
        ),
        "Seeds": ", ".join(str(s) for s in sorted({r["seed"] for r in records})),
        "Date": dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}",
        "Commit": commits,
        "Software": uniq(lambda r: " ".join(f"{k} {v}" for k, v in r["provenance"]["versions"].items())),
    }
    # what the profile alone does not say: `--set` values given on top of it, and runs cut short by a time cap
    sets = uniq(lambda r: " ".join(f"{k}={v}" for k, v in sorted(r.get("sets", {}).items())) or "none")
    if sets != "none":
        out["Overrides (`--set`)"] = sets
    stopped = [f"{r['variant']}/s{r['seed']}" for r in records if r["provenance"].get("stopped_by_time")]
    if stopped:
        out["Stopped by time"] = f"{len(stopped)} of {len(records)} runs (`train.max_minutes`): " + ", ".join(stopped)
    return out


# ----------------------------------------------------------------------------- the report
def write_report(exp: Experiment, profile: str | None = None, out_dir: Path | None = None) -> Path:
    out_dir = out_dir or results_dir()
    profile = choose_profile(exp, profile)
    records = load_records(exp, profile)
    if not records:
        raise ReproError(f"no finished runs of {exp.name} with profile {profile} under {runs_root()}")
    results = results_of(records)
    prof = exp.profile(profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_variant: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_variant[r["variant"]].append(r)

    lines = [
        f"# {exp.title} (slide {exp.slides})",
        "",
        f"> **Lecture claim.** {exp.claim}.",
        "",
        "_Generated by `repro report " + exp.name + "` from the run records; do not edit by hand._",
        "",
    ]
    info = {
        "Profile": f"`{profile}`: {prof.description}",
        **_provenance(records),
        "Rerun": f"`repro run {exp.name} --profile {profile} --seeds {len({r['seed'] for r in records})}`",
    }
    lines += [_md_table(["", ""], [[f"**{k}**", v] for k, v in info.items()]), ""]

    lines += ["## Verdicts", ""]
    rows = []
    for claim in exp.claims:
        v = claim.check(results)
        rows.append(
            [claim.slide, claim.statement, f"**{v.status}**" + (" (weak: few seeds)" if v.weak else ""), v.statistic]
        )
    lines += [_md_table(["slide", "claim", "verdict", "measured"], rows), ""]

    tables = exp.tables or ()
    shown = 0
    for table in tables:
        present = [v for v in table.variants if v in by_variant]
        if not present:
            continue
        shown += 1
        refs = [r for r in exp.references if r.variant in present and r.metric in table.metrics]
        header = (
            ["variant", "runs"]
            + [exp.metrics.get(m, m) for m in table.metrics]
            + (
                [f"published ({', '.join(sorted({exp.metrics.get(r.metric, r.metric) for r in refs}))})"]
                if refs
                else []
            )
        )
        trows = []
        for name in present:
            recs = by_variant[name]
            row = [f"`{name}`", str(len(recs))]
            row += [fmt_mean_std([r["metrics"].get(m) for r in recs], m) for m in table.metrics]
            if refs:
                row.append("; ".join(f"{r.value:g} ({r.source})" for r in refs if r.variant == name) or "")
            trows.append(row)
        lines += [f"## Table {shown}: {table.title}", "", _md_table(header, trows), ""]
        if table.caption:
            lines += [table.caption, ""]
    lines += [
        "Mean ± standard deviation over seeds. Errors in %, gap in percentage points. Published figures are "
        "quoted from the papers for comparison, never measured here; they use the paper's full recipe and data.",
        "",
    ]

    lines += [
        "## Variants",
        "",
        _md_table(
            ["variant", "what changes"], [[f"`{v.name}`", v.description] for v in exp.variants if v.name in by_variant]
        ),
        "",
    ]
    stem = report_stem(exp, profile)
    png = out_dir / f"{stem}.png"
    (exp.plot or default_plot)(exp, by_variant, png, profile)
    lines += ["## Plot", "", f"![{exp.name}]({png.name})", ""]
    csv_path = out_dir / f"{stem}.csv"
    write_atomic(csv_path, _csv(records, profile))
    lines += [
        "## Per-run data",
        "",
        f"Every run's final metrics and provenance: [{csv_path.name}]({csv_path.name}). "
        f"Compare the runs in Weights & Biases: project `lecture7-repro`, group `{exp.name}/{profile}`.",
        "",
    ]
    md = out_dir / f"{stem}.md"
    write_atomic(md, "\n".join(lines))
    return md


# Per-run CSV columns: these identify and describe the run; every other column is a final metric.
_KEY_COLUMNS = ("experiment", "profile", "variant", "seed")
_INFO_COLUMNS = ("params", "hardware", "precision", "data", "data_fingerprint", "commit", "finished")


def _csv(records: list[dict], profile: str) -> str:
    """One row per run. The profile column is the report's (the folder the records were read from), which a
    record made under an earlier name of the same settings may not carry."""
    metrics = sorted({m for r in records for m in r["metrics"]})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*_KEY_COLUMNS, *metrics, *_INFO_COLUMNS])
    for r in records:
        p = r["provenance"]
        info = (p["params"], p["hardware"], p["precision"], p["data"]["name"], p["data"]["fingerprint"], p["commit"],
                p["finished"])  # fmt: skip
        keys = {**r, "profile": profile}
        w.writerow([*(keys[k] for k in _KEY_COLUMNS), *(r["metrics"].get(m, "") for m in metrics), *info])
    return buf.getvalue()


# ----------------------------------------------------------------------------- plots
def pyplot():
    """matplotlib.pyplot with a file-only backend (plots are written by headless runs too)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    """Write the figure through a temporary file, so an interrupted report never leaves half a PNG."""
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.png")
    fig.savefig(tmp, dpi=100)
    pyplot().close(fig)
    tmp.replace(path)


def default_plot(exp: Experiment, by_variant: dict[str, list[dict]], path: Path, profile: str) -> None:
    """One row per table: validation error per epoch (mean over seeds), and the change in test error of
    each treatment against its baseline, seed by seed (paired, as the verdicts are)."""
    plt = pyplot()

    tables = [t for t in exp.tables if any(v in by_variant for v in t.variants)]
    rows = [(t.title, [v for v in t.variants if v in by_variant], t.pairs) for t in tables] or [
        (exp.title, list(by_variant), ())
    ]
    fig, axes = plt.subplots(len(rows), 2, figsize=(11, 4 * len(rows)), squeeze=False)
    for (title, names, pairs), (curves, change) in zip(rows, axes, strict=True):
        for name in names:
            recs = by_variant[name]
            epochs = min(len(r["history"]) for r in recs)
            if epochs and "val_error" in recs[0]["history"][0]:
                curve = [statistics.fmean(r["history"][e]["val_error"] * 100 for r in recs) for e in range(epochs)]
                curves.plot(range(1, epochs + 1), curve, label=name, marker="o" if epochs <= 30 else None, ms=3)
        curves.set(
            xlabel="epoch", ylabel="validation error (%)", title=f"{title[:55]}\nvalidation error, mean over seeds"
        )
        curves.legend(fontsize=8)
        curves.grid(alpha=0.3)
        present = [(a, b) for a, b in pairs if a in by_variant and b in by_variant]
        if present:
            for i, (base, treat) in enumerate(present):
                a = {r["seed"]: r["metrics"]["test_error"] for r in by_variant[base]}
                b = {r["seed"]: r["metrics"]["test_error"] for r in by_variant[treat]}
                diffs = [(b[s] - a[s]) * 100 for s in sorted(set(a) & set(b))]
                if diffs:
                    change.scatter([i] * len(diffs), diffs, color="black", s=14, zorder=3)
                    change.errorbar(
                        [i],
                        [statistics.fmean(diffs)],
                        yerr=[statistics.stdev(diffs) if len(diffs) > 1 else 0],
                        fmt="_",
                        color="tab:red",
                        ms=22,
                        capsize=5,
                        zorder=2,
                    )
            change.axhline(0, color="gray", lw=1)
            change.set_xticks(range(len(present)), [f"{b}\nvs {a}" for a, b in present], fontsize=8)
            change.set(
                ylabel="change in test error (pts)", title="test error minus baseline's, per seed (below 0: helps)"
            )
        else:
            errors = [[r["metrics"]["test_error"] * 100 for r in by_variant[v]] for v in names]
            for i, e in enumerate(errors):
                change.scatter([i] * len(e), e, color="black", s=14)
            change.set_xticks(range(len(names)), names, rotation=20, ha="right")
            change.set(ylabel="test error (%)", title=f"final test error ({profile} profile)")
        change.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_figure(fig, path)


# ----------------------------------------------------------------------------- the index
def write_index(experiments: list[Experiment], out_dir: Path | None = None) -> Path:
    out_dir = out_dir or results_dir()
    """results/README.md: every experiment with its claim, verdicts (from its committed CSV) and a link."""
    rows = []
    for exp in experiments:
        found = False
        for prof in exp.profiles:
            stem = report_stem(exp, prof.name)
            csv_path, md = out_dir / f"{stem}.csv", out_dir / f"{stem}.md"
            if csv_path.is_file() and md.is_file():
                results, profile = _results_from_csv(csv_path)
                verdicts = "; ".join(c.check(results).label for c in exp.claims)
                rows.append([f"`{exp.name}`", exp.slides, exp.claim, verdicts, f"[{md.name}]({md.name}) ({profile})"])
                found = True
        if not found:
            rows.append([f"`{exp.name}`", exp.slides, exp.claim, "not run yet", "–"])
    text = "\n".join(
        [
            "# Results",
            "",
            "One table per experiment, each written by `repro report <name>` from real runs; `repro report --all` "
            "rebuilds them and this index. Verdicts are listed in the order of each experiment's claims.",
            "",
            _md_table(["experiment", "slides", "lecture claim", "verdicts", "table"], rows),
            "",
            f"_Index rebuilt {dt.date.today().isoformat()}._",
            "",
        ]
    )
    path = out_dir / "README.md"
    write_atomic(path, text)
    return path


def _results_from_csv(path: Path) -> tuple[Results, str]:
    values: dict = defaultdict(lambda: defaultdict(dict))
    skip = {*_KEY_COLUMNS, *_INFO_COLUMNS}
    profile = ""
    with open(path) as f:
        for row in csv.DictReader(f):
            profile = row["profile"]
            for k, v in row.items():
                if k not in skip and v != "":
                    values[row["variant"]][k][int(row["seed"])] = float(v)
    return Results({k: dict(v) for k, v in values.items()}), profile
