"""``repro run NAME|--all --launcher slurm``: a command's runs as one SLURM job array, through submitit.

Each array task trains one run, handed over whole (``RunSpec.to_dict``), with the same ``run_one`` as a local
run: same folder, identity check, checkpoints and record. The run folder keeps ``slurm.json`` (the job id, the
scheduler's log) and ``slurm.log``, a link to that log. The command prints the job ids and returns; with
``--wait`` it follows the jobs with one progress bar and ends with the failed runs' log tails. Running the
same command again submits only what is neither finished nor queued nor running.

Time limits and preemption: sbatch's ``--signal=USR2@<signal_before_s>`` warns a job before its end; the run
finishes its epoch, saves its checkpoint and requeues its own task (``scontrol requeue``), which resumes from
that checkpoint: its record equals an uninterrupted run's. ``--requeue`` lets the scheduler requeue a job
that it preempts or whose node fails; it resumes the same way.

Nothing here needs a scheduler to import: ``queue_states`` answers {} where there is no ``squeue``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from base.errors import ReproError, RunsFailed
from base.files import write_atomic
from engine.launch import Launch
from engine.plan import RunSpec
from engine.records import read_record, runs_root

# squeue's states of a job that is not over (every other state, and a job squeue no longer lists, is over)
ACTIVE = {
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "RESIZING",
    "SUSPENDED",
    "STAGE_OUT",
    "SIGNALING",
    "RESV_DEL_HOLD",
    "POWER_UP_NODE",
}
QUEUED = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD", "POWER_UP_NODE"}


@dataclass(frozen=True)
class SlurmOptions:
    """The scheduler's settings of one submission (flags, or keys of the same names in a YAML file)."""

    partition: str | None = None
    time_min: int = 60  # each job's time limit (a run that needs longer is requeued and resumes)
    cpus_per_task: int | None = None
    gpus_per_node: int | None = None
    mem_gb: float | None = None
    account: str | None = None
    qos: str | None = None
    sbatch: dict[str, str] = field(default_factory=dict)  # more #SBATCH lines: {"constraint": "a100", ...}
    setup: tuple[str, ...] = ()  # shell lines run before each job (module load ..., source venv/bin/activate)
    array_parallelism: int = 256  # array tasks running at once
    signal_before_s: int = 120  # the warning (SIGUSR2) this long before the time limit
    wait: bool = False

    def validate(self) -> None:
        if self.time_min < 1:
            raise ReproError(f"--time-min must be >= 1, got {self.time_min}")
        if not 0 < self.signal_before_s < self.time_min * 60:
            raise ReproError(
                f"--signal-before must be between 0 and the time limit ({self.time_min * 60} s), got "
                f"{self.signal_before_s}"
            )
        if self.array_parallelism < 1:
            raise ReproError(f"--array-parallelism must be >= 1, got {self.array_parallelism}")
        for name in ("cpus_per_task", "gpus_per_node", "mem_gb"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ReproError(f"--{name.replace('_', '-')} must be > 0, got {value}")

    def executor_parameters(self, launch: Launch, name: str) -> dict:
        """submitit's parameters: one task per device of a run (``--devices``) on each of its nodes."""
        tasks = int(launch.devices) if launch.devices.isdigit() else 1
        params = {
            "name": name,
            "timeout_min": self.time_min,
            "nodes": launch.num_nodes,
            "tasks_per_node": tasks,
            "slurm_signal_delay_s": self.signal_before_s,
            "slurm_array_parallelism": self.array_parallelism,
            "slurm_setup": list(self.setup),
            "slurm_additional_parameters": {"requeue": True, **self.sbatch},
        }
        optional = {
            "slurm_partition": self.partition,
            "cpus_per_task": self.cpus_per_task,
            "gpus_per_node": self.gpus_per_node,
            "mem_gb": self.mem_gb,
            "slurm_account": self.account,
            "slurm_qos": self.qos,
        }
        return params | {k: v for k, v in optional.items() if v is not None}


FLAGS = (
    "partition",
    "time_min",
    "cpus_per_task",
    "gpus_per_node",
    "mem_gb",
    "account",
    "qos",
    "array_parallelism",
    "signal_before_s",
)


def options_from_args(args) -> SlurmOptions | None:
    """The SLURM options of `repro run` (None without ``--launcher slurm``): the ``--slurm-config`` file's, then
    each flag given. A SLURM flag without ``--launcher slurm`` is refused."""
    given = {k: getattr(args, k) for k in FLAGS if getattr(args, k, None) is not None}
    given |= {"sbatch": _sbatch_lines(args.sbatch)} if args.sbatch else {}
    given |= {"setup": tuple(args.setup)} if args.setup else {}
    if args.launcher != "slurm":
        stray = [k for k in given] + (["slurm_config"] if args.slurm_config else []) + (["wait"] if args.wait else [])
        if stray:
            raise ReproError(f"--{_flag(stray[0])} goes with --launcher slurm")
        return None
    from_file = _read_config(args.slurm_config) if args.slurm_config else {}
    opts = SlurmOptions(**{**from_file, **given, "wait": args.wait})
    opts.validate()
    return opts


def _flag(key: str) -> str:
    return "signal-before" if key == "signal_before_s" else key.replace("_", "-")


# what each key of a --slurm-config file holds
KINDS = {
    "partition": str,
    "time_min": int,
    "cpus_per_task": int,
    "gpus_per_node": int,
    "mem_gb": (int, float),
    "account": str,
    "qos": str,
    "array_parallelism": int,
    "signal_before_s": int,
    "sbatch": dict,
    "setup": (list, str),
}


def _sbatch_lines(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key.strip():
            raise ReproError(f"--sbatch expects KEY=VALUE (an sbatch option without its dashes), got {item!r}")
        out[key.strip().lstrip("-")] = value.strip() if eq else True
    return out


def _read_config(path: str) -> dict:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as e:
        raise ReproError(f"--slurm-config {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ReproError(f"--slurm-config {path} is not YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict) or set(data) - set(KINDS):
        bad = sorted(set(data) - set(KINDS)) if isinstance(data, dict) else ["(not a mapping)"]
        raise ReproError(f"--slurm-config {path}: unknown key {bad[0]} (known: {', '.join(sorted(KINDS))})")
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, KINDS[key]):
            raise ReproError(f"--slurm-config {path}: {key} must be {_kind_name(KINDS[key])}, got {value!r}")
    if "setup" in data:
        data["setup"] = tuple(data["setup"] if isinstance(data["setup"], list) else [data["setup"]])
    if "sbatch" in data:
        data["sbatch"] = {str(k): v for k, v in dict(data["sbatch"]).items()}
    return data


def _kind_name(kind) -> str:
    if kind == (int, float):
        return "a number"
    names = {str: "text", int: "a whole number", dict: "a mapping", list: "a list"}
    return " or ".join(names[k] for k in (kind if isinstance(kind, tuple) else (kind,)))


# ----------------------------------------------------------------------------- the job
class SlurmRun:
    """One array task: trains its run; on the scheduler's SIGUSR2 (its time is nearly up, or it is preempted)
    the run saves after its epoch and the task requeues itself, to resume from that checkpoint."""

    def __init__(self, run: dict, launch: dict):
        self.run, self.launch = run, launch

    def __call__(self) -> str:
        from engine.launch import is_rank_zero
        from engine.runner import run_one
        from engine.signals import Interrupted

        spec = RunSpec.from_dict(self.run)
        try:
            run_one(spec, Launch(**self.launch))
        except Interrupted as e:
            if e.signum != signal.SIGUSR2:
                raise
            if is_rank_zero():
                job = _this_job()
                print(f"{spec.label}: requeueing job {job} to resume from the saved epoch", flush=True)
                subprocess.run(["scontrol", "requeue", job], check=True, timeout=60)
            sys.exit(e.exit_code)  # the scheduler ends this attempt; the requeued one resumes
        return spec.label

    def checkpoint(self):
        """submitit's own answer to SIGUSR2 when it arrives outside the run (while the job starts, or after the
        record is written): requeue this same task, which resumes from the run's last saved epoch."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self)


def _this_job() -> str:
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    return f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array else os.environ["SLURM_JOB_ID"]


# ----------------------------------------------------------------------------- submitting and following
def submit(runs: list[tuple[RunSpec, Launch]], opts: SlurmOptions, name: str) -> list[str]:
    """One job array for every run; each run folder gets slurm.json and a slurm.log link. Returns the job ids."""
    if shutil.which("sbatch") is None:
        raise ReproError("--launcher slurm: no SLURM here (sbatch is not on the PATH); run on a cluster's login node")
    try:
        import submitit
    except ImportError:
        raise ReproError("--launcher slurm needs submitit: pip install 'submitit>=1.5.4'") from None
    folder = runs_root() / ".slurm"
    # a run longer than its job's limit is requeued as often as it takes (submitit's own count stops at 3)
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm", slurm_max_num_timeout=1000)
    executor.update_parameters(**opts.executor_parameters(runs[0][1], name))
    handed = [
        SlurmRun(spec.to_dict(), dataclasses.asdict(dataclasses.replace(launch, jobs=1))) for spec, launch in runs
    ]
    try:
        with executor.batch():
            jobs = [executor.submit(run) for run in handed]
    except Exception as e:  # sbatch refused the array (a partition, account or option this cluster lacks)
        raise ReproError(f"sbatch refused the jobs: {str(e).strip().splitlines()[-1][:300]}") from None
    for (spec, _), job in zip(runs, jobs, strict=True):
        spec.dir.mkdir(parents=True, exist_ok=True)
        log = Path(job.paths.stdout).resolve()
        err = str(Path(job.paths.stderr).resolve())
        write_atomic(spec.dir / "slurm.json", json.dumps({"job": job.job_id, "log": str(log), "err": err}) + "\n")
        link = spec.dir / "slurm.log"
        link.unlink(missing_ok=True)
        link.symlink_to(log)
    return [job.job_id for job in jobs]


def job_of(spec: RunSpec) -> dict | None:
    """What slurm.json says of the run's last submission ({"job", "log", "err"}), None if it was never submitted."""
    try:
        return json.loads((spec.dir / "slurm.json").read_text())
    except (OSError, ValueError):
        return None


def queue_states(job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """squeue's (state, node) of each listed job that it still knows; {} without a scheduler."""
    if not job_ids or shutil.which("squeue") is None:
        return {}
    try:
        out = subprocess.run(
            ["squeue", "-h", "-r", "-o", "%i|%T|%N", "-j", ",".join(job_ids)],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    states = {}
    for line in out.splitlines():
        job, _, rest = line.strip().partition("|")
        state, _, node = rest.partition("|")
        states[job] = (state, node)
    return states


def in_queue(specs: list[RunSpec]) -> dict[str, str]:
    """The runs (by label) whose SLURM job is queued or running: never submitted, nor trained, twice."""
    jobs = {s.label: j["job"] for s in specs if (j := job_of(s))}
    states = queue_states(sorted(set(jobs.values())))
    return {label: job for label, job in jobs.items() if states.get(job, ("",))[0] in ACTIVE}


def follow(runs: list[RunSpec], job_ids: list[str]) -> None:
    """``--wait``: one progress bar over the runs until no job of theirs is queued or running; then the runs
    without a record, each with its log's last lines (exit code 1)."""
    from tqdm import tqdm

    bar = tqdm(total=len(runs), unit="run", desc="SLURM", mininterval=1 if sys.stderr.isatty() else 30)
    try:
        while True:
            states = queue_states(job_ids)
            done = sum(read_record(s.dir) is not None for s in runs)
            bar.update(done - bar.n)
            if not any(state in ACTIVE for state, _ in states.values()):
                break
            time.sleep(3)
    finally:
        bar.close()
    failed = [s for s in runs if read_record(s.dir) is None]
    for spec in failed:
        print(f"{spec.label}: FAILED (job {(job_of(spec) or {}).get('job', '?')})\n{log_tail(spec, 5)}")
    if failed:
        raise RunsFailed(f"{len(failed)} of {len(runs)} SLURM runs failed: " + ", ".join(s.label for s in failed))


def log_tail(spec: RunSpec, lines: int) -> str:
    """The last lines of the run's scheduler log (standard output and error), indented."""
    info = job_of(spec) or {}
    text = ""
    for path in (info.get("log"), info.get("err")):
        try:
            text += Path(path).read_text(errors="replace") if path else ""
        except OSError:
            pass
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(f"    {line}" for line in tail) or "    (no log)"
