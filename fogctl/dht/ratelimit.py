"""Per-peer token buckets (sans-IO: the caller passes ``now``)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

__all__ = ["RateLimiter"]


class RateLimiter:
    """``rate`` tokens per second per peer, bursts up to ``burst``; bounded memory."""

    def __init__(self, rate: float, burst: float, *, max_peers: int = 4096) -> None:
        self.rate = rate
        self.burst = burst
        self.max_peers = max_peers
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()
        self.refused = 0

    def allow(self, peer: Hashable, now: float, cost: float = 1.0) -> bool:
        tokens, last = self._buckets.pop(peer, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
        ok = tokens >= cost
        if ok:
            tokens -= cost
        else:
            self.refused += 1
        self._buckets[peer] = (tokens, now)
        while len(self._buckets) > self.max_peers:
            self._buckets.popitem(last=False)
        return ok
