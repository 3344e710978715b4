"""Each defect of the unmodified ``kademlia`` 2.2.3 package, tested against it and us.

Every test runs twice: ``ours`` (fogctl.dht) must pass; ``upstream`` (the package as
installed) is marked ``xfail(strict=True)``, so the suite proves the test fails on the
unmodified package and would flag it if the package ever fixed the defect.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import pickle
import random
import time
from pathlib import Path
from typing import Any

import pytest
import umsgpack
from kademlia.network import Server
from kademlia.node import Node
from kademlia.protocol import KademliaProtocol

from fogctl.dht.envelope import HEADER, key_id, seal
from fogctl.dht.protocol import FogProtocol
from fogctl.dht.server import FogServer
from fogctl.state.db import Database

from .helpers import RawPeer, ident, network, port_of, run, stop_all, wait_for

IMPLS = [
    "ours",
    pytest.param(
        "upstream",
        marks=pytest.mark.xfail(strict=True, reason="defect of the unmodified kademlia package"),
    ),
]


def upstream_server(protocol: type[Any] = KademliaProtocol) -> Any:
    class S(Server):  # type: ignore[misc]
        protocol_class = protocol

    return S()


async def upstream_listen(s: Any, timeout: float = 0.3) -> None:
    await s.listen(0, "127.0.0.1")
    s.protocol._wait_timeout = timeout  # configuration only; the code is untouched


def raw_request(method: str, args: list[Any]) -> bytes:
    return b"\x00" + os.urandom(20) + umsgpack.packb([method, args])


# -- 1. STORE of an unsigned value from any peer ------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_unsigned_store_is_refused(impl: str) -> None:
    async def scenario() -> bool:
        peer = RawPeer()
        dkey = key_id("victim")
        if impl == "ours":
            s = FogServer(ident())
            await s.listen(0)
            unsigned = b"\x01" + dkey + bytes(16) + os.urandom(32) + bytes(64) + b"evil"
            peer.send(raw_request("store", [os.urandom(32), unsigned]), port_of(s))
            answer = await peer.recv()
            stored = bool(s.storage.envelopes(dkey))
        else:
            s = upstream_server()
            await upstream_listen(s)
            peer.send(raw_request("store", [os.urandom(20), dkey, "evil"]), port_of(s))
            answer = await peer.recv()
            stored = s.storage.get(dkey) is not None
        s.stop()
        peer.close()
        assert answer is not None
        return stored

    assert run(scenario()) is False


# -- 2. one close liar wins a get ------------------------------------------------------------


class UpstreamLiar(KademliaProtocol):  # type: ignore[misc]
    def rpc_find_value(self, sender: Any, nodeid: bytes, key: bytes) -> Any:
        return {"value": "forged"}


class OurLiar(FogProtocol):
    """Answers every FIND_VALUE with a forged envelope claiming the genuine signer."""

    forged_signer = b""

    def rpc_find_value(self, sender: Any, key: bytes, target: bytes, signer: bytes) -> Any:
        other = ident()
        env = seal(
            other.sign,
            self.forged_signer,
            target,
            b"forged",
            seq=2**40,
            expiry=int(time.time()) + 60,
        )
        answer = super().rpc_find_value(sender, key, target, signer)
        answer["v"] = [env.encode()]
        if not answer["n"]:
            answer["n"] = self.rpc_find_node(sender, key, target)
        return answer


@pytest.mark.parametrize("impl", IMPLS)
def test_close_liar_does_not_win_get(impl: str) -> None:
    async def scenario() -> Any:
        if impl == "ours":
            honest = await network(8)
            await honest[1].put("k", b"genuine")
            OurLiar.forged_signer = honest[1].public_key

            class LiarServer(FogServer):
                protocol_class = OurLiar

            liar = LiarServer(ident())
            await liar.listen(0)
            await liar.bootstrap([honest[0].address])
            getter = FogServer(ident())
            await getter.listen(0)
            got = await getter.protocol.ping_addr(liar.address)  # the liar is all it knows
            assert got is not None
            getter.protocol.welcome_if_new(Node(got[0], *liar.address))
            value = await getter.get("k")
            stop_all([*honest, liar, getter])
            return value
        honest = [upstream_server() for _ in range(4)]
        for s in honest:
            await upstream_listen(s)
        await asyncio.gather(
            *(s.bootstrap([("127.0.0.1", port_of(honest[0]))]) for s in honest[1:])
        )
        await honest[1].set("k", "genuine")
        liar = upstream_server(UpstreamLiar)
        await upstream_listen(liar)
        await liar.bootstrap([("127.0.0.1", port_of(honest[0]))])
        getter = upstream_server()
        await upstream_listen(getter)
        getter.protocol.router.add_contact(Node(liar.node.id, "127.0.0.1", port_of(liar)))
        value = await getter.get("k")
        stop_all([*honest, liar, getter])
        return value.encode() if isinstance(value, str) else value

    assert run(scenario()) == b"genuine"


# -- 3. malformed answers make get()/bootstrap() raise -----------------------------------------


class UpstreamBroken(KademliaProtocol):  # type: ignore[misc]
    def rpc_find_value(self, sender: Any, nodeid: bytes, key: bytes) -> Any:
        return {"value": [1, 2]}

    def rpc_find_node(self, sender: Any, nodeid: bytes, key: bytes) -> Any:
        return [[b"x", "127.0.0.1", 1, 4]]


class OurBroken(FogProtocol):
    def rpc_find_value(self, sender: Any, key: bytes, target: bytes, signer: bytes) -> Any:
        return {"v": [[1, 2]], "n": []}

    def rpc_find_node(self, sender: Any, key: bytes, target: bytes) -> Any:
        return [[b"x", "127.0.0.1", 1, 4]]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("call", ["get", "bootstrap"])
def test_malformed_answers_do_not_raise(impl: str, call: str) -> None:
    async def scenario() -> None:
        if impl == "ours":

            class BrokenServer(FogServer):
                protocol_class = OurBroken

            broken: Any = BrokenServer(ident())
            await broken.listen(0)
            s: Any = FogServer(ident(), rpc_timeout=0.3)
            await s.listen(0)
            if call == "bootstrap":
                await s.bootstrap([broken.address])
            else:
                got = await s.protocol.ping_addr(broken.address)
                s.protocol.welcome_if_new(Node(got[0], *broken.address))
                assert await s.get("k") is None
            assert s.protocol.stats["malformed"] >= 1
        else:
            broken = upstream_server(UpstreamBroken)
            await upstream_listen(broken)
            s = upstream_server()
            await upstream_listen(s)
            addr = ("127.0.0.1", port_of(broken))
            if call == "bootstrap":
                await s.bootstrap([addr])
            else:
                s.protocol.router.add_contact(Node(broken.node.id, *addr))
                await s.get("k")
        stop_all([broken, s])

    run(scenario())


# -- 4. oversized datagrams accepted ----------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_oversized_datagram_is_dropped(impl: str) -> None:
    async def scenario() -> bool:
        peer = RawPeer()
        dkey = key_id("big")
        big = "x" * 20000
        if impl == "ours":
            s: Any = FogServer(ident())
            await s.listen(0)
            peer.send(raw_request("store", [os.urandom(32), b"\x01" + big.encode()]), port_of(s))
            peer.send(raw_request("ping", [os.urandom(32), os.urandom(16)]), port_of(s))
            assert await peer.recv() is not None  # the ping is answered after the drop
            assert s.protocol.stats["oversized"] == 1
            stored = bool(s.storage.envelopes(dkey))
        else:
            s = upstream_server()
            await upstream_listen(s)
            peer.send(raw_request("store", [os.urandom(20), dkey, big]), port_of(s))
            peer.send(raw_request("ping", [os.urandom(20)]), port_of(s))
            await peer.recv()
            await peer.recv()
            stored = s.storage.get(dkey) is not None
        s.stop()
        peer.close()
        return stored

    assert run(scenario()) is False


def test_oversized_value_is_refused_by_sender() -> None:
    from fogctl.errors import InvalidInput

    async def scenario() -> None:
        s = FogServer(ident())
        await s.listen(0)
        with pytest.raises(InvalidInput, match="limit is 4096"):
            await s.put("k", b"x" * 5000)
        s.stop()

    run(scenario())


# -- 5. persisted state is a pickle --------------------------------------------------------


class Boom:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("impl", IMPLS)
def test_loading_saved_state_never_runs_code(impl: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "state.pickle"
    evil.write_bytes(
        pickle.dumps({"ksize": 20, "alpha": 3, "id": b"a" * 20, "neighbors": Boom(marker)})
    )

    async def scenario() -> None:
        if impl == "ours":
            db = Database(tmp_path / "state.db")
            s = FogServer(ident(), db=db)
            await s.listen(0)
            with db.transaction() as conn:  # a tampered routing table
                conn.execute(
                    "INSERT INTO dht_contacts VALUES (?, ?, ?, ?, ?)",
                    (b"x" * 20, pickle.dumps(Boom(marker)), "__import__('os')", "22; rm", 0),
                )
            assert await s.restore() == 0
            s.stop()
            db.close()
        else:
            s = await Server.load_state(str(evil), 0, "127.0.0.1")
            s.stop()

    with contextlib.suppress(Exception):  # upstream may also fail after running the code
        run(scenario())
    assert not marker.exists()


# -- 6. stored values are not persisted ---------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_values_survive_a_restart(impl: str, tmp_path: Path) -> None:
    dkey = key_id("kept")

    async def scenario() -> bool:
        if impl == "ours":
            me = ident()
            db = Database(tmp_path / "state.db")
            s = FogServer(me, db=db)
            await s.listen(0)
            await s.put("kept", b"v")
            s.stop()
            db.close()
            db = Database(tmp_path / "state.db")
            s2 = FogServer(me, db=db)
            found = bool(s2.storage.envelopes(dkey))
            db.close()
            return found
        a, b = upstream_server(), upstream_server()
        await upstream_listen(a)
        await upstream_listen(b)
        await b.bootstrap([("127.0.0.1", port_of(a))])
        await b.set("kept", "v")
        fname = str(tmp_path / "b.state")
        b.save_state(fname)
        b.stop()
        b2 = await Server.load_state(fname, 0, "127.0.0.1")
        found = b2.storage.get(hashlib.sha1(b"kept").digest()) is not None
        stop_all([a, b2])
        return found

    assert run(scenario()) is True


# -- 7. node ids from a non-cryptographic generator; claimed ids unchecked ------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_node_id_is_not_predictable(impl: str) -> None:
    def make() -> bytes:
        random.seed(1234)
        return bytes(FogServer(ident()).node.id if impl == "ours" else Server().node.id)

    assert make() != make()


def test_node_id_is_bound_to_the_key() -> None:
    me = ident()
    assert FogServer(me).node.id == hashlib.sha256(me.ed25519_public).digest()[:20]


@pytest.mark.parametrize("impl", IMPLS)
def test_claimed_node_id_is_checked(impl: str) -> None:
    async def scenario() -> bool:
        peer = RawPeer()  # never answers the verification ping
        if impl == "ours":
            s: Any = FogServer(ident(), rpc_timeout=0.3)
            await s.listen(0)
            claimed_key = ident().ed25519_public  # someone else's key
            claimed = hashlib.sha256(claimed_key).digest()[:20]
            peer.send(raw_request("ping", [claimed_key, os.urandom(16)]), port_of(s))
            assert await peer.recv() is not None
            assert await wait_for(lambda: not s.protocol._verifying)
        else:
            s = upstream_server()
            await upstream_listen(s)
            claimed = b"\x42" * 20
            peer.send(raw_request("ping", [claimed]), port_of(s))
            assert await peer.recv() is not None
        known = any(n.id == claimed for b in s.protocol.router.buckets for n in b.get_nodes())
        s.stop()
        peer.close()
        return known

    assert run(scenario()) is False


# -- 8. a lookup round waits on its slowest peer ---------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_get_after_churn_does_not_wait_on_dead_peers(impl: str) -> None:
    async def scenario() -> float:
        n = 24
        if impl == "ours":
            servers: list[Any] = await network(n)
            await servers[1].put("k", b"v")
            dkey = key_id("k")
        else:
            servers = [upstream_server() for _ in range(n)]
            for s in servers:
                await upstream_listen(s, timeout=5.0)
            first = ("127.0.0.1", port_of(servers[0]))
            await asyncio.gather(*(s.bootstrap([first]) for s in servers[1:]))
            await servers[1].set("k", "v")
            dkey = hashlib.sha1(b"k").digest()
        getter = servers[-1]
        rest = sorted(servers[:-1], key=lambda s: s.node.distance_to(Node(dkey)))
        for s in rest[: int(n * 0.3)]:  # kill the 30% closest to the key
            s.stop()
        t = time.perf_counter()
        value = await asyncio.wait_for(getter.get("k"), 2.0)
        elapsed = time.perf_counter() - t
        stop_all(servers)
        assert value in (b"v", "v")
        return elapsed

    assert run(scenario()) < 2.0


# -- 9. welcome_if_new hashes an already-hashed key --------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_new_close_node_receives_values(impl: str) -> None:
    async def scenario() -> bool:
        if impl == "ours":
            a, b, c = (FogServer(ident()) for _ in range(3))
            for s in (a, b, c):
                await s.listen(0)
            dkey = bytes(a.node.id[:-1]) + bytes([a.node.id[-1] ^ 1])  # a is closest
            goal = Node(dkey)
            if b.node.distance_to(goal) > c.node.distance_to(goal):
                b, c = c, b
            got = await a.protocol.ping_addr(c.address)
            a.protocol.welcome_if_new(Node(got[0], *c.address))
            signer = ident()
            env = seal(
                signer.sign, signer.ed25519_public, dkey, b"v", seq=1, expiry=int(time.time()) + 600
            )
            assert a.storage.offer(env.encode())[0]
            await a.protocol.ping_addr(b.address)  # b proves its key, then is welcomed
            a.protocol.welcome_if_new(Node(b.node.id, *b.address))
            ok = await wait_for(lambda: bool(b.storage.envelopes(dkey)), 2.0)
            stop_all([a, b, c])
            return ok
        # upstream: ids chosen so the key is a's; b is closer than c
        a, b, c = (
            Server(node_id=bytes(20)),
            Server(node_id=bytes(19) + b"\x02"),
            Server(node_id=b"\xff" * 20),
        )
        for s in (a, b, c):
            await upstream_listen(s)
        i = 1
        while hashlib.sha1(bytes(19) + bytes([i])).digest()[0] < 0x80:
            i += 2  # a key whose re-hash points elsewhere (odd: closest to a, not b)
        dkey = bytes(19) + bytes([i])
        a.protocol.router.add_contact(Node(c.node.id, "127.0.0.1", port_of(c)))
        a.storage[dkey] = "v"
        a.protocol.welcome_if_new(Node(b.node.id, "127.0.0.1", port_of(b)))
        ok = await wait_for(lambda: b.storage.get(dkey) is not None, 1.0)
        stop_all([a, b, c])
        return ok

    assert run(scenario()) is True


# -- 10. set() with no live neighbours raises ValueError ---------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_set_without_live_neighbours_does_not_raise(impl: str) -> None:
    async def scenario() -> None:
        dead = RawPeer()  # bound but silent
        port = dead.sock.getsockname()[1]
        if impl == "ours":
            s: Any = FogServer(ident(), rpc_timeout=0.3)
            await s.listen(0)
            s.protocol.verified[b"\x07" * 20] = (b"k" * 32, ("127.0.0.1", port))
            s.protocol.router.add_contact(Node(b"\x07" * 20, "127.0.0.1", port))
            res = await s.put("k", b"v")
            assert res.stored_on == 0
            assert s.storage.envelopes(key_id("k"))  # kept locally, republished later
        else:
            s = upstream_server()
            await upstream_listen(s)
            s.protocol.router.add_contact(Node(b"\x07" * 20, "127.0.0.1", port))
            await s.set("k", "v")
        s.stop()
        dead.close()

    run(scenario())


def test_envelope_header_size() -> None:
    assert HEADER == 133
