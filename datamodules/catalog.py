"""Where the data sets come from: find a local copy, or download one, verify it, decode it once.

Search order for each data set, under ``REPRO_DATA_DIR`` (default: the user's cache):
torchvision's own layout, then an ImageFolder directory, then an ImageFolder archive. Only when
none is found is a download tried (into ``REPRO_DATA_DIR``). Decoded images are cached as uint8
tensors under ``REPRO_CACHE_DIR``; the data directory itself is never written to except by a
download. Every failure a user can cause (nothing found offline, a corrupt archive) is a
``ReproError``: one line, exit code 2.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from datamodules.errors import ReproError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_CIFAR_FOLDERS = ("cifar10-jpeg", "cifar10", "cifar-10", "CIFAR-10", "CIFAR10")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lecture7-repro"


def data_dir() -> Path:
    return Path(os.environ.get("REPRO_DATA_DIR") or _user_cache() / "data").expanduser()


def cache_dir() -> Path:
    return Path(os.environ.get("REPRO_CACHE_DIR") or _user_cache() / "cache").expanduser()


@dataclass
class ImageSet:
    """A whole labelled image data set held as uint8 tensors [N, C, H, W]."""

    name: str  # as printed in results tables, e.g. "CIFAR-10 (JPEG q75 mirror)"
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    source: str  # the file or folder it was read from
    fingerprint: str  # sha256 of the decoded tensors, first 16 hex digits


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
    return _cached("cifar10", source, lambda: _decode_cifar10(source))


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
    return _cached("mnist", source, lambda: _decode_mnist(source))


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


def _mnist_file(raw: Path, stem: str) -> Path | None:
    for candidate in (raw / stem, raw / (stem + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _find_mnist(root: Path) -> Path | None:
    raw = root / "MNIST" / "raw"
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    return raw if all(_mnist_file(raw, s) for s in stems) else None


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
    h = hashlib.sha256(str(source.resolve()).encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(source) if p != source else p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _cached(kind: str, source: Path, decode) -> ImageSet:
    """Decode once into REPRO_CACHE_DIR; afterwards memory-map the cache (pages are shared between the
    processes of a run and only the slices a run copies out stay resident)."""
    path = cache_dir() / f"{kind}-{_source_key(source)}.pt"
    if path.is_file():
        try:
            return ImageSet(**torch.load(path, weights_only=True, mmap=True))
        except Exception:
            path.unlink(missing_ok=True)  # a damaged cache is rebuilt, never trusted
    images = decode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(images.__dict__, tmp)
    os.replace(tmp, path)  # atomic: an interrupted decode leaves no half-written cache
    del images
    return ImageSet(**torch.load(path, weights_only=True, mmap=True))


def fingerprint(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- decoding CIFAR-10
def _decode_cifar10(source: Path) -> ImageSet:
    if source.name == "cifar-10-batches-py":
        return _decode_cifar10_pickles(source)
    files = _archive_members(source) if source.is_file() else _folder_members(source)
    splits: dict[str, tuple[list[bytes], list[str]]] = {"train": ([], []), "test": ([], [])}
    for rel, data in files:
        parts = rel.split("/")
        # .../{train,test}/<class>/<file>: find the split folder anywhere in the path
        for i in range(len(parts) - 2):
            if parts[i] in splits and parts[i + 2] and not parts[i + 2].startswith("."):
                splits[parts[i]][0].append(data)
                splits[parts[i]][1].append(parts[i + 1])
                break
    classes = sorted(set(splits["train"][1]))
    if not splits["train"][0] or not splits["test"][0] or classes != sorted(set(splits["test"][1])):
        raise ReproError(
            f"{source} is not an ImageFolder copy of CIFAR-10: expected {{train,test}}/<class>/<image> files"
        )
    xs, ys = {}, {}
    for split, (blobs, labels) in splits.items():
        xs[split] = _decode_images(blobs, source)
        ys[split] = torch.tensor([classes.index(c) for c in labels], dtype=torch.int64)
    quality = _jpeg_quality(splits["test"][0][0])
    name = "CIFAR-10" if quality is None else f"CIFAR-10 (JPEG q{quality} mirror)"
    return ImageSet(
        name,
        xs["train"],
        ys["train"],
        xs["test"],
        ys["test"],
        tuple(classes),
        str(source),
        fingerprint(xs["train"], ys["train"], xs["test"], ys["test"]),
    )


def _folder_members(folder: Path):
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            yield p.relative_to(folder).as_posix(), p.read_bytes()


def _archive_members(archive: Path):
    """Yield (path, bytes) of every file in a tar archive, sorted by path; one-line error if corrupt."""
    _verify_checksum(archive)
    try:
        members = []
        with tarfile.open(archive) as tar:
            for m in tar:
                if m.isfile():
                    members.append((m.name, tar.extractfile(m).read()))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise ReproError(f"archive {archive} is corrupt or truncated ({type(e).__name__}: {e}); replace it") from None
    members.sort(key=lambda m: m[0])
    return members


def _verify_checksum(path: Path) -> None:
    """If a SHA256SUMS file lies beside ``path`` and lists it, the file must match."""
    sums = path.parent / "SHA256SUMS"
    if not sums.is_file():
        return
    for line in sums.read_text().splitlines():
        digest, _, name = line.strip().partition("  ")
        if name.lstrip("*./") == path.name:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            if h.hexdigest() != digest:
                raise ReproError(f"{path} does not match its checksum in {sums}: the file is corrupt; replace it")
            return


def _decode_images(blobs: list[bytes], source: Path) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_image

    out = []
    for data in blobs:
        try:
            out.append(decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB))
        except RuntimeError as e:
            raise ReproError(
                f"an image in {source} cannot be decoded ({str(e).splitlines()[0]}); the copy is corrupt"
            ) from None
    if len({tuple(x.shape) for x in out}) != 1:
        raise ReproError(f"images in {source} differ in size; expected 32x32 CIFAR-10 images")
    return torch.stack(out)


# The IJG reference luminance quantization table, scaled by libjpeg's quality setting.
_IJG_LUMA = (
    16,
    11,
    10,
    16,
    24,
    40,
    51,
    61,
    12,
    12,
    14,
    19,
    26,
    58,
    60,
    55,
    14,
    13,
    16,
    24,
    40,
    57,
    69,
    56,
    14,
    17,
    22,
    29,
    51,
    87,
    80,
    62,
    18,
    22,
    37,
    56,
    68,
    109,
    103,
    77,
    24,
    35,
    55,
    64,
    81,
    104,
    113,
    92,
    49,
    64,
    78,
    87,
    103,
    121,
    120,
    101,
    72,
    92,
    95,
    98,
    112,
    100,
    103,
    99,
)


def _jpeg_quality(data: bytes) -> int | None:
    """libjpeg quality of a JPEG, read back from its luminance table; None if not a (standard) JPEG."""
    from PIL import Image

    try:
        tables = Image.open(io.BytesIO(data)).quantization
    except Exception:
        return None
    if not tables:
        return None
    luma = sorted(tables[0])
    for q in range(1, 101):
        scale = 5000 // q if q < 50 else 200 - 2 * q
        if sorted(min(max((b * scale + 50) // 100, 1), 255) for b in _IJG_LUMA) == luma:
            return q
    return None


def _decode_cifar10_pickles(folder: Path) -> ImageSet:
    import torchvision

    try:
        parts = [torchvision.datasets.CIFAR10(str(folder.parent), train=t, download=False) for t in (True, False)]
    except Exception as e:
        raise ReproError(f"{folder} is not a valid CIFAR-10 copy ({str(e).splitlines()[0]})") from None
    xs = [torch.from_numpy(p.data).permute(0, 3, 1, 2).contiguous() for p in parts]
    ys = [torch.tensor(p.targets, dtype=torch.int64) for p in parts]
    return ImageSet("CIFAR-10", xs[0], ys[0], xs[1], ys[1], CIFAR10_CLASSES, str(folder), fingerprint(*xs, *ys))


# ----------------------------------------------------------------------------- decoding MNIST
def _read_idx(path: Path, ndim: int) -> torch.Tensor:
    """Read an idx file (LeCun's format: magic, big-endian sizes, uint8 data)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
        (magic,) = struct.unpack(">I", data[:4])
        if magic != 0x0800 + ndim:
            raise ValueError(f"bad magic number {magic:#x}")
        dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
        body = data[4 + 4 * ndim :]
        if len(body) != int(torch.tensor(dims).prod()):
            raise ValueError(f"{len(body)} data bytes for shape {dims}")
    except (OSError, EOFError, zlib.error, ValueError, struct.error) as e:
        raise ReproError(f"MNIST file {path} is corrupt or truncated ({e}); replace it") from None
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(dims)


def _decode_mnist(raw: Path) -> ImageSet:
    x = {s: _read_idx(_mnist_file(raw, f"{s}-images-idx3-ubyte"), 3).unsqueeze(1) for s in ("train", "t10k")}
    y = {s: _read_idx(_mnist_file(raw, f"{s}-labels-idx1-ubyte"), 1).long() for s in ("train", "t10k")}
    for s in x:
        if len(x[s]) != len(y[s]):
            raise ReproError(f"MNIST {s} images and labels differ in count ({len(x[s])} vs {len(y[s])}) in {raw}")
    return ImageSet(
        "MNIST",
        x["train"],
        y["train"],
        x["t10k"],
        y["t10k"],
        tuple(str(i) for i in range(10)),
        str(raw),
        fingerprint(x["train"], y["train"], x["t10k"], y["t10k"]),
    )
