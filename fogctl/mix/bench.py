"""``fogctl mix bench``: Sphinx costs on this machine beside the X25519 floor, same run."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from fogctl.mix import sphinx
from fogctl.mix.primitives import scalar_from_bytes, x25519, x25519_base, x25519_base_mul
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


@dataclass(frozen=True, slots=True)
class Paired:
    value: float  # median of fn's rounds (seconds per call)
    reference: float  # median of ref's rounds
    ratio: float  # median of the per-round ratios fn / ref
    best_ratio: float  # best fn round / best ref round (timeit's convention)


def paired(fn: Callable[[], object], ref: Callable[[], object], repeat: int, inner: int) -> Paired:
    """``fn`` beside ``ref`` over alternating rounds of ``inner`` calls each.

    Alternating keeps a busy shared machine from loading one side more than the
    other; each round's ratio compares two neighbouring measurements, and the median
    of those ratios is the figure reported.
    """
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeat):
        a.append(median_time(fn, 1, inner))
        b.append(median_time(ref, 1, inner))
    return Paired(
        statistics.median(a),
        statistics.median(b),
        statistics.median(x / y for x, y in zip(a, b, strict=True)),
        min(a) / min(b),
    )


def bench_sphinx(hops: int = 5, repeat: int = 30) -> list[MixBenchRecord]:
    sks = [os.urandom(32) for _ in range(hops)]
    path = [sphinx.Hop(os.urandom(20), x25519_base(k), 1000) for k in sks]
    dest, ident = os.urandom(20), os.urandom(16)
    pkt = sphinx.create_forward(path, dest, ident, b"bench", os.urandom)
    alpha = pkt[:32]
    # Rounds of many calls (timeit's convention: steady-state cost), alternating with
    # the reference's rounds so that a busy shared machine loads both sides alike; the
    # median of the per-round ratios is the figure. (Rounds of a handful of calls were
    # tried: each round then pays for its first calls' cold caches, about 30% more on
    # the packet side than on the bare X25519 side, which is not the per-hop cost.)
    hop = paired(
        lambda: sphinx.process(pkt, sks[0]),
        lambda: (x25519(sks[0], alpha), x25519(sks[1], alpha)),
        max(5, repeat // 2),
        200,
    )

    e = scalar_from_bytes(os.urandom(64))

    def chain() -> None:  # what creation must do: one fixed-base, one X25519 per hop
        x25519_base_mul(e)
        for _ in range(hops):
            x25519(sks[0], alpha)

    create = paired(
        lambda: sphinx.create_forward(path, dest, ident, b"bench", os.urandom),
        chain,
        max(5, repeat // 2),
        50,
    )
    us = 1e6
    return [
        MixBenchRecord(
            "per_hop_processing",
            round(hop.value * us, 1),
            "us",
            "2 X25519 (shared secret + blinding)",
            round(hop.reference * us, 1),
            round(hop.ratio, 3),
            round(hop.best_ratio, 3),
        ),
        MixBenchRecord(
            f"create_{hops}_hop_packet",
            round(create.value * us, 1),
            "us",
            f"1 fixed-base + {hops} X25519 (chain once)",
            round(create.reference * us, 1),
            round(create.ratio, 3),
            round(create.best_ratio, 3),
        ),
    ]
