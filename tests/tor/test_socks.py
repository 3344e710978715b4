"""SOCKS5 client: the sans-IO core fed whole and byte by byte, fuzzed, and both adapters
against an in-memory SOCKS5 server on 127.0.0.1 that records what clients asked."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fogctl.errors import InvalidInput
from fogctl.tor import socks


def reply(code: int = 0, atyp: int = 1, addr: bytes = b"\x7f\x00\x00\x01", port: int = 9) -> bytes:
    if atyp == 3:
        addr = bytes([len(addr)]) + addr
    return bytes([5, code, 0, atyp]) + addr + struct.pack(">H", port)


def test_connect_request_encodings() -> None:
    assert socks.build_connect("127.0.0.1", 80) == b"\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50"
    v6 = socks.build_connect("::1", 443)
    assert v6[:4] == b"\x05\x01\x00\x04" and len(v6) == 4 + 16 + 2
    name = "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx.onion"
    req = socks.build_connect(name, 80)
    assert req[3] == 3 and req[4] == len(name) and req[5 : 5 + len(name)] == name.encode()
    with pytest.raises(InvalidInput, match="port"):
        socks.build_connect("example.org", 0)
    with pytest.raises(InvalidInput, match="host"):
        socks.build_connect("a" * 300, 80)


@pytest.mark.parametrize(
    "data", [reply(), reply(atyp=4, addr=bytes(16)), reply(atyp=3, addr=b"relay.test")]
)
def test_reply_whole_and_byte_by_byte(data: bytes) -> None:
    for n in range(len(data)):
        assert socks.parse_reply(data[:n]) is None
    parsed = socks.parse_reply(data + b"extra")
    assert parsed is not None
    rep, used = parsed
    assert used == len(data) and rep.reply == 0 and rep.port == 9
    assert socks.reply_size(data[:5]) == len(data)


def test_refusals_carry_tor_meaning() -> None:
    with pytest.raises(socks.SocksError, match="descriptor can not be found") as info:
        socks.parse_reply(reply(code=0xF0))
    assert info.value.reply == 0xF0
    with pytest.raises(socks.SocksError, match="connection refused"):
        socks.parse_reply(reply(code=5))
    with pytest.raises(socks.SocksError, match="version"):
        socks.parse_reply(b"\x04\x00\x00\x01" + bytes(6))
    with pytest.raises(socks.SocksError, match="none of our"):
        socks.parse_method_choice(b"\x05\xff")
    with pytest.raises(socks.SocksError, match="rejected"):
        socks.parse_auth_reply(b"\x01\x01")


@given(st.binary(max_size=300))
def test_fuzz_reply_parser(data: bytes) -> None:
    """Any bytes: a reply, 'need more', or SocksError; never another exception."""
    for parse in (socks.parse_reply, socks.parse_method_choice, socks.parse_auth_reply):
        with contextlib.suppress(socks.SocksError):
            parse(data)
    if len(data) >= 5:
        with contextlib.suppress(socks.SocksError):
            assert socks.reply_size(data[:5]) >= 10


def test_isolation_credentials_per_destination() -> None:
    a = socks.isolation_credentials("a.onion", 80)
    assert a == socks.isolation_credentials("A.onion", 80)
    assert a != socks.isolation_credentials("a.onion", 81)
    assert a != socks.isolation_credentials("b.onion", 80)
    assert socks.isolation_credentials("x", 1, key="job-7") == socks.isolation_credentials(
        "y", 2, key="job-7"
    )


class FakeSocks:
    """A minimal SOCKS5 server: user/pass auth, CONNECT; it answers, then speaks first."""

    def __init__(self, greeting: bytes = b"HELLO") -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.seen: list[tuple[str, str, int]] = []
        self.greeting = greeting
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def read(self, conn: socket.socket, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise ConnectionError
            buf += chunk
        return buf

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    _ver, n = self.read(conn, 2)
                    methods = self.read(conn, n)
                    user = ""
                    if 2 in methods:
                        conn.sendall(b"\x05\x02")
                        _, ulen = self.read(conn, 2)
                        user = self.read(conn, ulen).decode()
                        (plen,) = self.read(conn, 1)
                        self.read(conn, plen)
                        conn.sendall(b"\x01\x00")
                    else:
                        conn.sendall(b"\x05\x00")
                    _, _cmd, _, atyp = self.read(conn, 4)
                    if atyp == 3:
                        (ln,) = self.read(conn, 1)
                        host = self.read(conn, ln).decode()
                    else:
                        host = socket.inet_ntoa(self.read(conn, 4))
                    (port,) = struct.unpack(">H", self.read(conn, 2))
                    self.seen.append((user, host, port))
                    # reply and the server's first bytes in one segment
                    conn.sendall(reply() + self.greeting)
                    conn.recv(100)
                except (ConnectionError, ValueError):
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def fake_socks() -> Iterator[FakeSocks]:
    server = FakeSocks()
    yield server
    server.close()


def test_blocking_adapter(fake_socks: FakeSocks) -> None:
    proxy = ("127.0.0.1", fake_socks.port)
    for host in ("abc.onion", "abc.onion", "def.onion"):
        with socks.connect(proxy, host, 80, timeout=5) as s:
            assert s.recv(100) == b"HELLO"  # nothing after the reply was swallowed
    users = [u for u, _, _ in fake_socks.seen]
    assert [h for _, h, _ in fake_socks.seen] == ["abc.onion", "abc.onion", "def.onion"]
    assert users[0] == users[1] != users[2]  # one circuit per destination


def test_async_adapter(fake_socks: FakeSocks) -> None:
    async def run() -> Any:
        reader, writer = await socks.open_connection(
            ("127.0.0.1", fake_socks.port), "127.0.0.1", 8080
        )
        data = await reader.readexactly(5)
        writer.close()
        return data

    assert asyncio.run(run()) == b"HELLO"
    assert fake_socks.seen[-1][1:] == ("127.0.0.1", 8080)


def test_proxy_down_is_service_unavailable() -> None:
    from fogctl.errors import ServiceUnavailable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ServiceUnavailable, match="unreachable"):
        socks.connect(("127.0.0.1", port), "x.onion", 80, timeout=2)
