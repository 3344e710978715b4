"""Iterative lookups that do not wait on their slowest peer.

The package's ``SpiderCrawl`` sends alpha queries and waits for all of them each round,
so one dead peer costs a whole RPC timeout per round, and its ``ValueSpiderCrawl``
takes the majority of the first round that answers. Here queries are kept in flight
independently: a query that has not answered within ``stall`` seconds stops counting
against alpha (it may still answer), so a lookup proceeds at the pace of live peers.
A value lookup verifies every envelope it receives, keeps the highest valid
sequence per signer and stops once ``quorum`` peers have answered with a valid one
(or the k closest have been asked).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from kademlia.node import Node

from fogctl.dht.envelope import Envelope, InvalidEnvelope, best, check
from fogctl.state.identity import verify

__all__ = ["LookupResult", "lookup"]


@dataclass
class LookupResult:
    nodes: list[Node] = field(default_factory=list)
    envelopes: dict[bytes, Envelope] = field(default_factory=dict)
    contacted: int = 0
    responded: int = 0
    refused: int = 0
    holders: int = 0


async def lookup(
    protocol: Any,
    target: bytes,
    *,
    ksize: int = 20,
    alpha: int = 3,
    value: bool = False,
    signer: bytes = b"",
    quorum: int = 3,
    stall: float = 0.25,
    seeds: list[Node] | None = None,
) -> LookupResult:
    """Find the k closest live nodes to ``target`` (and, with ``value``, its envelopes)."""
    goal = Node(target)
    res = LookupResult()
    known: dict[bytes, Node] = {}
    state: dict[bytes, str] = {}  # id -> asked | ok | failed
    found: list[Envelope] = []
    without_value: list[Node] = []
    for n in seeds if seeds is not None else protocol.neighbors(target, ksize):
        known.setdefault(n.id, n)
    inflight: dict[asyncio.Task[Any], tuple[Node, float]] = {}
    loop = asyncio.get_running_loop()

    def closest_live() -> list[Node]:
        live = [n for i, n in known.items() if state.get(i) != "failed"]
        live.sort(key=lambda n: n.distance_to(goal))
        return live[:ksize]

    def done() -> bool:
        if value and res.holders >= quorum:
            return True
        return all(state.get(n.id) in ("ok",) for n in closest_live())

    try:
        while True:
            if done():
                break
            now = loop.time()
            active = sum(1 for _, t in inflight.values() if now - t < stall)
            for n in closest_live():
                if active >= alpha:
                    break
                if n.id in state:
                    continue
                state[n.id] = "asked"
                res.contacted += 1
                if value:
                    coro = protocol.call_find_value(n, goal, signer)
                else:
                    coro = protocol.call_find_node(n, goal)
                inflight[asyncio.ensure_future(coro)] = (n, loop.time())
                active += 1
            if not inflight:
                break
            finished, _ = await asyncio.wait(
                list(inflight), timeout=stall, return_when=asyncio.FIRST_COMPLETED
            )
            for task in finished:
                peer, _ = inflight.pop(task)
                ok, result = task.result()
                if not ok:
                    state[peer.id] = "failed"
                    continue
                state[peer.id] = "ok"
                res.responded += 1
                if value:
                    envelopes, nodes = result
                    good = _verified(envelopes, target, signer)
                    res.refused += len(envelopes) - len(good)
                    if good:
                        res.holders += 1
                        found.extend(good)
                    else:
                        without_value.append(peer)
                else:
                    nodes = result
                for nid, host, port in nodes:
                    if nid != protocol.source_node.id and nid not in known:
                        known[nid] = Node(nid, host, port)
    finally:
        for task in inflight:
            task.add_done_callback(_quiet)
    res.nodes = [n for n in closest_live() if state.get(n.id) == "ok"]
    res.envelopes = best(found)
    if value and signer and res.envelopes and without_value:
        # cache at the closest node that did not have it (Kademlia section 2.3)
        nearest = min(without_value, key=lambda n: n.distance_to(goal))
        env = res.envelopes.get(signer)
        if env is not None:
            protocol.spawn(protocol.call_store(nearest, target, env.encode()))
    return res


def _quiet(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _verified(envelopes: list[bytes], target: bytes, signer: bytes) -> list[Envelope]:
    now = time.time()
    out = []
    for data in envelopes:
        try:
            env = check(data, now=now, verify=verify, dkey=target)
        except InvalidEnvelope:
            continue
        if signer and env.signer != signer:
            continue
        out.append(env)
    return out
