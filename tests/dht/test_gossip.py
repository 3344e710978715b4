"""GossipSub core in memory (no sockets), its frame decoder under fuzzing, and the adapter."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

import umsgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fogctl.dht.gossip import (
    Frame,
    GossipRouter,
    MalformedFrame,
    Message,
    decode_frame,
    encode_frame,
)
from fogctl.dht.pubsub import PubSub
from fogctl.state.identity import verify

from .helpers import ident, network, run, stop_all


class Net:
    """Routers wired in memory: frames are delivered in FIFO order, with a clock."""

    def __init__(self, n: int, degree: int, seed: int = 1) -> None:
        rng = random.Random(seed)
        ids = [ident() for _ in range(n)]
        self.keys = [i.ed25519_public for i in ids]
        self.routers = {
            i.ed25519_public[:20]: GossipRouter(
                i.ed25519_public, i.sign, verify, random.Random(seed + k)
            )
            for k, i in enumerate(ids)
        }
        names = list(self.routers)
        self.now = 1000.0
        for k, a in enumerate(names):  # a connected random graph: a ring plus random links
            links = {names[(k + 1) % n], *rng.sample(names, degree)}
            for b in links - {a}:
                self.routers[a].add_peer(b)
                self.routers[b].add_peer(a)
        self.sent = 0
        self.pump()

    def pump(self) -> None:
        moved = True
        while moved:
            moved = False
            for name, r in self.routers.items():
                for peer, data in r.frames_to_send():
                    self.sent += 1
                    self.routers[peer].handle_frame(name, data, self.now)
                    moved = True

    def heartbeat(self, rounds: int = 1) -> None:
        for _ in range(rounds):
            self.now += 1
            for r in self.routers.values():
                r.heartbeat(self.now)
            self.pump()


def test_every_subscriber_receives_once_and_mesh_degree_holds() -> None:
    net = Net(60, 8)
    for r in net.routers.values():
        r.subscribe("jobs")
    net.pump()
    net.heartbeat(3)
    pub = next(iter(net.routers.values()))
    msg = pub.publish("jobs", b"hello", net.now)
    net.pump()
    got = [r for r in net.routers.values() if any(m.id == msg.id for m in r.deliveries())]
    assert len(got) == 60
    for r in net.routers.values():
        assert len(r.mesh["jobs"]) <= 12
        assert len(r.mesh["jobs"]) >= min(4, len(r._topic_peers("jobs")))
    dups = sum(r.stats["duplicates"] for r in net.routers.values())
    assert dups / 59 < 12  # bounded by the mesh degree, unlike flooding every link


def test_gossip_repairs_a_missed_message() -> None:
    net = Net(20, 4)
    for r in net.routers.values():
        r.subscribe("t")
    net.pump()
    net.heartbeat(2)
    names = list(net.routers)
    victim = net.routers[names[5]]
    for r in net.routers.values():  # cut the victim out of every mesh, keep it a topic peer
        r.mesh["t"].discard(names[5])
    victim.mesh["t"].clear()
    pub = net.routers[names[0]]
    msg = pub.publish("t", b"x", net.now)
    for r in net.routers.values():
        r.outbox = [(p, d) for p, d in r.outbox if p != names[5]]
    net.pump()
    assert not any(m.id == msg.id for m in victim.deliveries())
    victim.mesh["t"].add(names[0])  # avoid re-grafting masking the IHAVE path
    net.heartbeat(1)  # IHAVE -> IWANT -> message
    assert any(m.id == msg.id for m in victim.deliveries())


def test_forged_messages_are_dropped_and_cost_score() -> None:
    net = Net(10, 3)
    for r in net.routers.values():
        r.subscribe("t")
    net.pump()
    names = list(net.routers)
    liar, target = names[0], net.routers[names[1]]
    forged = Message("t", net.keys[2], 7, b"evil", b"\x00" * 64)
    for seq in range(10):
        fake = Message("t", net.keys[2], seq, b"evil", b"\x00" * 64)
        target.handle_frame(liar, encode_frame(Frame(msgs=[fake])), net.now)
    assert target.stats["invalid"] == 6  # -10 each: graylisted (< -50) after six
    assert not [m for m in target.deliveries() if m.data == b"evil"]
    assert target.score[liar] < -50
    target.handle_frame(liar, encode_frame(Frame(msgs=[forged])), net.now)
    assert target.stats["invalid"] == 6  # graylisted: ignored outright
    net.heartbeat(1)
    assert liar not in target.mesh["t"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_fuzz_frame_decoder_bytes(data: bytes) -> None:
    with contextlib.suppress(MalformedFrame):
        decode_frame(data)


_obj = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 2**64 - 1)
    | st.binary(max_size=70)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(st.sampled_from(["s", "m", "ih", "iw", "g", "p", "x"]), inner, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_obj)
def test_fuzz_router_never_crashes(obj: object) -> None:
    me = ident()
    r = GossipRouter(me.ed25519_public, me.sign, verify, random.Random(0))
    r.subscribe("t")
    r.handle_frame(b"p" * 20, umsgpack.packb(obj), 1.0)
    r.heartbeat(2.0)


def test_pubsub_over_real_dht_nodes() -> None:
    async def scenario() -> None:
        servers = await network(20)
        subs = [PubSub(s, heartbeat=0.2) for s in servers]
        for p in subs:
            p.start()
        queues = await asyncio.gather(*(p.subscribe("news") for p in subs[1:]))
        await subs[0].publish("news", b"first", wait_peers=2.0)
        t = time.monotonic()
        got = await asyncio.gather(*(asyncio.wait_for(q.get(), 5) for q in queues))
        assert all(m.data == b"first" for m in got)
        assert time.monotonic() - t < 5
        for p in subs:
            p.stop()
        stop_all(servers)

    run(scenario())
