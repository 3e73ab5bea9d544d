"""The eager and the compiled training paths side by side: images/s per run and in all, with several runs at once.

The workload is a run of the paper-scale profile (default: resnet-ablation `full`, ResNet-56, batch 128, He et al.'s
recipe) on a subset of its images, trained through the suite's own Lightning loop; only ``train.compile`` differs
between the paths. For each path and each number of runs at once (separate processes; on a GPU start CUDA MPS
first, as ``bench/gpu_common.sh`` does, so that their kernels overlap) every run trains ``--epochs`` epochs; the
first is a warm-up (compilation, CUDA graph capture, cuDNN autotuning) and is not timed. Printed per set-up: images/s
per run and in all, the model's training FLOP/s (forward and backward, counted by ``torch.utils.flop_counter``
on one batch) and that as a fraction of the GPU's dense bf16 peak, the ratio to the first set-up (eager, the
fewest runs at once), and on a GPU the host syncs per training step of the first run (the implicit ones that
``torch.cuda.set_sync_debug_mode`` reports: a read of a device value, which makes the CPU wait for the GPU; the
compiled path should have none).

    python bench/compile_speed.py --accelerator gpu --precision bf16-mixed --runs 1 4 8
    python bench/compile_speed.py --images 512 --depth 20 --runs 1 2 --epochs 2      # a dry run on a CPU
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import sys
import tempfile
import warnings
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import loop_overhead  # noqa: E402 (bench/, this script's folder: its timing callback)
import spawned  # noqa: E402

# dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets, by a part of the device's name
BF16_PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10G": 70e12}


def _config(args):
    from engine.config import apply_overrides
    from engine.registry import get

    cfg = get(args.experiment).resolve(
        f"residual-{args.depth}" if args.experiment == "resnet-ablation" else args.variant, args.profile
    )
    apply_overrides(
        cfg,
        {
            "data.train_size": args.images,
            "data.val_size": min(1000, args.images),
            "data.batch_size": args.batch,
            "train.max_epochs": args.epochs,
        },
    )
    return cfg


def train_flops_per_image(net, batch: int, device: str) -> float:
    """Forward and backward FLOPs of one image (the FLOP counter's count on one batch, divided by its size)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(batch, 3, 32, 32, device=device)
    with FlopCounterMode(display=False) as counter:
        net(x).sum().backward()
    net.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch


def one_run(args, mode: str, threads: int, index: int, barrier, results) -> None:
    """One training process: the suite's module and Trainer, the first epoch untimed."""
    import logging

    from engine.registry import get

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)  # no device banners from every process
    warnings.filterwarnings("ignore", message=".*treespec.*LeafSpec.*")  # lightning's, as the runner does

    torch.set_num_threads(threads)
    cfg = _config(args)
    cfg.train.compile = mode
    L.seed_everything(index, verbose=False)
    module, dm = get(args.experiment).build(cfg, index)
    if mode:
        module.compile_net(mode)
    timer = _Timer(barrier, count_syncs=index == 0 and args.accelerator == "gpu")
    with tempfile.TemporaryDirectory() as d:
        trainer = L.Trainer(
            max_epochs=args.epochs,
            accelerator=args.accelerator,
            devices=1,
            precision=args.precision,
            logger=False,
            callbacks=[timer],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            use_distributed_sampler=False,
            default_root_dir=d,
        )
        with counting_syncs(timer):
            trainer.fit(module, datamodule=dm)
    results.put((timer.images / timer.seconds, timer.syncs / timer.steps if timer.count_syncs else None))


class _Timer(loop_overhead._Timer):
    """loop_overhead's timer (images and seconds of the epochs after the first), with the runs of one set-up
    starting their timed epochs together (a barrier), so that they overlap as the runs of a profile do."""

    def __init__(self, barrier=None, count_syncs: bool = False):
        super().__init__()
        self.barrier, self.count_syncs = barrier, count_syncs
        self.syncs = self.steps = 0  # in the timed epochs

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1 and self.barrier is not None:
            self.barrier.wait()
        super().on_train_epoch_start(trainer, pl_module)
        if self.count_syncs and trainer.current_epoch > 0:
            warnings.filterwarnings("always", message=".*synchronizing")  # every sync, not the first per place
            torch.cuda.set_sync_debug_mode("warn")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self.steps += trainer.current_epoch > 0

    def on_train_epoch_end(self, trainer, pl_module):
        if self.count_syncs:
            torch.cuda.set_sync_debug_mode("default")  # the timer's own synchronize is not counted
        super().on_train_epoch_end(trainer, pl_module)


@contextlib.contextmanager
def counting_syncs(timer: _Timer):
    """Counts the warnings ``set_sync_debug_mode("warn")`` gives into ``timer.syncs``; other warnings pass."""
    shown = warnings.showwarning

    def show(message, *args, **kwargs):
        if "synchronizing" in str(message):
            timer.syncs += 1
        else:
            shown(message, *args, **kwargs)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown


def setup(args, mode: str, runs: int) -> list[tuple[float, float | None]]:
    """(images/s, host syncs per step or None) of each of ``runs`` processes training at once."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(runs), ctx.Queue()
    threads = max(1, (mp.cpu_count() // runs)) if args.accelerator == "cpu" else 1
    procs = [ctx.Process(target=one_run, args=(args, mode, threads, i, barrier, results)) for i in range(runs)]
    for p in procs:
        p.start()
    rates = spawned.collect(procs, results, mode or "eager")
    return sorted(rates, key=lambda r: r[1] is None)  # the counted run first


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--experiment", default="resnet-ablation", choices=("resnet-ablation", "augmentation"))
    p.add_argument("--profile", default="full")
    p.add_argument("--variant", default="flip+translate", help="augmentation's variant (resnet-ablation: --depth)")
    p.add_argument("--depth", type=int, default=56)
    p.add_argument("--images", type=int, default=10000, help="training images per epoch")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--epochs", type=int, default=3, help="per run; the first is not timed")
    p.add_argument("--runs", type=int, nargs="+", default=[1, 4, 8], help="runs at once, one set-up each")
    p.add_argument("--modes", nargs="+", default=["", "reduce-overhead"], help="train.compile values ('': eager)")
    p.add_argument("--accelerator", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--precision", default="32-true")
    args = p.parse_args()
    if args.epochs < 2:
        p.error("--epochs must be >= 2 (the first is a warm-up)")

    from base.errors import ReproError
    from engine.config import COMPILE_MODES
    from engine.registry import get

    try:  # a bad profile, variant or mode, or no GPU: one line, exit 2, before any process starts
        cfg = _config(args)
        if set(args.modes) - set(COMPILE_MODES):
            raise ReproError(f"--modes: each one of {', '.join(repr(m) for m in COMPILE_MODES)}")
        if args.accelerator == "gpu" and not torch.cuda.is_available():
            raise ReproError("--accelerator gpu: no GPU here")
    except ReproError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    module, _ = get(args.experiment).build(cfg, 0)
    device = "cuda" if args.accelerator == "gpu" else "cpu"
    flops = train_flops_per_image(module.net.to(device), min(args.batch, 32), device)
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    peak = next((v for k, v in BF16_PEAK.items() if k in name), None)
    print(
        f"{args.experiment} {args.profile}: {type(module.net).__name__} depth {args.depth}, {flops / 1e9:.3f} "
        f"GFLOP per training image; {name}, {args.precision}; {args.images} images x {args.epochs - 1} timed "
        "epochs"
    )
    print(
        f"\n{'path':<18} {'runs':>4} {'img/s per run':>14} {'img/s in all':>13} {'TFLOP/s':>8} {'of peak':>8} "
        f"{'vs first':>11} {'syncs/step':>10}"
    )
    base = None  # images/s of the eager path with the fewest runs at once: the first set-up measured
    for mode in sorted(args.modes, key=bool):  # eager first
        for runs in sorted(args.runs):
            rates = setup(args, mode, runs)
            total, syncs = sum(r for r, _ in rates), rates[0][1]
            base = base or total
            share = f"{total * flops / peak:8.1%}" if peak else f"{'n/a':>8}"
            ratio = f"{total / base:11.2f}"
            synced = f"{syncs:10.2f}" if syncs is not None else f"{'n/a':>10}"
            print(
                f"{mode or 'eager':<18} {runs:>4} {total / runs:>14.0f} {total:>13.0f} {total * flops / 1e12:>8.2f} "
                f"{share} {ratio} {synced}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
