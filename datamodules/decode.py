"""Decoding the image data sets into uint8 tensors, with the checks that refuse a damaged or incomplete copy
(see ``datamodules/catalog.py`` for where copies are found and how the decoded tensors are cached)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import sys
import tarfile
import tempfile
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from base.errors import ReproError
from datamodules.files import data_dir

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_PER_CLASS = {"train": 5000, "test": 1000}  # the published copy: 50,000 training and 10,000 test images
MNIST_IMAGES = {"train": 60000, "test": 10000}


@dataclass
class ImageSet:
    """A whole labelled image data set held as uint8 tensors [N, C, H, W]."""

    # as printed in results tables, e.g. "CIFAR-10 (JPEG q75 mirror)", "CIFAR-10 (JPEG q75 mirror, 60/30 images per
    # class)" for a copy smaller than the published one
    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    source: str  # the file or folder it was read from
    fingerprint: str  # sha256 of the decoded tensors, first 16 hex digits


def fingerprint(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.contiguous().numpy())  # the buffer itself: no copy of a (memory-mapped) data set
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- decoding CIFAR-10
def decode_cifar10(source: Path) -> ImageSet:
    if source.name == "cifar-10-batches-py":
        return _decode_cifar10_pickles(source)
    files = _archive_members(source) if source.is_file() else _folder_members(source)
    splits: dict[str, list[tuple[str, bytes, str]]] = {"train": [], "test": []}  # (path, file, class)
    for rel, data in files:
        parts = rel.split("/")
        # .../{train,test}/<class>/<file>: find the split folder anywhere in the path
        for i in range(len(parts) - 2):
            if parts[i] in splits and parts[i + 2] and not parts[i + 2].startswith("."):
                splits[parts[i]].append((rel, data, parts[i + 1]))
                break
    if not splits["train"] or not splits["test"]:
        raise ReproError(
            f"{source} is not an ImageFolder copy of CIFAR-10: expected {{train,test}}/<class>/<image> files"
        )
    per_class = {
        split: _images_per_class(split, [c for _, _, c in members], source) for split, members in splits.items()
    }
    xs, ys = {}, {}
    for split, members in splits.items():
        xs[split] = _decode_images([(rel, data) for rel, data, _ in members], source)
        ys[split] = torch.tensor([CIFAR10_CLASSES.index(c) for _, _, c in members], dtype=torch.int64)
    details = []
    quality = _jpeg_quality(splits["test"][0][1])
    if quality is not None:
        details.append(f"JPEG q{quality} mirror")
    if per_class != CIFAR10_PER_CLASS:
        details.append(f"{per_class['train']:,}/{per_class['test']:,} images per class")
    return ImageSet(
        "CIFAR-10" + (f" ({', '.join(details)})" if details else ""),
        xs["train"],
        ys["train"],
        xs["test"],
        ys["test"],
        CIFAR10_CLASSES,
        str(source),
        fingerprint(xs["train"], ys["train"], xs["test"], ys["test"]),
    )


def _images_per_class(split: str, labels: list[str], source: Path) -> int:
    """The images each class of a split holds: the ten CIFAR-10 classes, the same number each (the published copy
    has 5,000 and 1,000; a deliberately smaller copy is accepted, but a copy cut short or missing files is not)."""
    counts = Counter(labels)
    missing = [c for c in CIFAR10_CLASSES if c not in counts]
    unknown = sorted(set(counts) - set(CIFAR10_CLASSES))
    if missing or unknown:
        found = f"lacks the class {missing[0]}" if missing else f"has a class {unknown[0]!r} that CIFAR-10 has not"
        raise ReproError(
            f"{source} is not a complete copy of CIFAR-10: its {split} split {found} "
            f"(expected the folders {', '.join(CIFAR10_CLASSES)}); replace it"
        )
    fewest, most = min(CIFAR10_CLASSES, key=counts.__getitem__), max(CIFAR10_CLASSES, key=counts.__getitem__)
    if counts[fewest] != counts[most]:
        raise ReproError(
            f"{source} is incomplete: its {split} classes hold different numbers of images ({fewest} "
            f"{counts[fewest]:,}, {most} {counts[most]:,}; CIFAR-10 has {CIFAR10_PER_CLASS[split]:,} of each); "
            "the copy is truncated or damaged; replace it"
        )
    return counts[fewest]


def _folder_members(folder: Path):
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            yield p.relative_to(folder).as_posix(), p.read_bytes()


def _archive_members(archive: Path) -> list[tuple[str, memoryview]]:
    """(path, bytes) of every file in a tar archive, sorted by path; one-line error if corrupt.

    A gzip stream is decompressed to its end, so that its CRC and length are checked; reading only as far as
    tarfile asks would miss damage anywhere it stops early. And tarfile stops early without a word at the first
    header it cannot parse (a damaged one too): after the last member there must be the end-of-archive marker
    (two 512-byte blocks of zeros) and nothing but zeros."""
    verify_checksum(archive, data_dir())
    try:
        raw = archive.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            found = sorted((m.name, m.offset_data, m.size) for m in tar if m.isfile())
            end = tar.offset
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise ReproError(f"archive {archive} is corrupt or truncated ({type(e).__name__}: {e}); replace it") from None
    if len(raw) - end < 1024 or raw[end:].strip(b"\0") or any(start + n > len(raw) for _, start, n in found):
        raise ReproError(
            f"archive {archive} is corrupt or truncated (its tar stream breaks off at byte {end:,} of {len(raw):,}, "
            "without the end-of-archive marker); replace it"
        )
    view = memoryview(raw)
    return [(name, view[start : start + n]) for name, start, n in found]


def verify_checksum(path: Path, root: Path) -> None:
    """If a ``SHA256SUMS`` file beside ``path``, or in a folder above it up to ``root``, lists it (by its path
    relative to that folder, as ``sha256sum`` writes it), the file must match."""
    folder = path.parent
    while True:
        sums = folder / "SHA256SUMS"
        if sums.is_file():
            rel = path.relative_to(folder).as_posix()
            for line in sums.read_text().splitlines():
                digest, _, name = line.strip().partition(" ")
                name = name.lstrip(" *")
                if name.removeprefix("./") == rel:
                    h = hashlib.sha256()
                    with open(path, "rb") as f:
                        for chunk in iter(lambda: f.read(1 << 20), b""):
                            h.update(chunk)
                    if h.hexdigest() != digest.lower():
                        raise ReproError(
                            f"{path} does not match its checksum in {sums}: the file is corrupt; replace it"
                        )
                    return
        if folder == root or folder.parent == folder or root not in folder.parents:
            return
        folder = folder.parent


class _StderrCapture:
    """Send what is written to file descriptor 2 (where C libraries print) into a temporary file, to be read back.

    libjpeg decodes damaged data as best it can and only prints a warning ("Corrupt JPEG data: 6 extraneous bytes
    before marker 0xd9") to stderr; text appearing there during one image's decode marks that image as damaged.
    Python warnings raised meanwhile are held back and shown afterwards, so that they are not mistaken for it."""

    def __enter__(self):
        sys.stderr.flush()
        self._sink = tempfile.TemporaryFile()
        self._seen = 0
        self._saved = os.dup(2)
        os.dup2(self._sink.fileno(), 2)
        self._warnings = warnings.catch_warnings(record=True)
        self._caught = self._warnings.__enter__()
        return self

    def new_text(self) -> str:
        """The first line written since the last call, or ''."""
        size = os.fstat(self._sink.fileno()).st_size
        if size == self._seen:
            return ""
        text = os.pread(self._sink.fileno(), size - self._seen, self._seen).decode(errors="replace")
        self._seen = size
        return text.strip().splitlines()[0] if text.strip() else ""

    def __exit__(self, *exc):
        self._warnings.__exit__(*exc)
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._sink.close()
        for w in self._caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return False


def _decode_images(members: list[tuple[str, bytes]], source: Path) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_image

    out = []
    with _StderrCapture() as stderr:
        for rel, data in members:
            try:
                image = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
            except RuntimeError as e:  # "decode_jpeg, <source file>:<line>, Bogus marker length"
                reason = str(e).splitlines()[0].rpartition(", ")[2] if str(e).strip() else type(e).__name__
                raise ReproError(f"image {rel} in {source} cannot be decoded ({reason}); the copy is corrupt") from None
            warning = stderr.new_text()
            if warning:
                raise ReproError(f"image {rel} in {source} is damaged (libjpeg: {warning}); the copy is corrupt")
            if image.shape != (3, 32, 32):
                raise ReproError(
                    f"image {rel} in {source} is {image.shape[2]}x{image.shape[1]}; CIFAR-10 images are 32x32"
                )
            out.append(image)
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
    """Read an idx file (LeCun's format: magic, big-endian sizes, uint8 data); a gzipped one is read to its end,
    so that its CRC is checked."""
    verify_checksum(path, data_dir())
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


def mnist_file(raw: Path, stem: str) -> Path | None:
    for candidate in (raw / stem, raw / (stem + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def decode_mnist(raw: Path) -> ImageSet:
    x = {s: _read_idx(mnist_file(raw, f"{s}-images-idx3-ubyte"), 3).unsqueeze(1) for s in ("train", "t10k")}
    y = {s: _read_idx(mnist_file(raw, f"{s}-labels-idx1-ubyte"), 1).long() for s in ("train", "t10k")}
    for s in x:
        if len(x[s]) != len(y[s]):
            raise ReproError(f"MNIST {s} images and labels differ in count ({len(x[s])} vs {len(y[s])}) in {raw}")
        if x[s].shape[2:] != (28, 28):
            raise ReproError(f"MNIST {s} images in {raw} are {x[s].shape[3]}x{x[s].shape[2]}; MNIST's are 28x28")
        if len(y[s]) and int(y[s].max()) > 9:
            raise ReproError(f"MNIST {s} labels in {raw} hold the label {int(y[s].max())}; MNIST's are 0-9")
    counts = {"train": len(x["train"]), "test": len(x["t10k"])}
    name = "MNIST" if counts == MNIST_IMAGES else f"MNIST ({counts['train']:,}/{counts['test']:,} images)"
    return ImageSet(
        name,
        x["train"],
        y["train"],
        x["t10k"],
        y["t10k"],
        tuple(str(i) for i in range(10)),
        str(raw),
        fingerprint(x["train"], y["train"], x["t10k"], y["t10k"]),
    )
