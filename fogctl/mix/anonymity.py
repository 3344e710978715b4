"""How anonymous is a message, really? A Loopix-style sender-entropy simulation.

Model: ``senders`` clients each emit packets (real or cover, indistinguishable) as
Poisson processes of rate ``rate`` per second. A message crosses ``hops`` mixes, each
holding it an exponential time of mean ``mean_delay``, so its end-to-end latency is
Erlang(hops, 1/mean_delay). A global passive adversary sees every packet enter and
leave the network but nothing inside honest mixes. For a packet leaving at time T,
the probability that it is the one that entered at t_i is proportional to the
Erlang density at ``T - t_i``; summing by sender gives a distribution whose Shannon
entropy (bits) is the sender anonymity of that message (Loopix, section 5). We
report the mean over many messages and ``2^H``, the effective number of senders.

With one sender, or so little traffic that nothing overlaps a message in time, H is
0: an anonymity set of one. The report says so instead of hiding it.
"""

from __future__ import annotations

import bisect
import math
import random

from fogctl.mix.records import AnonymityRecord
from fogctl.mix.stats import entropy_bits

__all__ = ["simulate_entropy"]


def _erlang_pdf(x: float, k: int, rate: float) -> float:
    if x <= 0:
        return 0.0
    return math.exp(k * math.log(rate) + (k - 1) * math.log(x) - rate * x - math.lgamma(k))


def simulate_entropy(
    senders: int,
    rate: float,
    mean_delay: float,
    hops: int,
    *,
    samples: int = 200,
    rng: random.Random | None = None,
) -> AnonymityRecord:
    """Mean sender entropy per message for the given load (see the module docstring)."""
    if senders < 1 or rate <= 0 or mean_delay <= 0 or hops < 1:
        raise ValueError("senders >= 1, rate > 0, mean_delay > 0, hops >= 1")
    rng = rng or random.Random()
    mu = 1.0 / mean_delay
    span = hops * mean_delay
    horizon = max(20 * span, 200.0 / (senders * rate))
    arrivals: list[tuple[float, int]] = []
    for s in range(senders):
        t = rng.expovariate(rate)
        while t < horizon:
            arrivals.append((t, s))
            t += rng.expovariate(rate)
    arrivals.sort()
    times = [a[0] for a in arrivals]
    window = span + 12 * math.sqrt(hops) * mean_delay
    total = 0.0
    n = 0
    for _ in range(samples):
        if not arrivals:
            break
        i = rng.randrange(len(arrivals))
        t0 = times[i]
        if t0 < window:  # need the full past window
            continue
        latency = sum(rng.expovariate(mu) for _ in range(hops))
        depart = t0 + latency
        lo = bisect.bisect_left(times, depart - window)
        hi = bisect.bisect_right(times, depart)
        weights: dict[int, float] = {}
        for t, s in arrivals[lo:hi]:
            w = _erlang_pdf(depart - t, hops, mu)
            if w > 0:
                weights[s] = weights.get(s, 0.0) + w
        z = sum(weights.values())
        if z <= 0:
            continue
        total += entropy_bits([w / z for w in weights.values()])
        n += 1
    h = total / n if n else 0.0
    eff = 2.0**h
    if senders == 1 or eff < 1.5:
        note = "anonymity set of one: too little traffic to hide in; raise cover rates or delay"
    elif eff < 0.5 * senders:
        note = f"about {eff:.1f} of {senders} senders are indistinguishable; more traffic helps"
    else:
        note = f"about {eff:.1f} of {senders} senders are indistinguishable"
    return AnonymityRecord(
        senders=senders,
        rate_per_sender=rate,
        mean_delay_ms=mean_delay * 1000,
        hops=hops,
        entropy_bits=round(h, 3),
        effective_senders=round(eff, 2),
        note=note,
    )
