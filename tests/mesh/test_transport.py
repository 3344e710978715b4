"""Plugin transports (fogctl.transports): two nodes joined only by an in-process
transport object deliver a bundle; an unknown plugin is a clear usage error."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fogctl.mesh.node import MeshNode, NodeConfig
from fogctl.mesh.transport import Transport, TransportHost
from fogctl.state import State


class Wire:
    """Both ends of a pretend radio link between two named nodes."""

    def __init__(self) -> None:
        self.hosts: dict[str, TransportHost] = {}


class WireTransport:
    name = "wire"

    def __init__(self, wire: Wire, me: str, other: str) -> None:
        self.wire, self.me, self.other = wire, me, other

    async def run(self, host: TransportHost, stop: asyncio.Event) -> None:
        self.wire.hosts[self.me] = host
        while not stop.is_set():
            peer_host = self.wire.hosts.get(self.other)
            if peer_host is not None:
                for bid, raw, drop in host.outgoing(self.other):
                    peer_host.deliver(raw, self.me)
                    host.forwarded(bid, drop)
            await asyncio.sleep(0.02)


def test_plugin_transport_carries_bundles(tmp_path: Path) -> None:
    sa, _ = State.create(tmp_path / "a")
    sb, _ = State.create(tmp_path / "b")
    wire = Wire()
    ta = WireTransport(wire, "dtn://a/", "dtn://b/")
    tb = WireTransport(wire, "dtn://b/", "dtn://a/")
    assert isinstance(ta, Transport)
    logs: list[str] = []
    a = MeshNode(sa, NodeConfig("a", tcpcl="off", poll=0.05), logs.append, [ta])
    b = MeshNode(sb, NodeConfig("b", tcpcl="off", poll=0.05), logs.append, [tb])
    from fogctl.mesh.agent import dtn_now

    a.agent.send("dtn://b/", b"over the air", now=dtn_now(), encrypt=False)

    async def main() -> None:
        stop = asyncio.Event()
        runs = [asyncio.ensure_future(n.serve(stop)) for n in (a, b)]
        for _ in range(200):
            if b.agent.inbox():
                break
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.gather(*runs)

    asyncio.run(main())
    msgs = b.agent.inbox()
    assert len(msgs) == 1 and b.agent.read(msgs[0].id)[1] == b"over the air"
    assert a.agent.store.ids() == []  # handed to its destination: dropped locally
    assert any(p.convergence_layer == "wire" for p in a.agent.peers())


def test_unknown_transport_plugin_is_usage_error(cli: Any) -> None:
    cli("init")
    res = cli("mesh", "serve", "--tcpcl", "off", "--transport", "nosuch")
    assert res.code == 2 and "nosuch" in res.stderr
