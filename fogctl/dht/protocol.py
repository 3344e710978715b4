"""The Kademlia RPC protocol, hardened: a :class:`kademlia.protocol.KademliaProtocol`.

What it changes in the package's behaviour (each has a test in tests/dht):

* every datagram goes through the strict decoder in :mod:`fogctl.dht.wire`: oversized,
  malformed and ill-typed messages are dropped and counted, never raised;
* a request carries the sender's Ed25519 key; its node id is derived from the key and
  a contact enters the routing table only after it signed a fresh ping nonce
  (S/Kademlia-style), so a claimed id is always checked;
* STORE accepts only verified envelopes (signature, expiry, size, sequence);
* per-peer token buckets on requests and, tighter, on STOREs;
* ``welcome_if_new`` hands values to a new close node by their real key id (the
  package hashes the already-hashed key);
* responses are matched to the address that was asked and checked against the
  method's answer schema.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from kademlia.node import Node
from kademlia.protocol import KademliaProtocol

from fogctl.dht import wire
from fogctl.dht.envelope import HEADER, MAX_VALUE
from fogctl.dht.ratelimit import RateLimiter
from fogctl.dht.storage import ValueStorage
from fogctl.state.identity import node_id_for, verify

log = logging.getLogger("fogctl.dht")

PING_DOMAIN = b"fogctl-dht-ping-v1\x00"
Addr = tuple[str, int]

__all__ = ["PING_DOMAIN", "FogProtocol"]


class FogProtocol(KademliaProtocol):  # type: ignore[misc]
    """One node's UDP endpoint: RPC server and client, routing table, verified contacts."""

    def __init__(
        self,
        source_node: Node,
        storage: ValueStorage,
        ksize: int,
        *,
        public_key: bytes,
        sign: Callable[[bytes], bytes],
        rpc_timeout: float = 2.0,
        request_rate: float = 200.0,
        store_rate: float = 20.0,
        client: bool = False,
        on_notify: Callable[[Node, str, tuple[Any, ...]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(source_node, storage, ksize)
        self.public_key = public_key
        self._sign = sign
        self._wait_timeout = rpc_timeout
        self.client = client
        self.on_notify = on_notify
        self.clock = clock
        self.requests = RateLimiter(request_rate, request_rate * 2)
        self.stores = RateLimiter(store_rate, store_rate * 2)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.misses: dict[bytes, int] = {}
        self._held: dict[bytes, list[tuple[str, tuple[Any, ...]]]] = {}
        self.verified: dict[bytes, tuple[bytes, Addr]] = {}
        self._verifying: set[bytes] = set()
        self._outstanding: dict[bytes, tuple[asyncio.Future[Any], Any, str, Addr]] = {}
        self.stats: dict[str, int] = {
            "received": 0,
            "malformed": 0,
            "oversized": 0,
            "rate_limited": 0,
            "unsolicited": 0,
            "store_refused": 0,
            "identity_refused": 0,
        }

    def spawn(self, coro: Any) -> None:
        """Run a background coroutine, keeping a reference until it ends."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for future, timer, _, _ in self._outstanding.values():
            timer.cancel()
            if not future.done():
                future.set_result((False, None))
        self._outstanding.clear()

    # -- receiving --------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Any) -> None:
        addr = (addr[0], addr[1])
        self.stats["received"] += 1
        if len(data) > wire.MAX_DATAGRAM:
            self.stats["oversized"] += 1
            return
        try:
            msg = wire.decode_datagram(data)
        except wire.MalformedMessage as exc:
            self.stats["malformed"] += 1
            log.debug("dropped datagram from %s: %s", addr, exc)
            return
        if isinstance(msg, wire.Response):
            self._accept_response_msg(msg, addr)
            return
        if self.client:
            return  # a brief client answers nobody and enters no routing table
        if not self.requests.allow(addr, self.clock()):
            self.stats["rate_limited"] += 1
            return
        sender_key: bytes = msg.args[0]
        sender = Node(bytes.fromhex(node_id_for(sender_key)), addr[0], addr[1])
        if sender.id == self.source_node.id:
            return
        if isinstance(msg, wire.Notify):
            if self.on_notify is None:
                return
            if self.is_verified(sender):
                self.on_notify(sender, msg.method, msg.args[1:])
                return
            # hold a few notifications until the sender has proved its key
            held = self._held.setdefault(sender.id, [])
            if len(held) < 8 and len(self._held) < 256:
                held.append((msg.method, msg.args[1:]))
            self.welcome_if_new(sender, sender_key)
            return
        handler = getattr(self, f"rpc_{msg.method}")
        try:
            result = handler(addr, *msg.args)
            out = wire.encode_response(msg.msg_id, result)
        except wire.MalformedMessage:
            self.stats["malformed"] += 1
            return
        if self.transport is not None:
            self.transport.sendto(out, addr)
        self.welcome_if_new(sender, sender_key)

    def _accept_response_msg(self, msg: wire.Response, addr: Addr) -> None:
        entry = self._outstanding.get(msg.msg_id)
        if entry is None or entry[3] != addr:
            self.stats["unsolicited"] += 1
            return
        future, timer, method, _ = entry
        try:
            result = wire.parse_result(method, msg.body)
        except wire.MalformedMessage:
            self.stats["malformed"] += 1
            result = None
            ok = False
        else:
            ok = True
        timer.cancel()
        del self._outstanding[msg.msg_id]
        if not future.done():
            future.set_result((ok, result))

    # -- sending ----------------------------------------------------------------------

    def _call(self, addr: Addr, method: str, args: list[Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        msg_id = os.urandom(20)
        data = wire.encode_request(msg_id, method, [self.public_key, *args])
        if self.transport is None or self.transport.is_closing():
            future.set_result((False, None))
            return future
        timer = loop.call_later(self._wait_timeout, self._expire, msg_id)
        self._outstanding[msg_id] = (future, timer, method, addr)
        self.transport.sendto(data, addr)
        return future

    def _expire(self, msg_id: bytes) -> None:
        entry = self._outstanding.pop(msg_id, None)
        if entry is not None and not entry[0].done():
            entry[0].set_result((False, None))

    def notify(self, node: Node, method: str, args: list[Any]) -> None:
        """Send a one-way notification (gossip) to a contact."""
        if self.transport is None or self.transport.is_closing():
            return
        data = wire.encode_notify(os.urandom(20), method, [self.public_key, *args])
        self.transport.sendto(data, (node.ip, node.port))

    async def ping_addr(self, addr: Addr) -> tuple[bytes, bytes] | None:
        """Ping an address and check its key signed our nonce: ``(node_id, key)``."""
        nonce = os.urandom(16)
        ok, result = await self._call(addr, "ping", [nonce])
        if not ok:
            return None
        key, sig = result
        if not verify(key, sig, PING_DOMAIN + nonce):
            self.stats["identity_refused"] += 1
            return None
        nid = bytes.fromhex(node_id_for(key))
        self.verified[nid] = (key, addr)
        return nid, key

    async def call_ping(self, node_to_ask: Node) -> tuple[bool, Any]:
        got = await self.ping_addr((node_to_ask.ip, node_to_ask.port))
        ok = got is not None and got[0] == node_to_ask.id
        if not ok and got is not None:
            self.stats["identity_refused"] += 1
        return self.handle_call_response((ok, got), node_to_ask)

    async def call_find_node(self, node_to_ask: Node, node_to_find: Node) -> tuple[bool, Any]:
        result = await self._call(
            (node_to_ask.ip, node_to_ask.port), "find_node", [node_to_find.id]
        )
        return self.handle_call_response(result, node_to_ask)

    async def call_find_value(
        self, node_to_ask: Node, node_to_find: Node, signer: bytes = b""
    ) -> tuple[bool, Any]:
        addr = (node_to_ask.ip, node_to_ask.port)
        result = await self._call(addr, "find_value", [node_to_find.id, signer])
        return self.handle_call_response(result, node_to_ask)

    async def call_store(self, node_to_ask: Node, key: bytes, value: bytes) -> tuple[bool, Any]:
        result = await self._call((node_to_ask.ip, node_to_ask.port), "store", [value])
        return self.handle_call_response(result, node_to_ask)

    # -- the RPCs ---------------------------------------------------------------------

    def rpc_ping(self, sender: Addr, key: bytes, nonce: bytes) -> list[bytes]:
        return [self.public_key, self._sign(PING_DOMAIN + nonce)]

    def rpc_find_node(self, sender: Addr, key: bytes, target: bytes) -> list[list[Any]]:
        exclude = Node(b"\0" * 20, sender[0], sender[1])
        neighbors = self.neighbors(target, exclude=exclude)
        return [[n.id, n.ip, n.port] for n in neighbors]

    def neighbors(
        self, target: bytes, k: int | None = None, exclude: Node | None = None
    ) -> list[Node]:
        """The k closest contacts to ``target``, including a contact *with* that id
        (the package's ``find_neighbors`` leaves it out, so a node could never be found)."""
        k = k or self.router.ksize
        goal = Node(target)
        found = self.router.find_neighbors(goal, k, exclude=exclude)
        exact = self.router.buckets[self.router.get_bucket_for(goal)][target]
        if exact is not None and (exclude is None or not exact.same_home_as(exclude)):
            found = [exact, *found][:k]
        return list(found)

    def rpc_find_value(
        self, sender: Addr, key: bytes, target: bytes, signer: bytes
    ) -> dict[str, Any]:
        found = self.storage.envelopes(target, signer or None)
        found.sort(key=lambda e: (e.seq, e.expiry), reverse=True)
        values, size = [], 0
        for env in found:
            size += HEADER + len(env.value) + 8
            if size > wire.MAX_VALUES_BYTES:
                break
            values.append(env.encode())
        nodes = [] if values and signer else self.rpc_find_node(sender, key, target)
        return {"v": values, "n": nodes}

    def rpc_store(self, sender: Addr, key: bytes, envelope: bytes) -> list[Any]:
        if not self.stores.allow(sender, self.clock()):
            self.stats["rate_limited"] += 1
            return [False, "rate limited"]
        if len(envelope) > HEADER + MAX_VALUE:
            return [False, "too large"]
        ok, reason = self.storage.offer(envelope)
        if not ok:
            self.stats["store_refused"] += 1
        return [ok, reason]

    # -- routing table admission -----------------------------------------------------

    def is_verified(self, node: Node) -> bool:
        known = self.verified.get(node.id)
        return known is not None and known[1] == (node.ip, node.port)

    def welcome_if_new(self, node: Node, key: bytes | None = None) -> None:
        """Add a contact once it has proved its key; hand it the values it should hold."""
        if node.id == self.source_node.id:
            return
        if not self.is_verified(node):
            if node.id in self._verifying or len(self._verifying) >= 256:
                return
            self._verifying.add(node.id)
            self.spawn(self._verify_then_welcome(node))
            return
        if not self.router.is_new_node(node):
            self.router.add_contact(node)  # refresh its position (least recently seen last)
            return
        for dkey, value in [] if self.client else self.storage:
            keynode = Node(dkey)  # the package hashes dkey again here
            neighbors = self.router.find_neighbors(keynode)
            if neighbors:
                last = neighbors[-1].distance_to(keynode)
                new_node_close = node.distance_to(keynode) < last
                first = neighbors[0].distance_to(keynode)
                this_closest = self.source_node.distance_to(keynode) < first
            if not neighbors or (new_node_close and this_closest):
                self.spawn(self.call_store(node, dkey, value))
        self.router.add_contact(node)

    async def _verify_then_welcome(self, node: Node) -> None:
        try:
            got = await self.ping_addr((node.ip, node.port))
        finally:
            self._verifying.discard(node.id)
        held = self._held.pop(node.id, [])
        if got is None or got[0] != node.id:
            if got is not None:
                self.stats["identity_refused"] += 1
            return
        self.welcome_if_new(node)
        if self.on_notify is not None:
            for method, args in held:
                self.on_notify(node, method, args)

    def handle_call_response(self, result: tuple[bool, Any], node: Node) -> tuple[bool, Any]:
        if not result[0]:
            # one lost datagram is not a dead node: drop a contact after two misses in a row
            misses = self.misses.get(node.id, 0) + 1
            if misses >= 2:
                self.router.remove_contact(node)
                self.misses.pop(node.id, None)
            else:
                self.misses[node.id] = misses
            return result
        self.misses.pop(node.id, None)
        self.welcome_if_new(node)
        return result

    def contacts(self) -> list[tuple[bytes, bytes, str, int]]:
        """Verified contacts in the routing table: ``(node_id, key, host, port)``."""
        out = []
        for bucket in self.router.buckets:
            for n in bucket.get_nodes():
                known = self.verified.get(n.id)
                if known is not None:
                    out.append((n.id, known[0], n.ip, n.port))
        return out
