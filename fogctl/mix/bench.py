"""``fogctl mix bench``: Sphinx costs on this machine beside the X25519 floor, same run."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

from fogctl.mix import sphinx
from fogctl.mix.primitives import x25519, x25519_base
from fogctl.mix.records import MixBenchRecord

__all__ = ["bench_sphinx", "median_time"]


def median_time(fn: Callable[[], object], repeat: int, inner: int = 20) -> float:
    """Median over ``repeat`` rounds of the mean time of ``inner`` calls (seconds)."""
    rounds = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        rounds.append((time.perf_counter() - t) / inner)
    return statistics.median(rounds)


def paired(
    fn: Callable[[], object], ref: Callable[[], object], repeat: int, inner: int
) -> tuple[float, float, float]:
    """Best times of ``fn`` and ``ref`` over alternating rounds, and their ratio.

    Alternating keeps a busy shared machine from loading one side more than the
    other; the best round is the least disturbed one (timeit's convention).
    """
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeat):
        a.append(median_time(fn, 1, inner))
        b.append(median_time(ref, 1, inner))
    return min(a), min(b), min(a) / min(b)


def bench_sphinx(hops: int = 5, repeat: int = 30) -> list[MixBenchRecord]:
    sks = [os.urandom(32) for _ in range(hops)]
    path = [sphinx.Hop(os.urandom(20), x25519_base(k), 1000) for k in sks]
    dest, ident = os.urandom(20), os.urandom(16)
    pkt = sphinx.create_forward(path, dest, ident, b"bench", os.urandom)
    alpha = pkt[:32]
    per_hop, floor_hop, r_hop = paired(
        lambda: sphinx.process(pkt, sks[0]),
        lambda: (x25519(sks[0], alpha), x25519(sks[1], alpha)),
        repeat,
        20,
    )

    def chain() -> None:
        for _ in range(hops + 1):
            x25519(sks[0], alpha)

    create, floor_create, r_create = paired(
        lambda: sphinx.create_forward(path, dest, ident, b"bench", os.urandom), chain, repeat, 5
    )
    us = 1e6
    return [
        MixBenchRecord(
            "per_hop_processing",
            round(per_hop * us, 1),
            "us",
            "2 X25519 (shared secret + blinding)",
            round(floor_hop * us, 1),
            round(r_hop, 3),
        ),
        MixBenchRecord(
            f"create_{hops}_hop_packet",
            round(create * us, 1),
            "us",
            f"{hops + 1} X25519 (blinding chain once)",
            round(floor_create * us, 1),
            round(r_create, 3),
        ),
    ]
