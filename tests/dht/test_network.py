"""Small in-process networks on loopback: values, sequence numbers, poisoning, restarts."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from fogctl.dht.envelope import key_id, seal
from fogctl.dht.protocol import FogProtocol
from fogctl.dht.server import FogServer
from fogctl.dht.storage import ValueStorage
from fogctl.state.db import Database

from .helpers import RawPeer, ident, network, port_of, run, stop_all, wait_for


def test_put_get_and_replication() -> None:
    async def scenario() -> None:
        servers = await network(30)
        res = await servers[3].put("greeting", b"hello")
        assert res.stored_on == 20  # k = 20 closest
        holders = sum(1 for s in servers if s.storage.envelopes(key_id("greeting")))
        assert holders >= 20
        for s in servers[10:20]:
            assert await s.get("greeting") == b"hello"
        assert await servers[5].get("missing") is None
        stop_all(servers)

    run(scenario())


def test_highest_sequence_wins_and_stale_is_refused() -> None:
    async def scenario() -> None:
        servers = await network(20)
        writer = servers[2]
        await writer.put("k", b"new", seq=5)
        stale = await writer.put("k", b"old", seq=3)
        assert stale.stored_on == 0  # every storing node refused the lower sequence
        envs = await servers[9].get_envelopes("k")
        assert [(e.seq, e.value) for e in envs] == [(5, b"new")]
        refused = sum(s.protocol.stats["store_refused"] for s in servers)
        assert refused >= 19
        stop_all(servers)

    run(scenario())


def test_each_signer_has_its_own_slot() -> None:
    async def scenario() -> None:
        servers = await network(20)
        await servers[1].put("shared", b"one")
        await servers[2].put("shared", b"two")
        envs = await servers[7].get_envelopes("shared")
        assert {e.value for e in envs} == {b"one", b"two"}
        assert await servers[2].get("shared") == b"two"  # a node prefers its own value
        stop_all(servers)

    run(scenario())


class Liar(FogProtocol):
    """Returns a forged value (claiming the genuine signer) and refuses to store."""

    genuine = b""

    def rpc_find_value(self, sender: Any, key: bytes, target: bytes, signer: bytes) -> Any:
        me = ident()
        forged = seal(
            me.sign, self.genuine, target, b"forged", seq=2**50, expiry=int(time.time()) + 60
        )
        own = seal(
            me.sign,
            me.ed25519_public,
            target,
            b"liar's own",
            seq=2**50,
            expiry=int(time.time()) + 60,
        )
        return {"v": [forged.encode(), own.encode()], "n": self.rpc_find_node(sender, key, target)}

    def rpc_store(self, sender: Any, key: bytes, envelope: bytes) -> list[Any]:
        return [True, "lying"]


def test_poisoning_with_20_percent_liars() -> None:
    async def scenario() -> None:
        n, liars = 40, 8

        class LiarServer(FogServer):
            protocol_class = Liar

        servers: list[FogServer] = [FogServer(ident()) for _ in range(n - liars)]
        servers += [LiarServer(ident()) for _ in range(liars)]
        for s in servers:
            await s.listen(0)
        first = servers[0].address
        await asyncio.gather(*(s.bootstrap([first]) for s in servers[1:]))
        publisher = servers[1]
        Liar.genuine = publisher.public_key
        await publisher.put("k", b"genuine")
        ok = 0
        honest = servers[2 : n - liars]
        for s in honest:
            envs = await s.get_envelopes("k", signer=publisher.public_key)
            ok += [e.value for e in envs] == [b"genuine"]
        assert ok == len(honest)
        stop_all(servers)

    run(scenario())


def test_restart_needs_no_bootstrap_peer(tmp_path: Path) -> None:
    async def scenario() -> None:
        servers = await network(10)
        me = ident()
        db = Database(tmp_path / "state.db")
        node = FogServer(me, db=db)
        await node.listen(0)
        await node.bootstrap([servers[0].address])
        await servers[4].put("k", b"v")
        assert node.save_contacts() >= 5
        node.stop()
        db.close()
        db = Database(tmp_path / "state.db")
        again = FogServer(me, db=db)
        await again.listen(0)
        assert await again.restore() >= 5  # no --bootstrap: the saved table suffices
        assert await again.get("k") == b"v"
        again.stop()
        db.close()
        stop_all(servers)

    run(scenario())


def test_values_expire_and_are_republished(tmp_path: Path) -> None:
    now = [time.time()]
    storage = ValueStorage(Database(tmp_path / "s.db"), clock=lambda: now[0])
    me = ident()
    env = seal(me.sign, me.ed25519_public, key_id("k"), b"v", seq=1, expiry=int(now[0] + 100))
    assert storage.offer(env.encode()) == (True, "stored")
    assert storage.offer(env.encode()) == (True, "already stored")
    assert storage.iter_older_than(3600) == []
    now[0] += 3601 - 3600 + 50
    assert storage.envelopes(key_id("k"))
    now[0] += 60
    assert storage.envelopes(key_id("k")) == []
    assert storage.cull() == 1

    async def republish() -> None:
        clock = [time.time()]
        servers = await network(8)
        owner = FogServer(ident(), clock=lambda: clock[0], republish_interval=1)
        await owner.listen(0)
        await owner.bootstrap([servers[0].address])
        first = await owner.put("k", b"v", ttl=60)
        clock[0] += 30
        await owner._refresh_table()  # what the hourly timer runs
        envs = await servers[3].get_envelopes("k")
        assert envs and envs[0].seq == first.seq and envs[0].expiry > first.expiry
        stop_all([*servers, owner])

    run(republish())


def test_per_peer_rate_limit() -> None:
    async def scenario() -> None:
        s = FogServer(ident(), request_rate=20)
        await s.listen(0)
        peer = RawPeer()
        from fogctl.dht import wire

        for _ in range(150):
            msg = wire.encode_request(os.urandom(20), "ping", [os.urandom(32), os.urandom(16)])
            peer.send(msg, port_of(s))
        assert await wait_for(lambda: s.protocol.stats["received"] >= 150, 5)
        answered = 0
        while (got := await peer.recv(0.2)) is not None:
            answered += got[0] == 1  # responses (the node also pings back to verify keys)
        limited = s.protocol.stats["rate_limited"]
        assert answered + limited == 150
        assert limited >= 50  # a burst of 40, then 20/s
        s.stop()
        peer.close()

    run(scenario())


def test_client_mode_enters_no_routing_table() -> None:
    async def scenario() -> None:
        servers = await network(6, rpc_timeout=0.3)
        client = FogServer(ident(), client=True)
        await client.listen(0)
        await client.bootstrap([servers[0].address])
        await servers[1].put("k", b"v")
        assert await client.get("k") == b"v"
        await asyncio.sleep(0)  # let verification attempts start
        assert await wait_for(lambda: all(not s.protocol._verifying for s in servers), 5)
        ids = {n.id for s in servers for b in s.protocol.router.buckets for n in b.get_nodes()}
        assert client.node.id not in ids
        stop_all([*servers, client])

    run(scenario())
