"""`repro list | run | report | compare | sweep | verify | show | sample | programs` (also `python -m engine`).

User mistakes (unknown names, bad overrides, missing or corrupt data) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from base.errors import ReproError, RunsFailed  # (not the runner: `repro list` needs no torch)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit code 2 (argparse prints usage too)
        raise ReproError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="repro", description="Reproduce the claims of Lecture 7 with real training runs.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", help="list the registered experiments")

    run = sub.add_parser("run", help="train every run of an experiment (skips finished ones, resumes interrupted ones)")
    run.add_argument("name", nargs="?", help="the experiment (see `repro list`)")
    run.add_argument(
        "--all", action="store_true", help="every experiment of the lecture, in slide order, with one progress bar"
    )
    run_options(run)
    run.add_argument(
        "--no-report", action="store_true", help="skip the preview table written under the runs folder afterwards"
    )
    _slurm_options(run)

    from engine import compare, status, sweep, verify

    compare.add_parser(sub)
    status.add_parser(sub)
    sweep.add_parser(sub, run_options)
    verify.add_parser(sub)
    for add in (_add_report, _add_show, _add_sample, _add_programs):
        add(sub)
    return p


def _add_report(sub) -> None:
    rep = sub.add_parser(
        "report",
        help="write results/<name>.md, .png, .csv and the records beside them, from complete runs of a profile",
    )
    rep.add_argument("name", nargs="?")
    rep.add_argument("--all", action="store_true", help="every experiment and profile with runs, and the index")
    rep.add_argument("--profile", help="default: every profile of the experiment with runs (smoke never)")
    rep.add_argument("--partial", action="store_true", help="write a table even if runs are missing (it says so)")
    rep.add_argument(
        "--wandb",
        default="auto",
        choices=["auto", "online", "offline", "off"],
        help="log each table's verdicts and per-variant summary to W&B (job type report; auto: online "
        "with an API key, else offline under the runs folder)",
    )


def _add_show(sub) -> None:
    show = sub.add_parser("show", help="print the fully resolved config of a run and its parameter count")
    show.add_argument("name")
    show.add_argument("--variant")
    show.add_argument("--profile")
    show.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets")
    show.add_argument("--config", metavar="FILE", help="overrides from a YAML file; --set wins")


def _add_sample(sub) -> None:
    smp = sub.add_parser("sample", help="generate text from a trained run's checkpoint (language models: char-lm)")
    smp.add_argument("name")
    smp.add_argument("--profile", help="default: the experiment's, usually quick")
    smp.add_argument("--variant", help="default: the experiment's choice (lstm for char-lm)")
    smp.add_argument("--seed", type=int, default=0, help="which run: its training seed (default 0)")
    smp.add_argument("--prompt", default="\n", help="text to start from (default: a newline)")
    smp.add_argument("--length", type=int, default=500, help="characters to generate")
    smp.add_argument("--temperature", type=float, default=0.8, help="0: always the most likely character")
    smp.add_argument("--sample-seed", type=int, default=0, help="seed of the sampling draws")


def _add_programs(sub) -> None:
    prg = sub.add_parser(
        "programs",
        help="print Learning-to-Execute examples as JSON lines {input, target}, or save a target's evaluation "
        "programs as a datasets.DatasetDict (--save)",
    )
    prg.add_argument("--task", help="program | addition | copy (default: program)")
    prg.add_argument("--length", type=int, help="digits of the literals (default 4)")
    prg.add_argument("--nesting", type=int, help="operations chained, 1-10 (default 2)")
    prg.add_argument("--count", type=int, help="examples to print (default 5)")
    prg.add_argument("--seed", type=int, help="seed of the generator (default 0)")
    prg.add_argument("--split", help="train | val | test (default: train)")
    prg.add_argument(
        "--save",
        metavar="DIR",
        help="write the target's validation and test programs, as every learning-to-execute run of it evaluates "
        "them, into a new folder (datasets.DatasetDict.save_to_disk; read with datasets.load_from_disk)",
    )
    prg.add_argument("--val-size", type=int, help="with --save: validation programs (default 1000)")
    prg.add_argument("--test-size", type=int, help="with --save: test programs (default 2000)")
    prg.add_argument("--reverse", action="store_true", help="with --save: add what a reversed-input run reads")
    prg.add_argument("--double", action="store_true", help="with --save: add what a doubled-input run reads")
    prg.add_argument("--scramble", type=int, help="with --save: add what a run scrambled by this seed reads")
    prg.add_argument(
        "--variant",
        help="with --save: the target, sizes and input options of this learning-to-execute "
        "run (e.g. addition-2-combined-seq2seq)",
    )
    prg.add_argument("--profile", help="with --variant: its profile (default: quick)")


def _slurm_options(run: argparse.ArgumentParser) -> None:
    g = run.add_argument_group("SLURM (with --launcher slurm; README: Run on a SLURM cluster)")
    g.add_argument("--launcher", choices=["local", "slurm"], default="local", help="local: this machine (default)")
    g.add_argument("--wait", action="store_true", help="follow the jobs to their end, one progress bar")
    g.add_argument("--slurm-config", metavar="FILE", help="the settings below as a YAML file (flags win)")
    g.add_argument("--partition")
    g.add_argument("--time-min", type=int, help="each job's time limit, minutes (default 60; longer runs requeue)")
    g.add_argument("--cpus-per-task", type=int)
    g.add_argument("--gpus-per-node", type=int)
    g.add_argument("--mem-gb", type=float)
    g.add_argument("--account")
    g.add_argument("--qos")
    g.add_argument("--sbatch", action="append", metavar="KEY=VALUE", help="another #SBATCH option (repeatable)")
    g.add_argument("--setup", action="append", metavar="CMD", help="a shell line before each job (repeatable)")
    g.add_argument("--array-parallelism", type=int, help="array tasks running at once (default 256)")
    g.add_argument(
        "--signal-before",
        type=int,
        dest="signal_before_s",
        metavar="S",
        help="SIGUSR2 this many seconds before the time limit: save and requeue (default 120)",
    )


def run_options(p: argparse.ArgumentParser) -> None:
    """What `repro run` and `repro sweep` share: which runs, their overrides, where and how they train."""
    p.add_argument("--profile", help="smoke | pilot | quick | full (default: the experiment's, usually quick)")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=int, metavar="N", help="run the profile's first N seeds (default: all of them)")
    seeds.add_argument("--seed", type=int, action="append", metavar="K", help="run seed K (repeatable)")
    p.add_argument("--variant", action="append", metavar="NAME", help="only this variant (repeatable)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="sets",
        help="override a config value, e.g. --set optim.lr=0.05 (repeatable; see `repro show`)",
    )
    p.add_argument("--config", metavar="FILE", help="overrides from a YAML file (nested or dotted keys); --set wins")
    p.add_argument("--accelerator", default="auto", help="cpu | gpu | auto ... (Lightning)")
    p.add_argument("--devices", default="auto", help="number or list of devices (Lightning)")
    p.add_argument("--strategy", default="auto", help="auto | ddp | ... (Lightning)")
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--precision", default=None, help="32-true | bf16-mixed | 16-mixed ... (Lightning)")
    p.add_argument(
        "--wandb",
        default="auto",
        choices=["auto", "online", "offline", "off"],
        help="auto: online with an API key, else offline",
    )
    p.add_argument(
        "--jobs",
        default="auto",
        help="runs at once, as separate processes (auto: one per GPU; without "
        "GPUs the profile's choice, e.g. 2 for quick)",
    )


def cmd_list() -> int:
    from engine.registry import registry

    for exp in registry().values():
        print(f"{exp.name}  (slides {exp.slides})")
        print(f"  claim:    {exp.claim}")
        print(f"  variants: {', '.join(v.name for v in exp.variants)}")
        print(
            "  profiles: "
            + "; ".join(
                f"{p.name} ({p.seeds} seed{'s' * (p.seeds > 1)} from {p.first_seed}, "
                f"{len(exp.variant_names(p.name))} variants)"
                for p in exp.profiles
            )
            + f"  [default: {exp.default_profile}]"
        )
    return 0


def cmd_run(args) -> int:
    from base.errors import system_error_line
    from engine.launch import is_rank_zero
    from engine.orchestrate import run_all
    from engine.plan import planner
    from engine.registry import get
    from engine.report import write_preview
    from engine.slurm import options_from_args

    slurm = options_from_args(args)
    plan_one = planner(args)
    if args.all:
        from engine.lecture import plan_lecture, run_lecture
        from engine.registry import registry

        if args.name or args.variant or args.sets or args.config:
            raise ReproError(
                "--all runs every experiment as its profile says: no name, --variant, --set or --config with it"
            )
        parts = plan_lecture(list(registry().values()), args.profile, plan_one)
        return run_lecture(parts, not args.no_report, slurm)
    if not args.name:
        raise ReproError("run needs an experiment name (see `repro list`) or --all")
    exp = get(args.name)
    profile = args.profile or exp.default_profile
    exp.profile(profile)
    specs, launch = plan_one(exp, profile)
    run_all(specs, launch, slurm)
    waited = slurm is None or slurm.wait  # submitted and not followed: nothing to preview yet
    if waited and is_rank_zero() and not args.no_report and not os.environ.get("REPRO_PARENT_PID"):
        # Runs never write tracked files: a preview table under the runs folder, and the command for the real one.
        try:
            written = write_preview(exp, profile)
        except OSError as e:  # the runs are finished and recorded: a preview that cannot be written loses nothing
            print(f"repro: preview not written ({system_error_line(e)}); the runs are recorded", file=sys.stderr)
            return 0
        evidence = written.evidence
        state = "complete" if evidence.complete else evidence.problem("incomplete")
        print(f"preview: {written.md} ({state})")
        if evidence.aside:
            print(evidence.aside_note())
        if profile != "smoke":
            print(f"citable table: repro report {exp.name} --profile {profile}")
    return 0


def cmd_report(args) -> int:
    from engine import tracking
    from engine.evidence import evaluate
    from engine.records import results_dir, runs_root, staged_results
    from engine.registry import get, registry
    from engine.report import citable_profiles, write_all, write_index, write_report

    if args.all == bool(args.name):
        raise ReproError("report needs an experiment name or --all (not both)")
    exps = list(registry().values())
    tracking.wandb_mode(args.wandb)  # online without a key: one line before anything is written
    if args.all:
        tables = [(e, p) for e in exps for p in citable_profiles(e)]
        if not tables:
            raise ReproError(
                f"no run records under {results_dir() / 'runs'} nor {runs_root()}: run it in the "
                "repository's folder, or set REPRO_RESULTS_DIR and REPRO_RUNS_DIR"
            )
    else:
        exp = get(args.name)
        tables = [(exp, p) for p in ([args.profile] if args.profile else citable_profiles(exp))]
        if not tables:
            raise ReproError(f"no finished runs of {exp.name} to report (smoke runs are never reported)")
    with staged_results() as real:  # every file is written, or none
        stage = results_dir()
        written = write_all(exps, args.partial) if args.all else [write_report(e, p, args.partial) for e, p in tables]
        index = write_index(exps)
    for w in written:
        print(f"table: {real / w.md.relative_to(stage)}")
    print(f"index: {real / index.relative_to(stage)}")
    mode = tracking.wandb_mode(args.wandb)
    for w in written if not args.all or mode else []:  # (one table's notes; the whole lecture's only with W&B)
        if note := w.evidence.aside_note():
            print(note)
        if mode:
            claims, _ = evaluate(w.exp, w.evidence.records)
            if folder := tracking.log_report(w.exp, w.profile, claims, w.evidence.records, args.wandb):
                print(f"W&B (offline): {folder}")
    return 0


def cmd_show(args) -> int:
    import yaml

    from engine.plan import overrides
    from engine.registry import get
    from engine.spec import config_to_dict

    exp = get(args.name)
    profile = args.profile or exp.default_profile
    variant = args.variant or exp.variant_names(profile)[0]
    cfg = exp.resolve(variant, profile, overrides(args))
    module, _ = exp.build(cfg, 0)
    params = sum(p.numel() for p in module.parameters())
    print(f"# {exp.name} / {profile} / {variant}")
    print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False).rstrip())
    print(f"# parameters: {params:,}")
    return 0


def cmd_sample(args) -> int:
    from engine.registry import get

    exp = get(args.name)
    profile = args.profile or exp.default_profile
    exp.profile(profile)
    if exp.sample is None:
        raise ReproError(f"{exp.name} does not generate text (only language models do, e.g. char-lm)")
    print(
        exp.sample(exp, profile, args.variant, args.seed, args.prompt, args.length, args.temperature, args.sample_seed)
    )
    return 0


_SAVE_ONLY = ("val_size", "test_size", "reverse", "double", "scramble", "variant", "profile")


def cmd_programs(args) -> int:
    """Print ``args.count`` examples of ``args.split`` as JSON lines {"input": ..., "target": ...}, or save the
    evaluation programs of a target (``--save``)."""
    import json

    from datamodules.programs import sample

    if args.save is not None:
        return _save_programs(args)
    given = [f"--{k.replace('_', '-')}" for k in _SAVE_ONLY if getattr(args, k) not in (None, False)]
    if given:
        raise ReproError(f"{', '.join(given)} go{'es' * (len(given) == 1)} with --save")
    task, length, nesting = args.task or "program", _or(args.length, 4), _or(args.nesting, 2)
    for ex in sample(task, length, nesting, _or(args.count, 5), _or(args.seed, 0), args.split or "train"):
        print(json.dumps({"input": ex.input, "target": ex.target}))
    return 0


def _or(value, default):
    return default if value is None else value


def _save_programs(args) -> int:
    """``repro programs --save DIR``: the target's validation and test programs as a datasets.DatasetDict."""
    from datamodules.program_sets import evaluation_config, save_evaluation_programs

    stray = [f"--{k}" for k in ("count", "seed", "split") if getattr(args, k) is not None]
    if stray:
        raise ReproError(
            f"{', '.join(stray)} do{'es' * (len(stray) == 1)} not apply to --save: the evaluation programs of a "
            "target are the same for every run and seed (sizes: --val-size, --test-size)"
        )
    own = {
        "task": args.task,
        "length": args.length,
        "nesting": args.nesting,
        "val_size": args.val_size,
        "test_size": args.test_size,
        "scramble": args.scramble,
    }
    own = {k: v for k, v in own.items() if v is not None} | {k: True for k in ("reverse", "double") if getattr(args, k)}
    if args.variant:
        if own:
            raise ReproError(
                f"--variant takes the target, sizes and input options of that run: drop --{next(iter(own))}"
            )
        from engine.registry import get

        exp = get("learning-to-execute")
        cfg = exp.resolve(args.variant, args.profile or exp.default_profile).data
    else:
        if args.profile:
            raise ReproError("--profile goes with --variant")
        cfg = evaluation_config(**own)
    path, counts, fingerprint, written = save_evaluation_programs(cfg, args.save)
    what = "saved" if written else "already there (same fingerprint)"
    print(
        f"{what}: {path}: {counts['validation']} validation and {counts['test']} test programs (task {cfg.task}, "
        f"length {cfg.length}, nesting {cfg.target_nesting}); fingerprint sha256:{fingerprint}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    from base.errors import system_error_line

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past `ulimit -f`: an error to report, not a killed process
    signal.signal(signal.SIGTERM, _terminated)  # before a run takes over the signal (it saves its epoch first)
    for stream in (sys.stdout, sys.stderr):  # a locale that cannot write '±' or '–' escapes them
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    commands = {
        "list": lambda a: cmd_list(),
        "run": cmd_run,
        "report": cmd_report,
        "sample": cmd_sample,
        "programs": cmd_programs,
        "show": cmd_show,
        "compare": _compare,
        "sweep": _sweep,
        "verify": _verify,
        "status": _status,
    }
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == [CHILD]:  # a run handed over whole by its parent (engine/pool.py), not a command line
            return _run_handed_over(argv[1])
        args = _parser().parse_args(argv)
        return commands[args.command](args)
    except ReproError as e:
        print(f"repro: error: {e}", file=sys.stderr)
        return 2
    except RunsFailed as e:
        print(f"repro: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("repro: interrupted; the same command resumes from the last checkpoint", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `repro list | head`: the reader left; say nothing more
        sys.stdout = open(os.devnull, "w")
        return 0
    except BaseException as e:  # a run stopped by SIGTERM / SIGINT (runner.Interrupted): its own line and code
        code, line = getattr(e, "exit_code", None), system_error_line(e)
        if code is None and line is None:
            raise
        if line is not None:  # what the machine refused: a full disk, a read-only folder, memory
            print(f"repro: error: {line}", file=sys.stderr)
            return 2
        if os.environ.get("LOCAL_RANK", "0") == "0" and not os.environ.get("REPRO_PARENT_PID"):  # one line a run
            print(f"repro: {e}", file=sys.stderr)
        return code


CHILD = "_run-one"  # the hidden command of a child process: one run, as JSON


def _run_handed_over(text: str) -> int:
    """Train the one run a parent handed over (``{"run": RunSpec.to_dict(), "launch": Launch fields}``) and exit;
    the parent reports. Lightning starts a DDP run's other ranks with this same command."""
    import json

    from engine.launch import Launch
    from engine.plan import RunSpec
    from engine.pool import watch_parent
    from engine.runner import run_one

    handed = json.loads(text)
    watch_parent()  # stop when the parent is gone
    run_one(RunSpec.from_dict(handed["run"]), Launch(**handed["launch"]))
    return 0


class Terminated(BaseException):  # like runner.Interrupted: nothing on the way catches it by accident
    exit_code = 143


def _terminated(signum, frame):
    raise Terminated("stopped by SIGTERM between runs; finished runs are kept and the same command resumes")


def _compare(args) -> int:
    from engine import compare

    return compare.cmd_compare(args)


def _status(args) -> int:
    from engine import status

    return status.cmd_status(args)


def _verify(args) -> int:
    from engine import verify

    return verify.cmd_verify(args)


def _sweep(args) -> int:
    from engine import sweep
    from engine.plan import planner

    return sweep.cmd_sweep(args, planner)


if __name__ == "__main__":
    sys.exit(main())
