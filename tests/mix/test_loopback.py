"""Done-when: a five-layer stratified network plus two providers on loopback, real UDP and
TCP, carries a message and its SURB reply end to end with cover traffic on."""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

from fogctl.mix.directory import Topology
from fogctl.mix.localnet import start_local_network
from fogctl.mix.net import ClientService, fetch_directory
from fogctl.mix.node import Acked, Delivered, LoopReturned, MixClient, Params, ReplyReceived


def test_five_layer_network_carries_messages_and_surb_replies_with_cover(tmp_path: Path) -> None:
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
        net = await start_local_network(tmp_path, layers=5, per_layer=1, providers=2, params=params)
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
            await alice.close()
            await bob.close()
        finally:
            await net.stop()

    asyncio.run(main())
