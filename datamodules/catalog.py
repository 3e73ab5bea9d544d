"""Where the data sets come from: find a local copy, or download one, verify it, decode it once.

Search order for each data set, under ``REPRO_DATA_DIR`` (default: the user's cache):
torchvision's own layout, then an ImageFolder directory, then an ImageFolder archive. Only when
none is found is a download tried (into ``REPRO_DATA_DIR``). Decoded images are cached as uint8
tensors under ``REPRO_CACHE_DIR``; the data directory itself is never written to except by a
download. Every failure a user can cause (nothing found offline, a corrupt archive) is a
``ReproError``: one line, exit code 2.

Nothing damaged is used silently. A compressed archive is decompressed to its end (so gzip's CRC and
length are checked) and its tar stream must end in the end-of-archive marker; a file listed in a
``SHA256SUMS`` beside it (or in a folder above it, up to the data directory) must match; every class
of a split must hold the same number of images (a truncated copy breaks that), and a copy smaller than
the published one says so in its name; an image libjpeg complains about is refused. The decoded cache
is checked against the content hash written with it each time a process first loads it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from base.errors import ReproError
from base.files import remove_stale_temp_files, temp_path
from datamodules.decode import ImageSet, decode_cifar10, decode_mnist, fingerprint, mnist_file
from datamodules.files import cache_dir, data_dir

_CIFAR_FOLDERS = ("cifar10-jpeg", "cifar10", "cifar-10", "CIFAR-10", "CIFAR10")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
# Part of every cache file's name: caches written before the completeness checks existed are decoded again.
_CACHE_FORMAT = 2


# ----------------------------------------------------------------------------- public loaders
def load_cifar10(download: bool = True) -> ImageSet:
    root = data_dir()
    source = _find_cifar10(root)
    if source is None and download:
        source = _download("CIFAR10", root)
    if source is None:
        looked = [f"{root}/cifar-10-batches-py (torchvision)"]
        looked += [f"{root}/{d}/{{train,test}}/<class>/*" for d in _CIFAR_FOLDERS[:1]]
        looked += [f"{root}/{d}{_ARCHIVE_SUFFIXES[0]}" for d in _CIFAR_FOLDERS[:1]]
        raise ReproError(
            "CIFAR-10 not found: looked for " + ", ".join(looked) + " (and similar names); set REPRO_DATA_DIR "
            "to a folder holding one of these, or go online to download it"
        )
    return _cached("cifar10", source, lambda: decode_cifar10(source))


def load_mnist(download: bool = True) -> ImageSet:
    root = data_dir()
    source = _find_mnist(root)
    if source is None and download:
        source = _download("MNIST", root)
    if source is None:
        raise ReproError(
            f"MNIST not found: looked for {root}/MNIST/raw/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte[.gz] "
            "(torchvision's layout); set REPRO_DATA_DIR to a folder holding it, or go online to download it"
        )
    return _cached("mnist", source, lambda: decode_mnist(source))


# ----------------------------------------------------------------------------- finding
def _find_cifar10(root: Path) -> Path | None:
    if (root / "cifar-10-batches-py" / "test_batch").is_file():
        return root / "cifar-10-batches-py"
    for name in _CIFAR_FOLDERS:
        if (root / name / "train").is_dir() and (root / name / "test").is_dir():
            return root / name
    if (root / "train").is_dir() and (root / "test").is_dir():
        return root
    for name in _CIFAR_FOLDERS:
        for suffix in _ARCHIVE_SUFFIXES:
            if (root / (name + suffix)).is_file():
                return root / (name + suffix)
    return None


def _find_mnist(root: Path) -> Path | None:
    raw = root / "MNIST" / "raw"
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    return raw if all(mnist_file(raw, s) for s in stems) else None


def _download(name: str, root: Path) -> Path | None:
    """Download with torchvision's own downloader; None (not an exception) when offline.
    REPRO_OFFLINE=1 skips the attempt (compute nodes without internet, tests)."""
    import torchvision

    if os.environ.get("REPRO_OFFLINE", "") not in ("", "0"):
        return None
    try:
        root.mkdir(parents=True, exist_ok=True)
        getattr(torchvision.datasets, name)(root=str(root), train=True, download=True)
        getattr(torchvision.datasets, name)(root=str(root), train=False, download=True)
    except Exception as e:  # offline, refused, read-only: report what was looked for instead
        print(f"[data] download of {name} into {root} failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
        return None
    return _find_cifar10(root) if name == "CIFAR10" else _find_mnist(root)


# ----------------------------------------------------------------------------- caching
def _source_key(source: Path) -> str:
    """Identify a source by path, size and modification time (cheap; content is verified on decode)."""
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    h = hashlib.sha256(f"{_CACHE_FORMAT}:{source.resolve()}".encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(source) if p != source else p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


class _DamagedCache(Exception):
    pass


# Caches whose content hash this process has checked, by (path, inode, size, mtime): prepare_data and setup
# both load the data, and the check reads every page of the file.
_verified: set[tuple] = set()


def _load_verified(path: Path) -> ImageSet:
    """Memory-map a cache and check its tensors against the fingerprint written with them."""
    st = path.stat()
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    try:
        images = ImageSet(**torch.load(path, weights_only=True, mmap=True))
    except Exception as e:
        raise _DamagedCache(f"unreadable: {type(e).__name__}") from None
    if key not in _verified:
        actual = fingerprint(images.train_x, images.train_y, images.test_x, images.test_y)
        if actual != images.fingerprint:
            raise _DamagedCache(f"its tensors hash to {actual}, not to the {images.fingerprint} written with them")
        _verified.add(key)
    return images


def _cached(kind: str, source: Path, decode) -> ImageSet:
    """Decode once into REPRO_CACHE_DIR; afterwards memory-map the cache (pages are shared between the
    processes of a run and only the slices a run copies out stay resident)."""
    folder = cache_dir()
    remove_stale_temp_files(folder)
    path = folder / f"{kind}-{_source_key(source)}.pt"
    if path.is_file():
        try:
            return _load_verified(path)
        except _DamagedCache as e:  # rebuilt, never trusted
            print(f"[data] the cache {path} is damaged ({e}); decoding {source} again", flush=True)
            path.unlink(missing_ok=True)
    images = decode()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        torch.save(images.__dict__, tmp)
        os.replace(tmp, path)  # atomic: an interrupted decode leaves no half-written cache
    finally:
        tmp.unlink(missing_ok=True)  # after an error (a full disk): no partial file left behind
    del images
    try:
        return _load_verified(path)
    except _DamagedCache as e:
        raise ReproError(f"the cache {path} does not read back as written ({e}); check the disk") from None
