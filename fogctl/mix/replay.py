"""Replay protection: a Bloom filter of per-hop replay tags, persisted in the state dir.

Sizing (the defaults, after Nym's mix nodes): the filter must remember every packet
of one key epoch plus the overlap window, 24 h + 1 h = 25 h, at 2,000 packets/s::

    n = 25 * 3600 * 2000           = 180,000,000 tags
    p = 1e-5                       (a fresh packet is wrongly refused once in 100,000)
    m = -n ln p / (ln 2)^2         = 4.31e9 bits = 539 MB (a sparse file)
    k = (m / n) ln 2               = 17 hash functions

Both are configurable (``fogctl mix serve --replay-capacity``; the false-positive
rate through :class:`ReplayGuard`). The file is memory-mapped, so a restart keeps
every tag written to it; ``serve`` flushes it at every directory sync (``--sync``,
30 s) and on a clean stop, and the kernel writes dirty pages back on its own, so a
crash of the process loses nothing and a crash of the machine at most the last
interval.

A full filter never crashes the node and never degrades silently: when ``count``
reaches ``capacity`` the guard starts a fresh generation and keeps the full one for
look-ups only (two generations per epoch at most; when a third would be needed the
oldest is dropped and ``dropped_generations`` counts it). Each key epoch has its own
guard; when an epoch's key retires its filter files are deleted.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import struct
from pathlib import Path

from fogctl.errors import StateError
from fogctl.mix.primitives import blake2b_keyed

__all__ = ["BloomFilter", "ReplayGuard", "bloom_parameters"]

_MAGIC = b"FOGBLM1\x00"
_HDR = struct.Struct(">8sQQQd")  # magic, m bits, k, count, fpr
_HDR_SIZE = 64

DEFAULT_CAPACITY = 25 * 3600 * 2000
DEFAULT_FPR = 1e-5


def bloom_parameters(capacity: int, fpr: float) -> tuple[int, int]:
    """(m bits, k hashes) for ``capacity`` items at false-positive rate ``fpr``."""
    if capacity < 1 or not 0 < fpr < 1:
        raise ValueError("capacity must be >= 1 and 0 < fpr < 1")
    m = math.ceil(-capacity * math.log(fpr) / (math.log(2) ** 2))
    m = (m + 7) // 8 * 8
    k = max(1, round(m / capacity * math.log(2)))
    return m, k


class BloomFilter:
    """A Bloom filter in a memory-mapped file (header + bit array)."""

    def __init__(self, path: Path, capacity: int, fpr: float) -> None:
        self.path = path
        m, k = bloom_parameters(capacity, fpr)
        self.capacity = capacity
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateError(f"{path}: cannot open replay filter: {exc.strerror}") from None
        try:
            size = os.fstat(fd).st_size
            if size >= _HDR_SIZE:
                magic, m0, k0, count, _ = _HDR.unpack(os.pread(fd, _HDR.size, 0))
                if magic != _MAGIC or size != _HDR_SIZE + m0 // 8 or k0 < 1:
                    raise StateError(f"{path}: not a fogctl replay filter (remove it to reset)")
                m, k = m0, k0
            else:
                count = 0
                os.ftruncate(fd, _HDR_SIZE + m // 8)  # sparse: pages appear as bits are set
                os.pwrite(fd, _HDR.pack(_MAGIC, m, k, 0, fpr), 0)
            self._mm = mmap.mmap(fd, _HDR_SIZE + m // 8)
        finally:
            os.close(fd)
        self.m: int = int(m)
        self.k: int = int(k)
        self.count: int = int(count)
        self.fpr = fpr

    def _indexes(self, item: bytes) -> list[int]:
        h = blake2b_keyed(b"", item, 16)
        h1 = int.from_bytes(h[:8], "little")
        h2 = int.from_bytes(h[8:], "little") | 1
        m = self.m
        return [(h1 + i * h2) % m for i in range(self.k)]

    def __contains__(self, item: bytes) -> bool:
        mm = self._mm
        return all(bool(mm[_HDR_SIZE + (i >> 3)] & (1 << (i & 7))) for i in self._indexes(item))

    def add(self, item: bytes) -> bool:
        """Insert ``item``; True if it was (probably) already present."""
        mm = self._mm
        present = True
        for i in self._indexes(item):
            pos = _HDR_SIZE + (i >> 3)
            bit = 1 << (i & 7)
            byte = mm[pos]
            if not byte & bit:
                present = False
                mm[pos] = byte | bit
        if not present:
            self.count += 1
        return present

    @property
    def full(self) -> bool:
        return self.count >= self.capacity

    def flush(self) -> None:
        self._mm[: _HDR.size] = _HDR.pack(_MAGIC, self.m, self.k, self.count, self.fpr)
        self._mm.flush()

    def close(self) -> None:
        if not self._mm.closed:
            self.flush()
            self._mm.close()


class ReplayGuard:
    """The replay filters of one key epoch: ``seen(tag)`` records and answers."""

    def __init__(
        self,
        directory: Path,
        epoch: int,
        *,
        capacity: int = DEFAULT_CAPACITY,
        fpr: float = DEFAULT_FPR,
    ) -> None:
        self.directory = directory
        self.epoch = epoch
        self.capacity = capacity
        self.fpr = fpr
        self.dropped_generations = 0
        self.rotations = 0
        gens = sorted(self._generations())
        if not gens:
            gens = [0]
        self._filters = [self._open(g) for g in gens[-2:]]
        for g in gens[:-2]:
            self._path(g).unlink(missing_ok=True)

    def _path(self, gen: int) -> Path:
        return self.directory / f"replay-{self.epoch}-{gen}.bloom"

    def _generations(self) -> list[int]:
        out = []
        for p in self.directory.glob(f"replay-{self.epoch}-*.bloom"):
            with contextlib.suppress(ValueError):
                out.append(int(p.stem.rsplit("-", 1)[1]))
        return out

    def _open(self, gen: int) -> BloomFilter:
        bf = BloomFilter(self._path(gen), self.capacity, self.fpr)
        bf.generation = gen  # type: ignore[attr-defined]
        return bf

    def seen(self, tag: bytes) -> bool:
        current = self._filters[-1]
        for old in self._filters[:-1]:
            if tag in old:
                return True
        if current.add(tag):
            return True
        if current.full:
            self._rotate()
        return False

    def _rotate(self) -> None:
        gen = getattr(self._filters[-1], "generation", 0) + 1
        self._filters.append(self._open(gen))
        self.rotations += 1
        while len(self._filters) > 2:
            old = self._filters.pop(0)
            old.close()
            old.path.unlink(missing_ok=True)
            self.dropped_generations += 1

    @property
    def count(self) -> int:
        return sum(f.count for f in self._filters)

    def flush(self) -> None:
        for f in self._filters:
            f.flush()

    def close(self) -> None:
        for f in self._filters:
            f.close()

    def destroy(self) -> None:
        """Close and delete this epoch's files (its key has retired)."""
        self.close()
        for g in self._generations():
            self._path(g).unlink(missing_ok=True)
