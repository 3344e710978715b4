"""fogctl dht beside the unmodified ``kademlia`` package, measured in the same run.

    python tests/bench/bench_dht.py [--nodes 500] [--gets 200] [--churn-nodes 200]
                                    [--subscribers 200] [--only lookup|churn|pubsub]

All nodes run in this one process on loopback. Figures printed:

* lookup: success rate, median/p95 latency, median contacted nodes, for ours and the
  package on networks of the same size; the ratio is our signed-record overhead.
* churn: 30% of nodes killed at once; get success and median latency right after
  the kill (ours and the package), then ours again after one refresh period.
* pubsub: p95 delivery latency and duplicate factor with N subscribers.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from kademlia.network import Server

from fogctl.dht.pubsub import PubSub
from fogctl.dht.server import FogServer
from fogctl.state.identity import Identity

logging.disable(logging.CRITICAL)


def ident() -> Identity:
    return Identity(ed25519.Ed25519PrivateKey.generate(), x25519.X25519PrivateKey.generate())


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def ours_network(n: int) -> list[FogServer]:
    servers = [FogServer(ident()) for _ in range(n)]
    for s in servers:
        await s.listen(0, "127.0.0.1")
    first = servers[0].address
    for i in range(1, n, 50):  # join in waves, as a real network grows
        await asyncio.gather(*(s.bootstrap([first]) for s in servers[i : i + 50]))
    return servers


async def upstream_network(n: int, timeout: float = 5.0) -> list[Any]:
    servers = [Server() for _ in range(n)]
    for s in servers:
        await s.listen(0, "127.0.0.1")
        s.protocol._wait_timeout = timeout
    first = ("127.0.0.1", servers[0].transport.get_extra_info("sockname")[1])
    for i in range(1, n, 50):
        await asyncio.gather(*(s.bootstrap([first]) for s in servers[i : i + 50]))
    return servers


class Counting:
    """Counts RPCs a lookup sends (contacted nodes) by wrapping the protocol's calls."""

    def __init__(self, proto: Any, names: tuple[str, ...]) -> None:
        self.count = 0
        for name in names:
            orig = getattr(proto, name)

            async def wrapped(*a: Any, _orig: Any = orig, **kw: Any) -> Any:
                self.count += 1
                return await _orig(*a, **kw)

            setattr(proto, name, wrapped)


async def timed_gets(
    servers: list[Any],
    keys: list[str],
    gets: int,
    expect: dict[str, Any],
    ours: bool,
    rng: random.Random,
) -> dict[str, float]:
    lat, ok, contacted = [], 0, []
    for _ in range(gets):
        s = rng.choice(servers)
        key = rng.choice(keys)
        names = ("call_find_value", "call_find_node")
        counter = Counting(s.protocol, names)
        t = time.perf_counter()
        value = await s.get(key)
        lat.append(time.perf_counter() - t)
        for name in names:
            delattr(s.protocol, name)
        contacted.append(counter.count)
        ok += value == expect[key]
    return {
        "success": ok / gets,
        "median_ms": statistics.median(lat) * 1000,
        "p95_ms": pct(lat, 0.95) * 1000,
        "contacted": statistics.median(contacted),
    }


async def bench_lookup(n: int, gets: int) -> None:
    rng = random.Random(1)
    keys = [f"key-{i}" for i in range(40)]
    t = time.perf_counter()
    ours = await ours_network(n)
    boot_ours = time.perf_counter() - t
    for k in keys:
        await rng.choice(ours).put(k, k.encode())
    r_ours = await timed_gets(ours, keys, gets, {k: k.encode() for k in keys}, True, rng)
    for s in ours:
        s.stop()
    t = time.perf_counter()
    up = await upstream_network(n)
    boot_up = time.perf_counter() - t
    for k in keys:
        await rng.choice(up).set(k, k)
    r_up = await timed_gets(up, keys, gets, {k: k for k in keys}, False, rng)
    for s in up:
        s.stop()
    print(f"lookup, {n} nodes, {gets} gets of {len(keys)} keys (one at a time)")
    row("bootstrap (s)", boot_ours, boot_up, "{:.1f}")
    for name, fmt in (
        ("success", "{:.2%}"),
        ("median_ms", "{:.1f}"),
        ("p95_ms", "{:.1f}"),
        ("contacted", "{:.0f}"),
    ):
        row(name, r_ours[name], r_up[name], fmt)
    ratio = r_ours["median_ms"] / r_up["median_ms"]
    print(f"  signed-record overhead (median latency, ours/kademlia): {ratio:.2f}x")


def row(label: str, ours: float, ref: float, fmt: str) -> None:
    print(f"  {label:<22} ours {fmt.format(ours):>10}    kademlia {fmt.format(ref):>10}")


async def churn_gets(
    servers: list[Any], keys: list[str], expect: dict[str, Any], rng: random.Random, gets: int
) -> tuple[float, float]:
    gate = asyncio.Semaphore(10)  # ten gets in flight: latency, not event-loop queueing

    async def one() -> tuple[bool, float]:
        s = rng.choice(servers)
        k = rng.choice(keys)
        async with gate:
            t = time.perf_counter()
            v = await s.get(k)
            return v == expect[k], time.perf_counter() - t

    results = await asyncio.gather(*(one() for _ in range(gets)))
    return sum(ok for ok, _ in results) / gets, statistics.median(t for _, t in results) * 1000


async def bench_churn(n: int, gets: int) -> None:
    rng = random.Random(2)
    keys = [f"churn-{i}" for i in range(30)]
    ours = await ours_network(n)
    for k in keys:
        await rng.choice(ours).put(k, k.encode())
    rng.shuffle(ours)
    dead, live = ours[: int(n * 0.3)], ours[int(n * 0.3) :]
    for s in dead:
        s.stop()
    exp = {k: k.encode() for k in keys}
    s1, m1 = await churn_gets(live, keys, exp, rng, gets)
    # one refresh period (shortened): lookups refresh buckets, held values are republished
    for s in live:
        s.republish_interval = 0
    await asyncio.gather(*(s._refresh_table() for s in live))
    s2, m2 = await churn_gets(live, keys, exp, rng, gets)
    for s in ours:
        s.stop()

    up = await upstream_network(n)
    for k in keys:
        await rng.choice(up).set(k, k)
    rng.shuffle(up)
    for s in up[: int(n * 0.3)]:
        s.stop()
    su, mu = await churn_gets(up[int(n * 0.3) :], keys, {k: k for k in keys}, rng, gets)
    for s in up:
        s.stop()
    print(f"churn, {n} nodes, 30% killed at once, {gets} gets, 10 in flight")
    row("success after kill", s1, su, "{:.2%}")
    row("median ms after kill", m1, mu, "{:.1f}")
    print(f"  after one refresh      ours {s2:.2%} success, median {m2:.1f} ms")


async def bench_pubsub(subscribers: int, messages: int) -> None:
    servers = await ours_network(subscribers + 1)
    subs = [PubSub(s, heartbeat=0.5) for s in servers]
    for p in subs:
        p.start()
    queues = await asyncio.gather(*(p.subscribe("bench") for p in subs[1:]))
    await asyncio.sleep(1.5)  # three heartbeats: meshes settle
    lat: list[float] = []

    async def receive(q: asyncio.Queue[Any]) -> float:
        await q.get()
        return time.perf_counter()

    for i in range(messages):
        t = time.perf_counter()
        waits = [asyncio.ensure_future(asyncio.wait_for(receive(q), 10)) for q in queues]
        await subs[0].publish("bench", b"m%d" % i)
        got = await asyncio.gather(*waits, return_exceptions=True)
        lat.extend(g - t for g in got if isinstance(g, float))
    delivered = sum(p.router.stats["delivered"] for p in subs)
    dups = sum(p.router.stats["duplicates"] for p in subs)
    for p in subs:
        p.stop()
    for s in servers:
        s.stop()
    print(f"pubsub, {subscribers} subscribers, {messages} messages (D=6, D_low=4, D_high=12)")
    print(f"  delivered             {delivered}/{subscribers * messages}")
    p95 = pct(lat, 0.95) * 1000
    print(
        f"  delivery latency       median {statistics.median(lat) * 1000:.1f} ms, p95 {p95:.1f} ms"
    )
    factor = (delivered + dups) / max(delivered, 1)
    print(f"  duplicate factor       {factor:.2f} copies received per delivery")
    fanout = sum(len(s.protocol.contacts()) for s in servers) / len(servers)
    print(f"  reference: flooding would send each message over every contact ({fanout:.1f} each)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=500)
    ap.add_argument("--gets", type=int, default=200)
    ap.add_argument("--churn-nodes", type=int, default=200)
    ap.add_argument("--churn-gets", type=int, default=50)
    ap.add_argument("--subscribers", type=int, default=200)
    ap.add_argument("--messages", type=int, default=10)
    ap.add_argument("--only", choices=["lookup", "churn", "pubsub"])
    a = ap.parse_args()
    if a.only in (None, "lookup"):
        asyncio.run(bench_lookup(a.nodes, a.gets))
    if a.only in (None, "churn"):
        asyncio.run(bench_churn(a.churn_nodes, a.churn_gets))
    if a.only in (None, "pubsub"):
        asyncio.run(bench_pubsub(a.subscribers, a.messages))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
