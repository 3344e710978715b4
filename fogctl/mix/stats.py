"""Small statistics for the timing checks: Kolmogorov-Smirnov tests and entropy.

Kept free of numpy/scipy so the node can report them cheaply; the tests compare the
p-values with scipy's.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

__all__ = ["entropy_bits", "kolmogorov_p", "ks_2samp", "ks_exponential"]


def kolmogorov_p(d: float, n_eff: float) -> float:
    """Asymptotic p-value of a KS statistic ``d`` (Stephens' small-sample correction)."""
    if n_eff <= 0:
        return 1.0
    s = math.sqrt(n_eff)
    lam = (s + 0.12 + 0.11 / s) * d
    if lam < 1e-3:
        return 1.0
    total = 0.0
    for j in range(1, 101):
        term = 2 * (-1) ** (j - 1) * math.exp(-2 * j * j * lam * lam)
        total += term
        if abs(term) < 1e-12:
            break
    return min(1.0, max(0.0, total))


def ks_exponential(samples: Sequence[float], mean: float) -> float:
    """p-value that ``samples`` come from the exponential distribution with ``mean``."""
    xs = sorted(samples)
    n = len(xs)
    if n == 0:
        raise ValueError("no samples")
    d = 0.0
    for i, x in enumerate(xs):
        cdf = 1.0 - math.exp(-max(x, 0.0) / mean)
        d = max(d, (i + 1) / n - cdf, cdf - i / n)
    return kolmogorov_p(d, n)


def ks_2samp(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(D, p-value) of the two-sample KS test."""
    xa, xb = sorted(a), sorted(b)
    na, nb = len(xa), len(xb)
    if not na or not nb:
        raise ValueError("no samples")
    d = 0.0
    for x in xa + xb:
        fa = bisect.bisect_right(xa, x) / na
        fb = bisect.bisect_right(xb, x) / nb
        d = max(d, abs(fa - fb))
    return d, kolmogorov_p(d, na * nb / (na + nb))


def entropy_bits(probabilities: Sequence[float]) -> float:
    """Shannon entropy in bits of a distribution (zeros ignored)."""
    return -sum(p * math.log2(p) for p in probabilities if p > 0)
