"""Shared fixtures: data directories in the real layouts, isolated runs/cache/results folders.

With REPRO_DATA_DIR set (CI points it at ../shared/data), the experiment tests use the real data;
without it they build tiny data sets in the same layouts (an ImageFolder .tar.gz of JPEGs for
CIFAR-10, idx files for MNIST), so the real loading code runs either way.
"""

from __future__ import annotations

import io
import os
import random
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from datamodules.decode import CIFAR10_CLASSES

REAL_DATA = os.environ.get("REPRO_DATA_DIR")


def make_cifar_archive(path: Path, per_class_train: int = 60, per_class_test: int = 30, seed: int = 0) -> None:
    """A CIFAR-10-shaped ImageFolder archive of JPEG (q75) images, each class a different mean colour."""
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    with tarfile.open(path, "w:gz") as tar:
        for split, count in (("train", per_class_train), ("test", per_class_test)):
            for c, name in enumerate(CIFAR10_CLASSES):
                for i in range(count):
                    base = torch.full((32, 32, 3), 25.0 * c)
                    img = (base + torch.randint(0, 40, (32, 32, 3), generator=g)).clamp(0, 255).to(torch.uint8)
                    buf = io.BytesIO()
                    Image.fromarray(img.numpy()).save(buf, format="JPEG", quality=75)
                    info = tarfile.TarInfo(f"cifar10-jpeg/{split}/{name}/{i:04d}.jpg")
                    info.size = buf.tell()
                    buf.seek(0)
                    tar.addfile(info, buf)


def write_idx(path: Path, data: torch.Tensor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", 0x0800 + data.dim()) + struct.pack(f">{data.dim()}I", *data.shape)
    path.write_bytes(header + data.to(torch.uint8).contiguous().numpy().tobytes())


WORDS = "thou art the king and i am thy servant good my lord what say you to this fair lady".split()


def tiny_text(lines: int = 400, seed: int = 0) -> str:
    """Play-like lines: a speaker, a colon, a few words; about 16k characters (a tiny Tiny Shakespeare)."""
    rng = random.Random(seed)
    speakers = ("ROMEO", "JULIET", "KING HENRY")
    return "".join(
        f"{rng.choice(speakers)}:\n{' '.join(rng.choices(WORDS, k=6)).capitalize()}.\n\n" for _ in range(lines)
    )


def make_mnist(root: Path, n_train: int = 600, n_test: int = 300, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    raw = root / "MNIST" / "raw"
    for stem, n in (("train", n_train), ("t10k", n_test)):
        labels = torch.arange(n) % 10
        images = (labels.view(-1, 1, 1) * 20 + torch.randint(0, 60, (n, 28, 28), generator=g)).clamp(0, 255)
        write_idx(raw / f"{stem}-images-idx3-ubyte", images)
        write_idx(raw / f"{stem}-labels-idx1-ubyte", labels)


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_data")
    make_cifar_archive(root / "cifar10-jpeg.tar.gz")
    make_mnist(root, n_train=1000)  # capacity's smoke profile takes 500 training images after 128 for validation
    (root / "tinyshakespeare").mkdir()
    (root / "tinyshakespeare" / "input.txt").write_text(tiny_text())
    return root


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def data_env(tiny_data_dir, session_cache, tmp_path, monkeypatch) -> dict[str, str]:
    """Environment for running experiments: real data if REPRO_DATA_DIR is set, else the tiny copies;
    runs and results in this test's own folder; W&B never online."""
    env = {
        "REPRO_DATA_DIR": REAL_DATA or str(tiny_data_dir),
        "REPRO_CACHE_DIR": str(session_cache),
        "REPRO_RUNS_DIR": str(tmp_path / "runs"),
        "REPRO_RESULTS_DIR": str(tmp_path / "results"),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    return env


@pytest.fixture
def offline_dirs(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """Empty data and cache folders, with every download turned off: what a machine without internet sees."""
    from datamodules import catalog, text

    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    monkeypatch.setenv("REPRO_DATA_DIR", str(data))
    monkeypatch.setenv("REPRO_CACHE_DIR", str(cache))
    monkeypatch.setattr(catalog, "_download", lambda name, root: None)
    monkeypatch.setattr(text, "_download", lambda root: None)
    return data, cache


def repro(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300):
    """Run the CLI in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def repro_here(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process: (exit code, stdout, stderr). For answers that come before any run starts,
    where a subprocess would spend its seconds importing torch; `repro` runs it as a user would."""
    from engine.cli import main

    capsys.readouterr()  # what earlier calls printed is not this call's
    try:
        code = main(list(args))
    except SystemExit as e:  # argparse's own refusals
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def train_whole_and_resumed(make, stop: int, epochs: int, tmp_path: Path):
    """Train ``make()``'s (module, datamodule) for ``epochs`` epochs in one go, and again stopped after
    ``stop`` epochs, checkpointed and resumed in a fresh module; returns (uninterrupted, resumed) modules."""
    import lightning as L

    kw = dict(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    whole, data = make()
    L.Trainer(max_epochs=epochs, **kw).fit(whole, datamodule=data)
    first, data = make()
    trainer = L.Trainer(max_epochs=stop, **kw)
    trainer.fit(first, datamodule=data)
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    resumed, data = make()
    L.Trainer(max_epochs=epochs, **kw).fit(resumed, datamodule=data, ckpt_path=str(tmp_path / "last.ckpt"))
    return whole, resumed
