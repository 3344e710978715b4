"""``--via``: outgoing TCP connections of other commands go through a SOCKS5 proxy.

The proxy here is a minimal SOCKS5 relay written for the test (an adapter test); tor's
own tests (tests/tor) drive the same client through a real tor network.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator

import pytest

from fogctl.net import open_connection


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def socks5_relay(
    targets: list[tuple[str, int]], users: list[bytes] | None = None, refuse: int = 0
) -> AsyncIterator[int]:
    """A SOCKS5 CONNECT relay on 127.0.0.1 that records each requested target.

    ``users`` collects the SOCKS usernames (tor's isolation keys); the first ``refuse``
    CONNECT requests get "connection refused", as a stuck circuit would.
    """
    refused = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, n = await reader.readexactly(2)
        methods = await reader.readexactly(n)
        if 2 in methods:  # username/password: tor's stream isolation; accept anything
            writer.write(b"\x05\x02")
            _ver, ulen = await reader.readexactly(2)
            user = await reader.readexactly(ulen)
            if users is not None:
                users.append(user)
            (plen,) = await reader.readexactly(1)
            await reader.readexactly(plen)
            writer.write(b"\x01\x00")
        else:
            writer.write(b"\x05\x00")
        _, cmd, _, atyp = await reader.readexactly(4)
        assert cmd == 1
        if atyp == 3:
            (ln,) = await reader.readexactly(1)
            host = (await reader.readexactly(ln)).decode()
        else:
            host = ".".join(str(b) for b in await reader.readexactly(4))
        (port,) = struct.unpack(">H", await reader.readexactly(2))
        targets.append((host, port))
        nonlocal refused
        if refused < refuse:
            refused += 1
            writer.write(b"\x05\x05\x00\x01" + bytes(4) + b"\x00\x00")
            await writer.drain()
            writer.close()
            return
        up_r, up_w = await asyncio.open_connection(host, port)
        writer.write(b"\x05\x00\x00\x01" + bytes(4) + b"\x00\x00")
        await writer.drain()
        await asyncio.gather(_pipe(reader, up_w), _pipe(up_r, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _pipe(reader, writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def test_direct_by_default_and_socks5_when_asked() -> None:
    async def main() -> None:
        targets: list[tuple[str, int]] = []
        async with echo_server() as echo, socks5_relay(targets) as proxy:
            r, w = await open_connection("127.0.0.1", echo)
            w.write(b"direct")
            assert await r.readexactly(6) == b"direct"
            w.close()
            assert targets == []
            r, w = await open_connection("127.0.0.1", echo, via=f"socks5://127.0.0.1:{proxy}")
            w.write(b"proxied")
            assert await r.readexactly(7) == b"proxied"
            w.close()
            assert targets == [("127.0.0.1", echo)]

    asyncio.run(asyncio.wait_for(main(), 30))


def test_a_failed_attempt_gets_a_fresh_circuit_next_time() -> None:
    """Streams to one destination share an isolation key until an attempt fails."""
    from fogctl.tor.socks import SocksError

    async def main() -> None:
        targets: list[tuple[str, int]] = []
        users: list[bytes] = []
        async with echo_server() as echo, socks5_relay(targets, users, refuse=1) as proxy:
            via = f"socks5://127.0.0.1:{proxy}"
            with pytest.raises(SocksError):
                await open_connection("127.0.0.1", echo, via=via)
            for _ in range(2):
                r, w = await open_connection("127.0.0.1", echo, via=via)
                w.write(b"ok")
                assert await r.readexactly(2) == b"ok"
                w.close()
        assert len(users) == 3
        assert users[1] != users[0]  # the retry asked for another circuit
        assert users[2] == users[1]  # and kept it once it worked

    asyncio.run(asyncio.wait_for(main(), 30))


def test_mix_requests_follow_the_configured_route(monkeypatch: pytest.MonkeyPatch) -> None:
    from fogctl.mix.net import OK, _frame, _read_frame, request

    async def frame_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, body = await _read_frame(reader)
        writer.write(_frame(OK, b"pong:" + body))
        await writer.drain()
        writer.close()

    async def main() -> None:
        targets: list[tuple[str, int]] = []
        server = await asyncio.start_server(frame_server, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with socks5_relay(targets) as proxy:
            monkeypatch.setenv("FOGCTL_NET_VIA", f"socks5://127.0.0.1:{proxy}")
            assert await request("127.0.0.1", port, 5, b"x") == b"pong:x"
        server.close()
        assert targets == [("127.0.0.1", port)]

    asyncio.run(asyncio.wait_for(main(), 30))


def test_bad_route_is_invalid_input(cli) -> None:
    res = cli("--via", "carrier-pigeon", "mix", "directory", "fetch", "--from", "127.0.0.1:9")
    assert res.code == 2
    assert "--via" in res.stderr
