"""A DHT node: :class:`kademlia.network.Server` with keys, signed values and persistence.

* The node id is this node's identity (first 160 bits of SHA-256 of its Ed25519 key).
* Values are signed envelopes in :class:`~fogctl.dht.storage.ValueStorage`; the
  node's own values are re-signed and republished every ``republish`` seconds
  (an hour), and everything expires after 24 h unless republished.
* The routing table is saved in the state database (table ``dht_contacts``, plain
  columns, no pickle) and reloaded on restart: each saved contact must sign a
  fresh ping before it is used again, so a restarted node needs no bootstrap peer.
* Lookups use :func:`fogctl.dht.crawl.lookup` (no waiting on dead peers).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kademlia.network import Server
from kademlia.node import Node

from fogctl.dht.crawl import LookupResult, lookup
from fogctl.dht.envelope import MAX_TTL, MAX_VALUE, Envelope, key_id, seal
from fogctl.dht.protocol import FogProtocol
from fogctl.dht.storage import MIGRATIONS, ValueStorage
from fogctl.errors import InvalidInput
from fogctl.hostport import format_hostport
from fogctl.hostport import parse_hostport as _parse_hostport
from fogctl.state.db import Database
from fogctl.state.identity import Identity

log = logging.getLogger("fogctl.dht")

__all__ = ["FogServer", "PutResult", "parse_hostport"]

REFRESH = 3600.0
REPUBLISH = 3600.0


@dataclass(frozen=True, slots=True)
class PutResult:
    dkey: bytes
    seq: int
    expiry: int
    stored_on: int


def parse_hostport(text: str, default_port: int = 8468) -> tuple[str, int]:
    """``IP:PORT`` / ``[V6]:PORT`` / ``IP`` (an address, not a name); InvalidInput if not."""
    return _parse_hostport(text, what="DHT address", default_port=default_port, ip_only=True)


class FogServer(Server):  # type: ignore[misc]
    """One DHT node. ``await listen()``, ``await bootstrap()``, then put/get/lookup."""

    protocol_class = FogProtocol

    def __init__(
        self,
        identity: Identity,
        *,
        db: Database | None = None,
        ksize: int = 20,
        alpha: int = 3,
        rpc_timeout: float = 2.0,
        stall: float = 0.25,
        quorum: int = 3,
        client: bool = False,
        persist: bool = True,
        refresh_interval: float = REFRESH,
        republish_interval: float = REPUBLISH,
        request_rate: float = 200.0,
        store_rate: float = 20.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self.db = db
        if db is not None:
            db.migrate("dht", MIGRATIONS)
        storage = ValueStorage(db if persist and not client else None, clock=clock)
        super().__init__(ksize, alpha, bytes.fromhex(identity.node_id), storage)
        self.rpc_timeout = rpc_timeout
        self.stall = stall
        self.quorum = quorum
        self.client = client
        self.persist = persist and not client
        self.refresh_interval = refresh_interval
        self.republish_interval = republish_interval
        self.request_rate = request_rate
        self.store_rate = store_rate
        self.clock = clock
        self.on_notify: Callable[[Node, str, tuple[Any, ...]], None] | None = None
        self.own: dict[bytes, tuple[str, bytes, int]] = {}  # dkey -> (name, value, seq)
        self._tasks: set[asyncio.Task[Any]] = set()
        if db is not None and self.persist:
            for row in db.query("SELECT dkey, name, value, seq FROM dht_own"):
                self.own[bytes(row["dkey"])] = (row["name"], bytes(row["value"]), row["seq"])

    @property
    def public_key(self) -> bytes:
        return self.identity.ed25519_public

    def _create_protocol(self) -> FogProtocol:
        return self.protocol_class(
            self.node,
            self.storage,
            self.ksize,
            public_key=self.public_key,
            sign=self.identity.sign,
            rpc_timeout=self.rpc_timeout,
            request_rate=self.request_rate,
            store_rate=self.store_rate,
            client=self.client,
            on_notify=self._notify,
        )

    def _notify(self, node: Node, method: str, args: tuple[Any, ...]) -> None:
        if self.on_notify is not None:
            self.on_notify(node, method, args)

    async def listen(self, port: int, interface: str = "127.0.0.1") -> None:
        loop = asyncio.get_running_loop()
        self.transport, self.protocol = await loop.create_datagram_endpoint(
            self._create_protocol, local_addr=(interface, port)
        )
        if not self.client:
            self.refresh_table(self.refresh_interval)

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self.protocol is not None:
            self.protocol.close()
        super().stop()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- joining ------------------------------------------------------------------------

    async def bootstrap(self, addrs: Iterable[tuple[str, int]]) -> list[Node]:
        """Ping ``addrs`` (each must sign a nonce), then look up our own id."""
        proto: FogProtocol = self.protocol
        addrs = list(addrs)
        answers = await asyncio.gather(*(proto.ping_addr(a) for a in addrs))
        if addrs and not any(answers):  # one retry: a ping or its answer may be lost
            answers = await asyncio.gather(*(proto.ping_addr(a) for a in addrs))
        seeds = []
        for addr, got in zip(addrs, answers, strict=False):
            if got is not None and got[0] != self.node.id:
                node = Node(got[0], addr[0], addr[1])
                proto.welcome_if_new(node)
                seeds.append(node)
        if not seeds:
            return []
        result = await self.lookup(self.node.id, seeds=seeds)
        # Kademlia section 2.3: a joining node refreshes every bucket further away than
        # its closest neighbour, so others learn of it and its table covers the id space
        await self.refresh_buckets()
        return result.nodes

    async def refresh_buckets(self) -> None:
        """One lookup for a random id in each bucket's range (all buckets, not just lonely)."""
        ids = []
        buckets = list(self.protocol.router.buckets)
        if len(buckets) > 2:  # bound the join cost: the two widest ranges
            buckets = sorted(buckets, key=lambda b: b.range[1] - b.range[0])[-2:]
        for bucket in buckets:
            lo, hi = bucket.range
            span = max(0, min(hi, 2**160 - 1) - lo)
            rid = lo + int.from_bytes(os.urandom(21), "big") % (span + 1)
            ids.append(rid.to_bytes(20, "big"))
        await asyncio.gather(*(self.lookup(rid) for rid in ids))

    def refresh_table(self, interval: float = REFRESH) -> None:
        self._spawn(self._refresh_table())
        loop = asyncio.get_running_loop()
        self.refresh_loop = loop.call_later(interval, self.refresh_table, interval)

    async def _refresh_table(self) -> None:
        """Refresh lonely buckets; republish own values and values held for an hour."""
        proto: FogProtocol = self.protocol
        await asyncio.gather(*(self.lookup(rid) for rid in proto.get_refresh_ids()))
        for dkey in list(self.own):
            await self._publish_own(dkey)
        self.storage.cull()
        for dkey, data in self.storage.iter_older_than(self.republish_interval):
            await self.set_digest(dkey, data)

    async def restore(self) -> int:
        """Reload saved contacts that still answer (and prove their key); how many."""
        if self.db is None:
            return 0
        rows = self.db.query("SELECT node_id, host, port FROM dht_contacts")
        addrs = []
        for row in rows:
            try:
                addrs.append(parse_hostport(format_hostport(row["host"], int(row["port"]))))
            except (InvalidInput, TypeError, ValueError):
                continue  # a damaged row is skipped, never executed
        nodes = await self.bootstrap(addrs[:64]) if addrs else []
        return len(nodes)

    def save_contacts(self) -> int:
        """Persist the verified routing table (plain rows; no pickle)."""
        if self.db is None or self.protocol is None or not self.persist:
            return 0
        contacts = self.protocol.contacts()
        now = self.clock()
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM dht_contacts")
            conn.executemany(
                "INSERT INTO dht_contacts(node_id, pubkey, host, port, last_seen) "
                "VALUES (?, ?, ?, ?, ?)",
                [(nid, key, host, port, now) for nid, key, host, port in contacts],
            )
        return len(contacts)

    # -- lookups --------------------------------------------------------------------------

    async def lookup(
        self,
        target: bytes,
        *,
        value: bool = False,
        signer: bytes = b"",
        seeds: list[Node] | None = None,
    ) -> LookupResult:
        return await lookup(
            self.protocol,
            target,
            ksize=self.ksize,
            alpha=self.alpha,
            value=value,
            signer=signer,
            quorum=self.quorum,
            stall=self.stall,
            seeds=seeds,
        )

    async def get_envelopes(
        self, key: str | bytes, *, signer: bytes | None = None, dkey: bytes | None = None
    ) -> list[Envelope]:
        """Verified envelopes for a key, the highest sequence per signer (local ones too)."""
        target = dkey if dkey is not None else key_id(key)
        res = await self.lookup(target, value=True, signer=signer or b"")
        found = dict(res.envelopes)
        for env in self.storage.envelopes(target, signer):
            cur = found.get(env.signer)
            if cur is None or env.newer_than(cur):
                found[env.signer] = env
        return sorted(found.values(), key=lambda e: (-e.seq, e.signer))

    async def get(self, key: str | bytes) -> bytes | None:
        """This node's own latest value for ``key`` if any, else the newest of any signer."""
        envs = await self.get_envelopes(key)
        mine = [e for e in envs if e.signer == self.public_key]
        pick = mine or envs
        return pick[0].value if pick else None

    async def put(
        self,
        key: str,
        value: bytes,
        *,
        seq: int | None = None,
        ttl: float = MAX_TTL,
        dkey: bytes | None = None,
    ) -> PutResult:
        """Sign ``value`` under ``key`` and store it on the k closest nodes."""
        if len(value) > MAX_VALUE:
            raise InvalidInput(f"value is {len(value)} bytes; the limit is {MAX_VALUE}")
        target = dkey if dkey is not None else key_id(key)
        prev = self.own.get(target)
        if seq is None:
            seq = max(int(self.clock() * 1000), prev[2] + 1 if prev else 0)
        self.own[target] = (key, value, seq)
        if self.db is not None and self.persist:
            with self.db.transaction() as conn:
                conn.execute(
                    "INSERT INTO dht_own(dkey, name, value, seq) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(dkey) DO UPDATE SET name = excluded.name, "
                    "value = excluded.value, seq = excluded.seq",
                    (target, key, value, seq),
                )
        return await self._publish_own(target, ttl=ttl)

    async def _publish_own(self, target: bytes, ttl: float = MAX_TTL) -> PutResult:
        _, value, seq = self.own[target]
        expiry = int(self.clock() + min(ttl, MAX_TTL))
        env = seal(self.identity.sign, self.public_key, target, value, seq=seq, expiry=expiry)
        stored = await self.set_digest(target, env.encode())
        return PutResult(target, seq, expiry, stored)

    async def set_digest(self, dkey: bytes, value: bytes) -> int:
        """Store an envelope on the k closest live nodes; how many accepted (never raises)."""
        res = await self.lookup(dkey)
        nodes: list[Node] = res.nodes
        me = Node(dkey)
        if not self.client and (
            len(nodes) < self.ksize
            or self.node.distance_to(me) < max(n.distance_to(me) for n in nodes)
        ):
            self.storage.offer(value, dkey=dkey)
        proto: FogProtocol = self.protocol
        answers = await asyncio.gather(*(proto.call_store(n, dkey, value) for n in nodes))
        return sum(1 for ok, result in answers if ok and result[0])

    async def find_node(self, node_id: bytes) -> LookupResult:
        return await self.lookup(node_id)
