"""Fault injection into the data layer: each damaged copy is refused with a one-line ReproError naming what is wrong,
or (a damaged cache) rebuilt into equal data; nothing damaged is used silently."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from base import files
from datamodules import catalog, decode, text
from datamodules.catalog import load_cifar10, load_mnist
from datamodules.images import ImageDataConfig, ImageDataModule
from datamodules.text import TextDataConfig, TextDataModule
from engine.spec import ReproError
from tests.conftest import make_cifar_archive, make_mnist, tiny_text


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory) -> bytes:
    """A CIFAR-10-shaped .tar.gz of 2 training and 1 test JPEG per class (30 members): quick to rebuild."""
    path = tmp_path_factory.mktemp("small") / "cifar10-jpeg.tar.gz"
    make_cifar_archive(path, per_class_train=2, per_class_test=1)
    return path.read_bytes()


def refused(load, match: str) -> str:
    """The ReproError message of ``load()``, which must be one line and match ``match``."""
    with pytest.raises(ReproError, match=match) as e:
        load()
    assert "\n" not in str(e.value)
    return str(e.value)


def tar_members(archive: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(archive)), mode="r:") as tar:
        return [(m, tar.extractfile(m).read()) for m in tar if m.isfile()]


def write_tar(path: Path, members, compress: bool = True) -> None:
    with tarfile.open(path, "w:gz" if compress else "w") as tar:
        for info, data in members:
            info = tarfile.TarInfo(info.name) if isinstance(info, tarfile.TarInfo) else tarfile.TarInfo(info)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


# ----------------------------------------------------------------------------- archives
@pytest.mark.parametrize("where", [0.25, 0.5, 0.75])
def test_a_flipped_byte_in_the_archive_is_refused_without_a_checksum_file(offline_dirs, small_archive, where):
    data, cache = offline_dirs
    blob = bytearray(small_archive)
    blob[int(len(blob) * where)] ^= 0x01
    (data / "cifar10-jpeg.tar.gz").write_bytes(blob)
    assert not (data / "SHA256SUMS").exists()
    refused(load_cifar10, r"cifar10-jpeg.tar.gz is corrupt or truncated \(")
    assert not cache.exists() or not list(cache.glob("*.pt"))


@pytest.mark.parametrize("cut", [4, 8, 100])
def test_an_archive_missing_its_last_bytes_is_refused(offline_dirs, small_archive, cut):
    """Cutting only the gzip trailer (CRC and length) leaves every tar member readable: only reading the stream to
    its end notices."""
    data, _ = offline_dirs
    (data / "cifar10-jpeg.tar.gz").write_bytes(small_archive[:-cut])
    refused(load_cifar10, "corrupt or truncated")


@pytest.mark.parametrize("compress", [True, False])
def test_a_broken_tar_header_does_not_end_reading_early_and_silently(offline_dirs, small_archive, compress):
    """A damaged header halfway through (inside a valid gzip stream, or an uncompressed tar): tarfile alone would
    stop there without a word and yield the first half of the images."""
    data, _ = offline_dirs
    raw = bytearray(gzip.decompress(small_archive))
    members = tar_members(small_archive)
    header = members[len(members) // 2][0].offset
    raw[header + 5] ^= 0x20  # inside the member's name: the header checksum no longer matches
    name = "cifar10-jpeg.tar.gz" if compress else "cifar10-jpeg.tar"
    (data / name).write_bytes(gzip.compress(bytes(raw)) if compress else bytes(raw))
    with tarfile.open(fileobj=io.BytesIO(bytes(raw)), mode="r:") as tar:  # what tarfile alone makes of it
        assert len(tar.getmembers()) == len(members) // 2
    refused(load_cifar10, f"{name} is corrupt or truncated .*breaks off at byte {header:,} ")


def test_an_uncompressed_archive_cut_between_members_is_refused(offline_dirs, small_archive):
    data, _ = offline_dirs
    raw = gzip.decompress(small_archive)
    members = tar_members(small_archive)
    (data / "cifar10-jpeg.tar").write_bytes(raw[: members[-3][0].offset])  # whole members, no end-of-archive marker
    refused(load_cifar10, "corrupt or truncated")


def test_classes_with_different_image_counts_are_refused(offline_dirs, small_archive):
    data, _ = offline_dirs
    members = [(m, b) for m, b in tar_members(small_archive) if m.name != "cifar10-jpeg/train/cat/0001.jpg"]
    write_tar(data / "cifar10-jpeg.tar.gz", members)
    msg = refused(load_cifar10, "is incomplete: its train classes hold different numbers of images")
    assert "cat 1, airplane 2; CIFAR-10 has 5,000 of each" in msg


def test_a_missing_class_is_refused(offline_dirs, small_archive):
    data, _ = offline_dirs
    members = [(m, b) for m, b in tar_members(small_archive) if "/test/truck/" not in m.name]
    write_tar(data / "cifar10-jpeg.tar.gz", members)
    refused(load_cifar10, "not a complete copy of CIFAR-10: its test split lacks the class truck")


def test_the_name_says_when_a_copy_is_smaller_than_the_published_one(offline_dirs, small_archive, monkeypatch):
    data, cache = offline_dirs
    (data / "cifar10-jpeg.tar.gz").write_bytes(small_archive)
    assert load_cifar10().name == "CIFAR-10 (JPEG q75 mirror, 2/1 images per class)"
    # the same files counted as the published copy carry the published name
    monkeypatch.setattr(decode, "CIFAR10_PER_CLASS", {"train": 2, "test": 1})
    for p in cache.glob("*.pt"):
        p.unlink()
    assert load_cifar10().name == "CIFAR-10 (JPEG q75 mirror)"


def _with_one_image_changed(archive: bytes, member: str, change) -> list:
    return [(m, change(b) if m.name == member else b) for m, b in tar_members(archive)]


def test_a_jpeg_libjpeg_warns_about_is_refused_and_named(offline_dirs, small_archive):
    """Junk before the end marker: libjpeg decodes the image anyway and only prints "Corrupt JPEG data" on stderr."""
    data, _ = offline_dirs
    member = "cifar10-jpeg/train/dog/0001.jpg"
    junk = _with_one_image_changed(small_archive, member, lambda b: b[:-2] + b"\x00" * 8 + b"\xff\xd9")
    write_tar(data / "cifar10-jpeg.tar.gz", junk)
    msg = refused(load_cifar10, f"image {member} in .* is damaged \\(libjpeg: Corrupt JPEG data")
    assert "extraneous bytes before marker 0xd9" in msg


def test_a_truncated_jpeg_is_refused_and_named(offline_dirs, small_archive):
    data, _ = offline_dirs
    member = "cifar10-jpeg/test/ship/0000.jpg"
    write_tar(data / "cifar10-jpeg.tar.gz", _with_one_image_changed(small_archive, member, lambda b: b[: len(b) // 2]))
    refused(load_cifar10, f"image {member} in .* cannot be decoded \\(Image is incomplete or truncated\\)")


def test_an_image_of_the_wrong_size_is_refused(offline_dirs, small_archive):
    from PIL import Image

    data, _ = offline_dirs
    buf = io.BytesIO()
    Image.new("RGB", (40, 32)).save(buf, format="JPEG", quality=75)
    member = "cifar10-jpeg/train/frog/0000.jpg"
    write_tar(data / "cifar10-jpeg.tar.gz", _with_one_image_changed(small_archive, member, lambda b: buf.getvalue()))
    refused(load_cifar10, f"image {member} in .* is 40x32; CIFAR-10 images are 32x32")


# ----------------------------------------------------------------------------- the decoded cache
def test_overwritten_pixels_in_the_cache_are_noticed_and_the_cache_rebuilt(offline_dirs, small_archive, capsys):
    data, cache = offline_dirs
    (data / "cifar10-jpeg.tar.gz").write_bytes(small_archive)
    first = load_cifar10()
    fp, train_x, test_x = first.fingerprint, first.train_x.clone(), first.test_x.clone()
    del first  # memory-mapped: let go of it before changing the file
    (path,) = cache.glob("cifar10-*.pt")
    with open(path, "r+b") as f:  # the zip header and the pickle stay intact, pixel bytes change
        f.seek(path.stat().st_size // 2)
        f.write(bytes(64))
    damaged = torch.load(path, weights_only=True, mmap=True)
    assert damaged["fingerprint"] == fp and not torch.equal(damaged["train_x"], train_x)  # loads, looks the same
    del damaged
    catalog._verified.clear()  # as in a new process
    capsys.readouterr()
    again = load_cifar10()
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and f"the cache {path} is damaged (its tensors hash to " in out
    assert "decoding" in out and again.fingerprint == fp
    assert torch.equal(again.train_x, train_x) and torch.equal(again.test_x, test_x)
    catalog._verified.clear()
    load_cifar10()
    assert capsys.readouterr().out == ""  # the rebuilt cache is trusted again


def test_stale_temp_files_of_dead_processes_are_removed_and_live_ones_kept(offline_dirs, small_archive):
    data, cache = offline_dirs
    (data / "cifar10-jpeg.tar.gz").write_bytes(small_archive)
    cache.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid, live_pid = int(dead.stdout), os.getppid()
    host = files._host()
    names = {
        f"cifar10-0123456789abcdef.pt.tmp{dead_pid}@{host}": False,  # killed mid-write: removed
        f"cifar10-0123456789abcdef.tmp{dead_pid}": False,  # the name before hosts were part of it: removed
        f"cifar10-0123456789abcdef.pt.tmp{live_pid}@{host}": True,  # still being written: kept
        f"cifar10-0123456789abcdef.pt.tmp{dead_pid}@othernode": True,  # another machine's process: kept
        "notes.tmpfile": True,
    }
    for name in names:
        (cache / name).write_bytes(b"partial")
    load_cifar10()
    assert {p.name for p in cache.iterdir() if not p.name.endswith(".pt")} == {n for n, kept in names.items() if kept}


def test_temp_file_names_parse_back():
    name = files.temp_path(Path("cifar10-0123456789abcdef.pt")).name
    m = files._TEMP_NAME.match(name)
    assert m["host"] == files._host() and int(m["pid"]) == os.getpid()


# ----------------------------------------------------------------------------- MNIST
def test_mnist_files_are_checked_against_a_checksum_file_in_the_data_directory(offline_dirs):
    data, _ = offline_dirs
    make_mnist(data, n_train=50, n_test=20)
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    digest = {n: hashlib.sha256((data / "MNIST" / "raw" / n).read_bytes()).hexdigest() for n in names}
    (data / "SHA256SUMS").write_text("".join(f"{digest[n]}  MNIST/raw/{n}\n" for n in names))
    assert load_mnist().name == "MNIST (50/20 images)"  # a smaller copy than the published 60,000/10,000
    path = data / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x80  # same length, so the idx header still agrees
    path.write_bytes(blob)
    refused(load_mnist, f"{path} does not match its checksum in {data / 'SHA256SUMS'}")


def test_a_flipped_byte_in_a_gzipped_mnist_file_is_refused(offline_dirs):
    data, _ = offline_dirs
    make_mnist(data, n_train=50, n_test=20)
    raw = data / "MNIST" / "raw"
    for f in list(raw.iterdir()):
        (raw / (f.name + ".gz")).write_bytes(gzip.compress(f.read_bytes()))
        f.unlink()
    path = raw / "train-images-idx3-ubyte.gz"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(blob)
    refused(load_mnist, "MNIST file .*train-images-idx3-ubyte.gz is corrupt or truncated")


# ----------------------------------------------------------------------------- subset sizes
@pytest.fixture
def tiny_env(tiny_data_dir, session_cache, monkeypatch):
    monkeypatch.setenv("REPRO_DATA_DIR", str(tiny_data_dir))
    monkeypatch.setenv("REPRO_CACHE_DIR", str(session_cache))


@pytest.mark.parametrize(
    "sizes,message",
    [
        ({"train_size": 100_000_000}, "data.train_size=100,000,000 is more than the 500 training images"),
        ({"train_eval_size": 501}, "data.train_eval_size=501 is more than the 500 training images"),
        ({"test_size": 301}, "data.test_size=301 is more than the 300 test images"),
        ({"val_size": 600}, "data.val_size=600 leaves no training images: CIFAR-10 .* has 600"),
    ],
)
def test_a_subset_larger_than_the_data_is_refused(tiny_env, sizes, message):
    cfg = ImageDataConfig(**{"val_size": 100, "train_eval_size": 100, **sizes})
    refused(ImageDataModule(cfg).setup, message)


def test_subsets_that_fit_exactly_are_taken_whole(tiny_env):
    dm = ImageDataModule(ImageDataConfig(val_size=100, train_size=500, test_size=300, train_eval_size=500))
    dm.setup()
    info = dm.data_info()
    assert (info["train"], info["val"], info["test"], info["train_eval"]) == (500, 100, 300, 500)
    capped = ImageDataModule(ImageDataConfig(val_size=100, train_size=50, train_eval_size=500))
    capped.setup()  # the training error is measured on up to train_eval_size of the training images
    assert capped.data_info()["train_eval"] == 50


def test_an_oversized_subset_through_the_cli_is_one_line_and_exit_code_2(data_env, capsys):
    from engine.cli import main

    args = ["run", "augmentation", "--profile", "smoke", "--variant", "none", "--wandb", "off", "--no-report"]
    assert main([*args, "--set", "data.train_size=100000000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data.train_size=100,000,000 is more than the " in err


# ----------------------------------------------------------------------------- text
def _text_module(data: Path, body: str, **cfg) -> TextDataModule:
    (data / "tinyshakespeare").mkdir(exist_ok=True)
    (data / "tinyshakespeare" / "input.txt").write_text(body)
    return TextDataModule(TextDataConfig(**cfg))


def test_text_cut_mid_line_is_refused(offline_dirs):
    data, _ = offline_dirs
    body = tiny_text()
    refused(_text_module(data, body[:-7]).load, "input.txt ends in the middle of a line .*cut short")


def test_text_with_a_zero_filled_block_is_refused(offline_dirs):
    data, _ = offline_dirs
    body = tiny_text()
    middle = len(body) // 2
    msg = refused(_text_module(data, body[:middle] + "\0" * 512 + body[middle + 512 :]).load, "control character")
    assert f"'\\x00' at character {middle:,}" in msg


def test_text_of_char_rnns_length_with_other_content_is_refused(offline_dirs, monkeypatch):
    data, _ = offline_dirs
    body = tiny_text()
    monkeypatch.setattr(text, "TINY_SHAKESPEARE_CHARS", len(body))
    flipped = body[:100] + ("X" if body[100] != "X" else "Y") + body[101:]
    refused(_text_module(data, flipped).load, "has the length of char-rnn's Tiny Shakespeare .* but not its content")


def test_text_names_say_which_copy_it_is(offline_dirs, monkeypatch):
    data, _ = offline_dirs
    body = tiny_text()
    assert _text_module(data, body).data_info()["name"] == f"Tiny Shakespeare (another copy: {len(body):,} characters)"
    monkeypatch.setattr(text, "TINY_SHAKESPEARE_SHA256", hashlib.sha256(body.encode()).hexdigest())
    assert _text_module(data, body).data_info()["name"] == "Tiny Shakespeare (char-rnn)"


def test_text_is_checked_against_a_checksum_file_in_the_data_directory(offline_dirs):
    data, _ = offline_dirs
    module = _text_module(data, tiny_text())
    (data / "SHA256SUMS").write_text(f"{'0' * 64}  tinyshakespeare/input.txt\n")
    refused(module.load, "input.txt does not match its checksum")


@pytest.mark.parametrize("key,value", [("train_chars", 10**9), ("val_chars", 10**9)])
def test_more_text_than_there_is_is_refused(offline_dirs, key, value):
    data, _ = offline_dirs
    refused(_text_module(data, tiny_text(), **{key: value}).load, f"data.{key}=1,000,000,000 is more than the ")
