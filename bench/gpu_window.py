"""The bookkeeping of GPU windows that add up (``bench/gpu_window.sh``): what is left of a plan, and what a window
hands back.

A plan is a list of ``experiment:profile``. The runs folder (``$REPRO_RUNS_DIR``, carried from one window to the
next) holds, per run, its record once finished, or its config and last checkpoint while it is not.

    python bench/gpu_window.py status PLAN...     # per plan item: runs finished, resumable, not started
    python bench/gpu_window.py seed PLAN...       # committed records (results/runs) count as finished runs
    python bench/gpu_window.py pack TARFILE PLAN...

``seed`` copies each committed record that its profile still resolves to (the report's own check) into the
runs folder where that run has none: a window never retrains a run that a table already has, even when the runs
folder of earlier windows was lost. ``pack`` writes one .tar.gz of the runs folder as the next window and this
machine need it: every finished run's record, config and history (no checkpoint), and every unfinished run's
config and last checkpoint (to resume from); W&B files and CSV logs stay behind. A file over 15 MiB is split
into parts (a lent machine hands back at most 8 files of 16 MiB): the unfinished runs' checkpoints make most of
it (about 7 MB for a ResNet-56 with its momentum, 14 for a ResNet-110), so JOBS bounds it.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from base.errors import ReproError  # noqa: E402
from base.files import write_atomic  # noqa: E402
from engine.evidence import gather  # noqa: E402
from engine.records import read_record, run_dir, runs_root, to_json  # noqa: E402
from engine.registry import get  # noqa: E402

# what a lent GPU machine hands back (its device tool): at most 8 files of 16 MiB, 64 MiB together; and what
# travels to it (the checkout and the carried runs folder) is at most 64 MiB
PART_BYTES = 15 * 2**20
MAX_PARTS = 8
FINISHED_FILES = ("record.json", "config.yaml", "history.csv", "run.log")
RESUMABLE_FILES = ("config.yaml", "checkpoints/last.ckpt", "history.csv", "run.log")


@dataclass
class Status:
    plan: str
    finished: list[Path]
    resumable: list[Path]
    not_started: list[Path]

    def line(self) -> str:
        total = len(self.finished) + len(self.resumable) + len(self.not_started)
        return (
            f"{self.plan}: {total} runs, {len(self.finished)} finished, {len(self.resumable)} resumable, "
            f"{len(self.not_started)} not started"
        )


def parse_plan(items: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        name, _, profile = item.partition(":")
        exp = get(name)  # an unknown name: one line naming the known ones
        exp.profile(profile or exp.default_profile)
        out.append((exp.name, profile or exp.default_profile))
    return out


def status(name: str, profile: str) -> Status:
    exp = get(name)
    finished, resumable, not_started = [], [], []
    for variant in exp.variant_names(profile):
        for seed in range(exp.profile(profile).seeds):
            folder = run_dir(name, profile, variant, seed)
            if read_record(folder) is not None:
                finished.append(folder)
            elif (folder / "checkpoints" / "last.ckpt").is_file():
                resumable.append(folder)
            else:
                not_started.append(folder)
    return Status(f"{name}:{profile}", finished, resumable, not_started)


def seed(name: str, profile: str) -> int:
    """Committed records of the profile's current config, into the runs folder where the run has no record."""
    copied = 0
    for record in gather(get(name), profile, committed_only=True).records:
        folder = run_dir(name, profile, record["variant"], record["seed"])
        if read_record(folder) is None and not (folder / "checkpoints" / "last.ckpt").exists():
            folder.mkdir(parents=True, exist_ok=True)
            write_atomic(folder / "record.json", to_json(record))
            copied += 1
    return copied


def pack(tar_path: Path, plans: list[tuple[str, str]]) -> list[Status]:
    """One .tar.gz, paths relative to the runs folder, written to a temporary name and renamed when complete."""
    root = runs_root()
    statuses = [status(*p) for p in plans]
    tmp = tar_path.with_name(tar_path.name + ".part")
    with tarfile.open(tmp, "w:gz") as tar:
        for st in statuses:
            for folders, files in ((st.finished, FINISHED_FILES), (st.resumable, RESUMABLE_FILES)):
                for folder in folders:
                    for f in files:
                        if (folder / f).is_file():
                            tar.add(folder / f, arcname=str((folder / f).relative_to(root)))
    tmp.replace(tar_path)
    return statuses


def split(tar_path: Path, part_bytes: int = PART_BYTES) -> list[Path]:
    """The .tar.gz in parts of at most ``part_bytes`` (``NAME.00``, ``NAME.01``, ...; ``cat NAME.* > NAME`` joins
    them), the whole file removed; a file that fits stays whole."""
    size = tar_path.stat().st_size
    if size <= part_bytes:
        return [tar_path]
    parts = []
    with open(tar_path, "rb") as f:
        while chunk := f.read(part_bytes):
            part = tar_path.with_name(f"{tar_path.name}.{len(parts):02d}")
            part.write_bytes(chunk)
            parts.append(part)
    tar_path.unlink()
    return parts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("status").add_argument("plan", nargs="+")
    sub.add_parser("seed").add_argument("plan", nargs="+")
    packer = sub.add_parser("pack")
    packer.add_argument("tar", type=Path)
    packer.add_argument("plan", nargs="+")
    args = p.parse_args(argv)
    try:
        plans = parse_plan(args.plan)
        if args.command == "seed":
            for name, profile in plans:
                print(f"{name}:{profile}: {seed(name, profile)} committed records taken as finished runs")
        statuses = pack(args.tar, plans) if args.command == "pack" else [status(*pl) for pl in plans]
    except ReproError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for st in statuses:
        print(st.line())
    if args.command == "pack":
        size = args.tar.stat().st_size
        parts = split(args.tar)
        print(
            f"{args.tar}: {size / 2**20:.1f} MiB"
            + (f" in {len(parts)} parts (join: cat {args.tar.name}.* > {args.tar.name})" if len(parts) > 1 else "")
        )
        if len(parts) > MAX_PARTS - 2:  # beside the window's log and env.txt
            print(
                f"warning: {len(parts)} parts, more than a lent machine hands back: run fewer at once (JOBS) so "
                "that fewer unfinished checkpoints are packed"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
