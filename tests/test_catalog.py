"""Finding, verifying and caching data: every layout, and clear errors for missing or corrupt copies."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import tarfile

import pytest
import torch

from datamodules import decode
from datamodules.catalog import load_cifar10, load_mnist
from engine.spec import ReproError
from tests.conftest import REAL_DATA, make_mnist


def test_cifar_archive_is_decoded_once_into_the_cache(offline_dirs, tiny_data_dir):
    data, cache = offline_dirs
    shutil.copy(tiny_data_dir / "cifar10-jpeg.tar.gz", data)
    before = sorted(p.name for p in data.iterdir())
    images = load_cifar10()
    assert images.train_x.shape == (600, 3, 32, 32) and images.train_x.dtype == torch.uint8
    assert images.test_x.shape == (300, 3, 32, 32)
    assert images.classes == decode.CIFAR10_CLASSES
    assert images.train_y.bincount().tolist() == [60] * 10
    # JPEG quality read back from the files; a copy smaller than the published one says so
    assert images.name == "CIFAR-10 (JPEG q75 mirror, 60/30 images per class)"
    # class c was drawn around 25*c + 20: labels follow the folder names
    means = [images.train_x[images.train_y == c].float().mean().item() for c in range(10)]
    assert all(abs(m - (25 * c + 19.5)) < 3 for c, m in enumerate(means))
    assert sorted(p.name for p in data.iterdir()) == before  # nothing written into the data directory
    assert len(list(cache.glob("cifar10-*.pt"))) == 1
    again = load_cifar10()
    assert torch.equal(again.train_x, images.train_x) and again.fingerprint == images.fingerprint


def test_cifar_imagefolder_directory_gives_the_same_tensors(offline_dirs, tiny_data_dir, monkeypatch):
    data, _ = offline_dirs
    with tarfile.open(tiny_data_dir / "cifar10-jpeg.tar.gz") as tar:
        tar.extractall(data, filter="data")
    from_dir = load_cifar10()
    assert from_dir.source.endswith("cifar10-jpeg")
    data2 = data.parent / "data2"
    data2.mkdir()
    shutil.copy(tiny_data_dir / "cifar10-jpeg.tar.gz", data2)
    monkeypatch.setenv("REPRO_DATA_DIR", str(data2))
    assert load_cifar10().fingerprint == from_dir.fingerprint


def test_missing_data_offline_names_what_was_looked_for(offline_dirs):
    data, cache = offline_dirs
    with pytest.raises(ReproError) as e:
        load_cifar10()
    msg = str(e.value)
    assert "CIFAR-10 not found" in msg and str(data) in msg and "cifar-10-batches-py" in msg and "\n" not in msg
    with pytest.raises(ReproError, match="MNIST not found.*MNIST/raw"):
        load_mnist()
    assert not cache.exists() or not any(cache.iterdir())


def test_truncated_archive_is_a_clear_error_and_leaves_no_cache(offline_dirs, tiny_data_dir):
    data, cache = offline_dirs
    blob = (tiny_data_dir / "cifar10-jpeg.tar.gz").read_bytes()
    (data / "cifar10-jpeg.tar.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ReproError, match="corrupt or truncated") as e:
        load_cifar10()
    assert "\n" not in str(e.value)
    assert not cache.exists() or not list(cache.iterdir())  # no half-written cache


def test_archive_not_matching_its_checksum_is_refused(offline_dirs, tiny_data_dir):
    data, _ = offline_dirs
    shutil.copy(tiny_data_dir / "cifar10-jpeg.tar.gz", data)
    (data / "SHA256SUMS").write_text(f"{'0' * 64}  cifar10-jpeg.tar.gz\n")
    with pytest.raises(ReproError, match="does not match its checksum"):
        load_cifar10()
    digest = hashlib.sha256((data / "cifar10-jpeg.tar.gz").read_bytes()).hexdigest()
    (data / "SHA256SUMS").write_text(f"{digest}  cifar10-jpeg.tar.gz\n")
    assert len(load_cifar10().train_x) == 600


def test_corrupt_jpeg_inside_an_archive(offline_dirs):
    data, _ = offline_dirs
    import io

    with tarfile.open(data / "cifar10-jpeg.tar.gz", "w:gz") as tar:
        for split in ("train", "test"):
            for c in decode.CIFAR10_CLASSES:
                payload = b"\xff\xd8 not really a jpeg"
                info = tarfile.TarInfo(f"cifar10-jpeg/{split}/{c}/0000.jpg")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(ReproError, match="cannot be decoded"):
        load_cifar10()


def test_mnist_idx_files_plain_and_gzipped(offline_dirs, monkeypatch):
    data, _ = offline_dirs
    make_mnist(data, n_train=50, n_test=20)
    plain = load_mnist()
    assert plain.train_x.shape == (50, 1, 28, 28) and plain.test_y.tolist()[:12] == [*range(10), 0, 1]
    data2 = data.parent / "gz"
    raw2 = data2 / "MNIST" / "raw"
    raw2.mkdir(parents=True)
    for f in (data / "MNIST" / "raw").iterdir():
        (raw2 / (f.name + ".gz")).write_bytes(gzip.compress(f.read_bytes()))
    monkeypatch.setenv("REPRO_DATA_DIR", str(data2))
    assert load_mnist().fingerprint == plain.fingerprint


def test_corrupt_mnist_file(offline_dirs):
    data, cache = offline_dirs
    make_mnist(data, n_train=50, n_test=20)
    path = data / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ReproError, match="corrupt or truncated"):
        load_mnist()
    assert not cache.exists() or not list(cache.iterdir())


@pytest.mark.skipif(not REAL_DATA, reason="REPRO_DATA_DIR is not set (CI sets it to ../shared/data)")
def test_the_real_mirrors_load_with_their_published_statistics(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_DATA_DIR", REAL_DATA)
    monkeypatch.setenv("REPRO_CACHE_DIR", str(tmp_path))
    cifar = load_cifar10(download=False)
    assert cifar.train_x.shape == (50000, 3, 32, 32) and cifar.test_x.shape == (10000, 3, 32, 32)
    assert cifar.train_y.bincount().tolist() == [5000] * 10
    means = (cifar.train_x.float() / 255).mean(dim=(0, 2, 3))
    assert torch.allclose(means, torch.tensor([0.4913, 0.4821, 0.4465]), atol=6e-4)  # shared/data/README.md
    assert cifar.name == "CIFAR-10 (JPEG q75 mirror)"
    mnist = load_mnist(download=False)
    assert mnist.train_x.shape == (60000, 1, 28, 28) and mnist.test_x.shape == (10000, 1, 28, 28)
    raw = mnist.train_x.numpy().tobytes()
    header = bytes.fromhex("00000803") + (60000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    assert hashlib.md5(header + raw).hexdigest() == "6bbc9ace898e44ae57da46a324031adb"  # the published MD5


def test_a_damaged_cache_is_rebuilt(offline_dirs, tiny_data_dir):
    data, cache = offline_dirs
    shutil.copy(tiny_data_dir / "cifar10-jpeg.tar.gz", data)
    first = load_cifar10()
    fingerprint, test_x = first.fingerprint, first.test_x.clone()
    del first  # the cache is memory-mapped: let go of it before damaging the file
    (path,) = cache.glob("cifar10-*.pt")
    damaged = path.with_suffix(".damaged")
    damaged.write_bytes(path.read_bytes()[:1000])
    damaged.replace(path)
    again = load_cifar10()
    assert again.fingerprint == fingerprint and torch.equal(again.test_x, test_x)
