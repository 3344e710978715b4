"""Done-when: a five-layer stratified network plus two providers on loopback (mixes
over UDP, or over TCP with --transport tcp; clients over TCP) carries a message and
its SURB reply end to end with cover traffic on."""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import pytest

from fogctl.mix.directory import Topology
from fogctl.mix.localnet import start_local_network
from fogctl.mix.net import ClientService, fetch_directory
from fogctl.mix.node import Acked, Delivered, LoopReturned, MixClient, Params, ReplyReceived


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_five_layer_network_carries_messages_and_surb_replies_with_cover(
    tmp_path: Path, transport: str
) -> None:
    async def main() -> None:
        params = Params(
            hops=5,
            mean_delay=0.005,
            lambda_p=20,
            lambda_l=5,
            lambda_d=5,
            lambda_m=2,
            ack_timeout=5.0,
        )
        net = await start_local_network(
            tmp_path, layers=5, per_layer=1, providers=2, params=params, transport=transport
        )
        try:
            p0, p1 = net.providers
            descs = await fetch_directory("127.0.0.1", net.services[0].port)
            assert len(descs) == 7
            topo = Topology(descs, time.time())
            assert topo.depth == 5 and not topo.refused

            def client(provider, seed):  # type: ignore[no-untyped-def]
                secret = os.urandom(32)
                core = MixClient(
                    secret, bytes.fromhex(provider.id), topo, params=params, rng=random.Random(seed)
                )
                return ClientService(core, secret, provider, poll=0.05)

            alice, bob = client(p0, 1), client(p1, 2)
            msg_id = alice.core.send(bob.core.address, b"hello through five layers", time.time())

            def of(svc: ClientService, kind: type) -> list:  # type: ignore[type-arg]
                return [e for e in svc.events if isinstance(e, kind)]

            got = await asyncio.gather(
                alice.run_until(lambda: bool(of(bob, Delivered)), 20),
                bob.run_until(lambda: bool(of(bob, Delivered)), 20),
            )
            assert all(got), (alice.core.counters, bob.core.counters)
            [d] = of(bob, Delivered)
            assert d.data == b"hello through five layers" and d.msg_id == msg_id
            bob.core.reply(d.reply_surb, d.msg_id, b"and back through a SURB", time.time())
            done = lambda: bool(of(alice, ReplyReceived)) and bool(of(alice, Acked))  # noqa: E731
            await asyncio.gather(alice.run_until(done, 20), bob.run_until(done, 20))
            [r] = of(alice, ReplyReceived)
            assert r.data == b"and back through a SURB" and r.in_reply_to == msg_id
            assert of(alice, Acked)[0].msg_id == msg_id
            # cover traffic was on and indistinguishable in size: loops came back too
            await alice.run_until(lambda: bool(of(alice, LoopReturned)), 10)
            assert of(alice, LoopReturned)
            assert alice.core.counters["payload_cover_out"] > 0
            assert alice.core.counters["drop_cover_out"] > 0
            counters = [s.core.counters for s in net.services]
            assert sum(c["relayed"] for c in counters) > 20
            assert sum(c["drop_cover_absorbed"] for c in counters) > 0
            drops = {k: v for c in counters for k, v in c.items() if k.startswith("dropped")}
            assert not drops, drops
            over_tcp = sum(c["received_tcp"] for c in counters)
            # every relayed packet crossed the chosen transport (loops included)
            assert (over_tcp > 20) if transport == "tcp" else (over_tcp == 0)
            await alice.close()
            await bob.close()
        finally:
            await net.stop()

    asyncio.run(main())


def test_a_tcp_link_to_a_dead_next_hop_drops_and_counts_then_recovers() -> None:
    import socket

    from fogctl.mix.net import DirectoryStore, NodeService, _Link
    from fogctl.mix.node import MixNode

    async def main() -> None:
        svc = NodeService(
            MixNode(bytes(20), lambda t: [], layer=1), DirectoryStore(), transport="tcp"
        )
        with socket.socket() as probe:  # a port with nobody listening
            probe.bind(("127.0.0.1", 0))
            dead = probe.getsockname()[1]
        link = _Link(svc, ("127.0.0.1", dead))
        for _ in range(3):
            link.send(b"p" * 10)
        c = svc.core.counters
        end = time.monotonic() + 5
        while c["dropped_link_down"] < 3 and time.monotonic() < end:
            await asyncio.sleep(0.01)
        assert c["dropped_link_down"] == 3 and c["sent_tcp"] == 0
        # the next hop comes up: the link connects on the next packet
        got: list[bytes] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got.append(await reader.readexactly(5 + 10))
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", dead)
        try:
            link.send(b"q" * 10)
            end = time.monotonic() + 5
            while not got and time.monotonic() < end:
                await asyncio.sleep(0.01)
            assert got == [bytes([7]) + (10).to_bytes(4, "big") + b"q" * 10]
        finally:
            link.task.cancel()
            server.close()

    asyncio.run(asyncio.wait_for(main(), 20))
