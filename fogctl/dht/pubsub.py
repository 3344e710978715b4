"""The asyncio adapter between :class:`~fogctl.dht.gossip.GossipRouter` and a DHT node.

Gossip peers are the node's verified DHT contacts plus the members of each joined
topic, found under the DHT key ``fogctl:topic/NAME`` (each member puts its address
there, signed). Frames travel as ``gossip`` notifications on the node's UDP socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from typing import Any

from kademlia.node import Node

from fogctl.dht import wire
from fogctl.dht.gossip import GossipRouter, Message
from fogctl.dht.server import FogServer, parse_hostport
from fogctl.errors import InvalidInput
from fogctl.state.identity import verify

__all__ = ["PubSub", "topic_key"]


def topic_key(topic: str) -> str:
    return f"fogctl:topic/{topic}"


class PubSub:
    """Pub/sub for one :class:`FogServer`; ``start()`` runs the heartbeat."""

    def __init__(self, server: FogServer, *, heartbeat: float = 1.0, advertise: str = "") -> None:
        self.server = server
        self.rng = random.Random(os.urandom(16))
        self.router = GossipRouter(server.public_key, server.identity.sign, verify, self.rng)
        self.interval = heartbeat
        self.advertise = advertise
        self.queues: dict[str, set[asyncio.Queue[Message]]] = {}
        self._task: asyncio.Task[None] | None = None
        server.on_notify = self._on_notify

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._beat())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.sync_peers()
            self.router.heartbeat(time.time())
            self.flush()

    def sync_peers(self) -> None:
        live = {nid for nid, _, _, _ in self.server.protocol.contacts()}
        for nid in live:
            self.router.add_peer(nid)
        for nid in list(self.router.peers):
            if nid not in live and nid not in self.server.protocol.verified:
                self.router.remove_peer(nid)

    def _on_notify(self, node: Node, method: str, args: tuple[Any, ...]) -> None:
        if method != "gossip":
            return
        self.router.handle_frame(node.id, args[0], time.time())
        self.flush()

    def flush(self) -> None:
        proto = self.server.protocol
        for peer, frame in self.router.frames_to_send():
            known = proto.verified.get(peer)
            if known is None:
                continue
            with contextlib.suppress(wire.MalformedMessage):
                proto.notify(Node(peer, *known[1]), "gossip", [frame])
        for msg in self.router.deliveries():
            for q in self.queues.get(msg.topic, set()):
                q.put_nowait(msg)

    async def join(self, topic: str) -> None:
        """Find the topic's members in the DHT, verify and greet them."""
        found = await self.server.get_envelopes(topic_key(topic))
        proto = self.server.protocol
        unknown = []
        for env in found:
            nid = env.signer_id
            if env.signer == self.server.public_key:
                continue
            if nid in proto.verified:
                self.router.add_peer(nid)  # already proved its key: no ping needed
                continue
            try:
                unknown.append(parse_hostport(env.value.decode("ascii")))
            except (UnicodeDecodeError, InvalidInput):
                continue
        # a few new members suffice to join the mesh; the rest come through gossip
        self.rng.shuffle(unknown)
        answers = await asyncio.gather(*(proto.ping_addr(a) for a in unknown[:8]))
        for got in answers:
            if got is not None:
                self.router.add_peer(got[0])
        self.sync_peers()
        self.flush()

    async def subscribe(self, topic: str) -> asyncio.Queue[Message]:
        queue: asyncio.Queue[Message] = asyncio.Queue()
        self.queues.setdefault(topic, set()).add(queue)
        self.router.subscribe(topic)
        self.flush()
        host, port = self.server.address
        me = self.advertise or (f"{host}:{port}" if host not in ("0.0.0.0", "::") else "")
        if me:
            await self.server.put(topic_key(topic), me.encode("ascii"))
        await self.join(topic)
        return queue

    def unsubscribe(self, topic: str, queue: asyncio.Queue[Message]) -> None:
        self.queues.get(topic, set()).discard(queue)
        if not self.queues.get(topic):
            self.router.unsubscribe(topic)
            self.flush()

    async def publish(self, topic: str, data: bytes, *, wait_peers: float = 0.0) -> Message:
        """Publish; with ``wait_peers``, first wait (bounded) until a topic peer is known."""
        if wait_peers and not self.router._topic_peers(topic):
            await self.join(topic)
            end = time.monotonic() + wait_peers
            while not self.router._topic_peers(topic) and time.monotonic() < end:
                await asyncio.sleep(0.02)
        msg = self.router.publish(topic, data, time.time())
        self.flush()
        return msg
