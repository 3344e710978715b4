"""Helpers for DHT tests: identities, small in-process networks, raw UDP peers."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from fogctl.dht.server import FogServer
from fogctl.state.identity import Identity

T = TypeVar("T")


def ident() -> Identity:
    return Identity(ed25519.Ed25519PrivateKey.generate(), x25519.X25519PrivateKey.generate())


def run(coro: Awaitable[T], timeout: float = 30.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def network(n: int, **kw: Any) -> list[FogServer]:
    """``n`` nodes on loopback, all bootstrapped through the first."""
    servers = [FogServer(ident(), **kw) for _ in range(n)]
    for s in servers:
        await s.listen(0, "127.0.0.1")
    first = servers[0].address
    await asyncio.gather(*(s.bootstrap([first]) for s in servers[1:]))
    # a second pass fills tables the way refreshes would
    await asyncio.gather(*(s.lookup(s.node.id) for s in servers))
    return servers


def stop_all(servers: list[Any]) -> None:
    for s in servers:
        s.stop()


def port_of(server: Any) -> int:
    return int(server.transport.get_extra_info("sockname")[1])


async def wait_for(cond: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Poll ``cond`` until true or ``timeout`` (bounded readiness, no bare sleeps)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        await asyncio.sleep(0.01)
    return cond()


class RawPeer:
    """A UDP socket speaking raw datagrams at a node (an attacker or a broken peer)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)

    def send(self, data: bytes, port: int) -> None:
        self.sock.sendto(data, ("127.0.0.1", port))

    async def recv(self, timeout: float = 2.0) -> bytes | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                return self.sock.recv(65535)
            except BlockingIOError:
                await asyncio.sleep(0.005)
        return None

    def close(self) -> None:
        self.sock.close()
