"""The sans-IO cores in an in-memory network with a simulated clock."""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Callable

import pytest

from fogctl.mix import sphinx
from fogctl.mix.node import (
    Acked,
    ClientAddress,
    Delivered,
    LoopReturned,
    MixClient,
    MixNode,
    Params,
    ReplyReceived,
)
from fogctl.mix.stats import ks_2samp, ks_exponential
from tests.mix.conftest import Net, make_descriptors, make_nodes


class Sim:
    """Discrete-event driver: instant links, clients pull every ``poll`` seconds."""

    def __init__(self, net: Net, params: Params, poll: float = 0.05) -> None:
        self.net, self.params, self.poll = net, params, poll
        self.nodes = make_nodes(net, params)
        self.clients: list[MixClient] = []
        self.events: list[tuple[MixClient, object]] = []
        self.now = 0.0
        self.drop: Callable[[bytes, bytes], bool] = lambda dest, pkt: False
        self._next_poll = 0.0

    def client(self, provider_index: int, seed: int, **kw: object) -> MixClient:
        prov = bytes.fromhex(self.net.topology.providers[provider_index].id)
        c = MixClient(
            os.urandom(32),
            prov,
            self.net.topology,
            params=self.params,
            rng=random.Random(seed),
            **kw,  # type: ignore[arg-type]
        )
        c.handle_timer(self.now)
        self.clients.append(c)
        return c

    def run_until(self, done: Callable[[], bool], limit: float) -> None:
        for n in self.nodes.values():
            n.handle_timer(self.now)
        while self.now < limit and not done():
            timers = [n.get_timer() for n in self.nodes.values()]
            timers += [c.get_timer() for c in self.clients]
            timers.append(self._next_poll)
            self.now = max(self.now, min(t for t in timers if t is not None))
            self.step()

    def step(self) -> None:
        now = self.now
        for c in self.clients:
            self.events += [(c, e) for e in c.handle_timer(now)]
            for pkt in c.datagrams_to_send(now):
                self.nodes[c.address.provider].receive(pkt, now)
        moved = True
        while moved:
            moved = False
            for n in list(self.nodes.values()):
                n.handle_timer(now)
                for dest, pkt in n.datagrams_to_send(now):
                    moved = True
                    if not self.drop(dest, pkt):
                        self.nodes[dest].receive(pkt, now)
        if now >= self._next_poll:
            self._next_poll = now + self.poll
            for c in self.clients:
                for ident, payload in self.nodes[c.address.provider].pull(c.address.address):
                    self.events += [(c, e) for e in c.receive(ident, payload, now)]

    def of(self, client: MixClient, kind: type) -> list:  # type: ignore[type-arg]
        return [e for c, e in self.events if c is client and isinstance(e, kind)]


def test_message_reply_and_ack_through_five_layers_with_cover() -> None:
    net = make_descriptors(5, 2)
    params = Params(hops=5, mean_delay=0.01, lambda_p=5, lambda_l=2, lambda_d=2, lambda_m=1)
    sim = Sim(net, params)
    alice, bob = sim.client(0, 1), sim.client(1, 2)
    msg_id = alice.send(bob.address, b"hello bob", sim.now)
    sim.run_until(lambda: bool(sim.of(bob, Delivered)), 30)
    [got] = sim.of(bob, Delivered)
    assert got.data == b"hello bob" and got.msg_id == msg_id and got.reply_surb is not None
    bob.reply(got.reply_surb, got.msg_id, b"hi alice", sim.now)
    sim.run_until(lambda: bool(sim.of(alice, ReplyReceived)) and bool(sim.of(alice, Acked)), 60)
    [rep] = sim.of(alice, ReplyReceived)
    assert rep.data == b"hi alice" and rep.in_reply_to == msg_id
    [ack] = sim.of(alice, Acked)
    assert ack.msg_id == msg_id and ack.tries == 1
    # cover traffic flowed and loops came back, to clients and to mixes
    assert alice.counters["loop_cover_out"] > 0 and alice.counters["payload_cover_out"] > 0
    sim.run_until(lambda: bool(sim.of(alice, LoopReturned)), 90)
    assert sim.of(alice, LoopReturned)
    assert sum(n.counters["loops_returned"] for n in sim.nodes.values()) > 0
    assert sum(n.counters["drop_cover_absorbed"] for n in sim.nodes.values()) > 0
    assert all(not any(k.startswith("dropped") for k in n.counters) for n in sim.nodes.values())


def test_lost_packet_is_resent_over_a_different_path() -> None:
    net = make_descriptors(3, 2)
    params = Params(
        hops=3, mean_delay=0.0, lambda_p=0, lambda_l=0, lambda_d=0, lambda_m=0, ack_timeout=1.0
    )
    sim = Sim(net, params)
    alice, bob = sim.client(0, 3), sim.client(1, 4)
    dead: set[bytes] = set()

    def first_path_dies(dest: bytes, pkt: bytes) -> bool:
        if not dead and sim.nodes[dest].layer == 2:
            dead.add(dest)  # this mix fails: every packet to it from now on is lost
        return dest in dead

    sim.drop = first_path_dies
    msg_id = alice.send(bob.address, b"are you there?", sim.now)
    sim.run_until(lambda: bool(sim.of(alice, Acked)), 20)
    [ack] = sim.of(alice, Acked)
    assert ack.msg_id == msg_id and ack.tries == 2
    assert alice.counters["resent"] == 1
    assert [e.data for e in sim.of(bob, Delivered)] == [b"are you there?"]


def test_bad_packets_are_dropped_and_counted_never_raised() -> None:
    net = make_descriptors(1, 1, providers=1)
    params = Params(hops=1, lambda_m=0)
    node = make_nodes(net, params)[bytes.fromhex(net.topology.layers[1][0].id)]
    node.receive(b"short", 0.0)
    node.receive(os.urandom(sphinx.PACKET_SIZE), 0.0)
    prov = net.topology.providers[0]
    mix = net.topology.layers[1][0]
    hops = [sphinx.Hop(bytes.fromhex(d.id), bytes.fromhex(d.public_key), 0) for d in (mix, prov)]
    pkt = sphinx.create_forward(hops, bytes(20), bytes(16), b"", os.urandom)
    node.receive(pkt, 0.0)
    node.receive(pkt, 0.0)
    assert node.counters["dropped_malformed"] == 1
    assert node.counters["dropped_mac"] == 1
    assert node.counters["dropped_replay"] == 1
    assert node.counters["relayed"] == 1


def test_mix_holds_packets_for_exponential_delays_chosen_by_the_sender() -> None:
    net = make_descriptors(1, 1, providers=1)
    params = Params(hops=1, lambda_m=0)
    mix = net.topology.layers[1][0]
    node: MixNode = make_nodes(net, params)[bytes.fromhex(mix.id)]
    prov = net.topology.providers[0]
    rng = random.Random(7)
    mean = 0.02
    for _ in range(400):
        delay = int(rng.expovariate(1 / mean) * 1e6)
        hops = [
            sphinx.Hop(bytes.fromhex(mix.id), bytes.fromhex(mix.public_key), delay),
            sphinx.Hop(bytes.fromhex(prov.id), bytes.fromhex(prov.public_key), 0),
        ]
        node.receive(sphinx.create_forward(hops, bytes(20), bytes(16), b"", os.urandom), 5.0)
    held = list(node.delays_held)
    assert len(held) == 400
    assert ks_exponential(held, mean) > 0.01
    assert node.datagrams_to_send(5.0 + min(held) / 2) == []
    assert len(node.datagrams_to_send(5.0 + max(held) + 1e-6)) == 400


def test_departures_look_the_same_with_and_without_real_messages() -> None:
    net = make_descriptors(2, 1)
    params = Params(hops=2, mean_delay=0.01, lambda_p=20, lambda_l=5, lambda_d=5, lambda_m=0)

    def departures(real: bool, seed: int) -> list[float]:
        sim = Sim(net, params)
        c = sim.client(0, seed)
        bob = ClientAddress(os.urandom(32), bytes.fromhex(net.topology.providers[1].id))
        t = 0.0
        while t < 20:
            t += 0.1
            if real and int(t * 10) % 3 == 0:
                c.send(bob, b"x" * 100, t, want_reply=False)
            c.handle_timer(t)
            c.datagrams_to_send(t)
        d = c.departures
        return [b - a for a, b in itertools.pairwise(d)]

    quiet, busy = departures(False, 11), departures(True, 12)
    _, p = ks_2samp(quiet, busy)
    assert p > 0.01


def test_vrf_drawn_delays_are_verifiable_from_the_public_key() -> None:
    from fogctl.mix import vrf

    net = make_descriptors(3, 1)
    params = Params(hops=3, mean_delay=0.01, lambda_p=0, lambda_l=0, lambda_d=0, lambda_m=0)
    sim = Sim(net, params)
    key = os.urandom(32)
    alice = sim.client(0, 5, vrf_key=key)
    bob = sim.client(1, 6)
    alice.send(bob.address, b"verifiable", sim.now)
    sim.run_until(lambda: bool(sim.of(bob, Delivered)), 10)
    assert [e.data for e in sim.of(bob, Delivered)] == [b"verifiable"]
    pk = vrf.public_key(key)
    assert len(alice.vrf_proofs) >= 4  # forward path and SURB paths
    for alpha, proof in alice.vrf_proofs:
        delay = vrf.beta_to_exponential(vrf.verify(pk, alpha, proof), params.mean_delay)
        assert 0 <= delay < 1.0


def test_long_message_travels_in_parts_and_is_reassembled_once() -> None:
    from fogctl.mix import message

    net = make_descriptors(3, 2)
    # no cover here, so the first packet into layer 3 is surely one of the parts
    params = Params(
        hops=3, mean_delay=0.01, lambda_p=0, lambda_l=0, lambda_d=0, lambda_m=0, ack_timeout=1.0
    )
    sim = Sim(net, params)
    alice, bob = sim.client(0, 21), sim.client(1, 22)
    data = os.urandom(3 * message.MAX_DATA + 17)  # four packets
    lost: set[int] = set()

    def lose_one(dest: bytes, pkt: bytes) -> bool:
        # lose exactly the first packet entering layer 3: one part must be resent
        if not lost and sim.nodes[dest].layer == 3:
            lost.add(1)
            return True
        return False

    sim.drop = lose_one
    msg_id = alice.send(bob.address, data, sim.now)
    assert alice.counters["messages_sent"] == 1 and len(alice.pending) == 4
    sim.run_until(lambda: bool(sim.of(alice, Acked)), 30)
    [ack] = sim.of(alice, Acked)
    assert ack.msg_id == msg_id and ack.tries == 2 and alice.counters["resent"] == 1
    delivered = [e for e in sim.of(bob, Delivered) if not e.duplicate]
    assert len(delivered) == 1 and delivered[0].data == data
    assert delivered[0].reply_surb is not None
    assert alice.done(msg_id) and not alice.pending


def test_too_long_message_is_refused_clearly() -> None:
    from fogctl.errors import InvalidInput
    from fogctl.mix import message

    net = make_descriptors(1, 1)
    sim = Sim(net, Params(hops=1))
    alice = sim.client(0, 1)
    with pytest.raises(InvalidInput, match="at most"):
        alice.send(alice.address, bytes(message.MAX_PARTS * message.MAX_DATA + 1), 0.0)
