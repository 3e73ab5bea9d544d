"""Seeds mixed from integers, the same on every platform and in every process."""

from __future__ import annotations

import zlib


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (seed, epoch, rank, stream...), stable across platforms and processes."""
    return zlib.crc32(repr(parts).encode()) * 2654435761 % (2**63 - 1)
