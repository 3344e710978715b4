"""SOCKS5 (RFC 1928, RFC 1929) client: a sans-IO core and two thin adapters.

The core builds requests and parses replies from bytes; it never touches a socket.
:func:`connect` (blocking) and :func:`open_connection` (asyncio) drive it.

Stream isolation: tor puts streams whose SOCKS username/password differ on different
circuits (``IsolateSOCKSAuth``, on by default), so :func:`isolation_credentials`
derives a username from the destination; every destination gets its own circuit.
Names are sent as DOMAINNAME (ATYP 3) so tor resolves them (``socks5h`` semantics),
which is what ``.onion`` names need and keeps DNS off the local resolver.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import socket
import struct
from dataclasses import dataclass

from fogctl.errors import InvalidInput, OperationFailed, ServiceUnavailable

__all__ = [
    "REPLY_MESSAGES",
    "SocksError",
    "SocksReply",
    "build_auth",
    "build_connect",
    "build_greeting",
    "connect",
    "isolation_credentials",
    "open_connection",
    "parse_auth_reply",
    "parse_method_choice",
    "parse_reply",
    "reply_size",
]

VERSION = 5
NO_AUTH = 0x00
USER_PASS = 0x02
NO_ACCEPTABLE = 0xFF
CMD_CONNECT = 0x01
ATYP_IPV4 = 0x01
ATYP_DOMAIN = 0x03
ATYP_IPV6 = 0x04

REPLY_MESSAGES = {
    0x01: "general SOCKS server failure",
    0x02: "connection not allowed by ruleset",
    0x03: "network unreachable",
    0x04: "host unreachable",
    0x05: "connection refused",
    0x06: "TTL expired",
    0x07: "command not supported",
    0x08: "address type not supported",
    # tor's extended replies (proposal 304) for onion services
    0xF0: "onion service descriptor can not be found",
    0xF1: "onion service descriptor is invalid",
    0xF2: "onion service introduction failed",
    0xF3: "onion service rendezvous failed",
    0xF4: "onion service missing client authorization",
    0xF5: "onion service wrong client authorization",
    0xF6: "onion service invalid address",
    0xF7: "onion service introduction timed out",
}


class SocksError(OperationFailed):
    """The SOCKS server sent bytes that break the protocol, or refused the request."""

    def __init__(self, message: str, *, reply: int | None = None) -> None:
        super().__init__(message)
        self.reply = reply


@dataclass(frozen=True, slots=True)
class SocksReply:
    """A CONNECT reply: 0 = succeeded; ``host``/``port`` are the bound address."""

    reply: int
    host: str
    port: int


# -- the core: bytes in, bytes out ---------------------------------------------------


def build_greeting(*, with_auth: bool) -> bytes:
    methods = bytes([USER_PASS]) if with_auth else bytes([NO_AUTH])
    return bytes([VERSION, len(methods)]) + methods


def parse_method_choice(data: bytes) -> int | None:
    """The method the server chose, or None if ``data`` is still too short."""
    if len(data) < 2:
        return None
    if data[0] != VERSION:
        raise SocksError(f"not a SOCKS5 server (version byte {data[0]})")
    if data[1] == NO_ACCEPTABLE:
        raise SocksError("SOCKS server accepts none of our authentication methods")
    if data[1] not in (NO_AUTH, USER_PASS):
        raise SocksError(f"SOCKS server chose an unknown method {data[1]}")
    return data[1]


def build_auth(username: str, password: str) -> bytes:
    u, p = username.encode(), password.encode()
    if not 1 <= len(u) <= 255 or not 1 <= len(p) <= 255:
        raise InvalidInput("SOCKS username and password must be 1-255 bytes")
    return bytes([1, len(u)]) + u + bytes([len(p)]) + p


def parse_auth_reply(data: bytes) -> bool | None:
    """True if accepted, None if ``data`` is too short; a rejection raises."""
    if len(data) < 2:
        return None
    if data[0] != 1:
        raise SocksError(f"bad SOCKS auth reply version {data[0]}")
    if data[1] != 0:
        raise SocksError("SOCKS server rejected the username/password")
    return True


def build_connect(host: str, port: int) -> bytes:
    if not 0 < port < 65536:
        raise InvalidInput(f"port: {port} is not in 1-65535")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode("idna") if not host.isascii() else host.encode()
        if not 1 <= len(name) <= 255:
            raise InvalidInput(f"host: {host!r} must be 1-255 bytes") from None
        addr = bytes([ATYP_DOMAIN, len(name)]) + name
    else:
        atyp = ATYP_IPV4 if ip.version == 4 else ATYP_IPV6
        addr = bytes([atyp]) + ip.packed
    return bytes([VERSION, CMD_CONNECT, 0]) + addr + struct.pack(">H", port)


def parse_reply(data: bytes) -> tuple[SocksReply, int] | None:
    """Parse a CONNECT reply: ``(reply, bytes consumed)``, or None if more is needed.

    A malformed reply raises :class:`SocksError`; a refusal (reply != 0) raises it too,
    with ``.reply`` set and tor's meaning in the message.
    """
    if len(data) < 5:
        return None
    if data[0] != VERSION:
        raise SocksError(f"bad SOCKS reply version {data[0]}")
    if data[2] != 0:
        raise SocksError(f"bad SOCKS reply reserved byte {data[2]}")
    atyp = data[3]
    if atyp == ATYP_IPV4:
        end = 4 + 4
    elif atyp == ATYP_IPV6:
        end = 4 + 16
    elif atyp == ATYP_DOMAIN:
        end = 5 + data[4]
    else:
        raise SocksError(f"bad SOCKS reply address type {atyp}")
    if len(data) < end + 2:
        return None
    if atyp == ATYP_DOMAIN:
        host = data[5:end].decode("ascii", "replace")
    else:
        host = str(ipaddress.ip_address(data[4:end]))
    (port,) = struct.unpack(">H", data[end : end + 2])
    reply = SocksReply(data[1], host, port)
    if reply.reply != 0:
        meaning = REPLY_MESSAGES.get(reply.reply, f"unknown reply {reply.reply}")
        raise SocksError(f"SOCKS CONNECT failed: {meaning}", reply=reply.reply)
    return reply, end + 2


def reply_size(head: bytes) -> int:
    """Total size of a CONNECT reply, from its first five bytes."""
    if len(head) < 5:
        raise ValueError("need the first five bytes of the reply")
    atyp = head[3]
    if atyp == ATYP_IPV4:
        return 4 + 4 + 2
    if atyp == ATYP_IPV6:
        return 4 + 16 + 2
    if atyp == ATYP_DOMAIN:
        return 5 + head[4] + 2
    raise SocksError(f"bad SOCKS reply address type {atyp}")


def isolation_credentials(host: str, port: int, key: str | None = None) -> tuple[str, str]:
    """SOCKS username/password that isolate streams per destination (or per ``key``)."""
    tag = key if key is not None else f"{host.lower()}:{port}"
    digest = hashlib.sha256(tag.encode()).hexdigest()[:24]
    return f"fogctl-{digest}", "isolate"


# -- adapters ------------------------------------------------------------------------


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise SocksError("SOCKS server closed the connection mid-handshake")
        buf += chunk
    return bytes(buf)


def connect(
    proxy: tuple[str, int],
    host: str,
    port: int,
    *,
    timeout: float = 60.0,
    isolation: str | None = None,
    isolate: bool = True,
) -> socket.socket:
    """A TCP connection to ``host:port`` through the SOCKS5 proxy (blocking).

    Reads exactly the handshake's bytes, so a server that speaks first loses nothing.
    """
    greeting = build_greeting(with_auth=isolate)
    request = build_connect(host, port)
    try:
        sock = socket.create_connection(proxy, timeout=timeout)
    except OSError as exc:
        raise ServiceUnavailable(
            f"SOCKS proxy {proxy[0]}:{proxy[1]} unreachable: {exc.strerror or exc}",
            hint="is tor running? try 'fogctl tor up'",
        ) from None
    try:
        sock.sendall(greeting)
        method = parse_method_choice(_recv_exactly(sock, 2))
        if method == USER_PASS:
            sock.sendall(build_auth(*isolation_credentials(host, port, isolation)))
            parse_auth_reply(_recv_exactly(sock, 2))
        sock.sendall(request)
        head = _recv_exactly(sock, 5)
        parse_reply(head + _recv_exactly(sock, reply_size(head) - 5))
    except OSError as exc:
        sock.close()
        raise OperationFailed(f"SOCKS connect to {host}:{port} failed: {exc}") from None
    except BaseException:
        sock.close()
        raise
    return sock


async def open_connection(
    proxy: tuple[str, int],
    host: str,
    port: int,
    *,
    isolation: str | None = None,
    isolate: bool = True,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Like :func:`asyncio.open_connection`, through the SOCKS5 proxy."""
    greeting = build_greeting(with_auth=isolate)
    request = build_connect(host, port)
    try:
        reader, writer = await asyncio.open_connection(*proxy)
    except OSError as exc:
        raise ServiceUnavailable(
            f"SOCKS proxy {proxy[0]}:{proxy[1]} unreachable: {exc.strerror or exc}",
            hint="is tor running? try 'fogctl tor up'",
        ) from None
    try:
        writer.write(greeting)
        method = parse_method_choice(await reader.readexactly(2))
        if method == USER_PASS:
            writer.write(build_auth(*isolation_credentials(host, port, isolation)))
            parse_auth_reply(await reader.readexactly(2))
        writer.write(request)
        head = await reader.readexactly(5)
        parse_reply(head + await reader.readexactly(reply_size(head) - 5))
    except asyncio.IncompleteReadError:
        writer.close()
        raise SocksError("SOCKS server closed the connection mid-handshake") from None
    except BaseException:
        writer.close()
        raise
    return reader, writer
