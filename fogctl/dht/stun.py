"""A small RFC 5389 STUN client: Binding requests, XOR-MAPPED-ADDRESS, NAT behaviour.

The codec is sans-IO (:func:`binding_request`, :func:`parse_response`) and checked
against the RFC 5769 test vectors; :func:`probe` is the blocking I/O around it that
``fogctl dht nat`` runs. Mapping behaviour (RFC 4787): one socket asks two servers
at different addresses; the same reflexive address from both means an
endpoint-independent mapping (hole punching works), different ones a symmetric NAT
(a TURN relay is needed).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import time
import zlib
from dataclasses import dataclass

from fogctl.dht.records import DhtNatRecord
from fogctl.errors import InvalidInput, ServiceUnavailable

__all__ = ["MAGIC", "StunError", "binding_request", "classify", "parse_response", "probe"]

MAGIC = 0x2112A442
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
MAPPED_ADDRESS = 0x0001
XOR_MAPPED_ADDRESS = 0x0020
FINGERPRINT = 0x8028
FINGERPRINT_XOR = 0x5354554E


class StunError(ValueError):
    """A datagram that is not a valid STUN Binding success response."""


@dataclass(frozen=True, slots=True)
class Mapped:
    host: str
    port: int


def binding_request(transaction_id: bytes) -> bytes:
    """A Binding request (no attributes) for a 12-byte transaction id."""
    if len(transaction_id) != 12:
        raise ValueError("transaction id must be 12 bytes")
    return struct.pack(">HHI", BINDING_REQUEST, 0, MAGIC) + transaction_id


def _xor_address(value: bytes, transaction_id: bytes) -> Mapped:
    if len(value) < 4 or value[0] != 0:
        raise StunError("bad address attribute")
    family = value[1]
    port = struct.unpack(">H", value[2:4])[0] ^ (MAGIC >> 16)
    key = struct.pack(">I", MAGIC) + transaction_id
    if family == 1 and len(value) == 8:
        raw = bytes(a ^ b for a, b in zip(value[4:8], key[:4], strict=True))
    elif family == 2 and len(value) == 20:
        raw = bytes(a ^ b for a, b in zip(value[4:20], key, strict=True))
    else:
        raise StunError("bad address family or length")
    return Mapped(str(ipaddress.ip_address(raw)), port)


def _plain_address(value: bytes) -> Mapped:
    if len(value) < 4 or value[0] != 0:
        raise StunError("bad address attribute")
    family, port = value[1], struct.unpack(">H", value[2:4])[0]
    if family == 1 and len(value) == 8:
        return Mapped(str(ipaddress.ip_address(value[4:8])), port)
    if family == 2 and len(value) == 20:
        return Mapped(str(ipaddress.ip_address(value[4:20])), port)
    raise StunError("bad address family or length")


def parse_response(data: bytes, transaction_id: bytes) -> Mapped:
    """The mapped address in a Binding success response; :class:`StunError` if invalid."""
    if len(data) < 20:
        raise StunError("shorter than a STUN header")
    mtype, length, cookie = struct.unpack(">HHI", data[:8])
    if mtype & 0xC000 or cookie != MAGIC:
        raise StunError("not a STUN message")
    if length % 4 or 20 + length != len(data):
        raise StunError("length does not match the datagram")
    if data[8:20] != transaction_id:
        raise StunError("transaction id does not match")
    if mtype != BINDING_SUCCESS:
        raise StunError(f"not a Binding success response (type 0x{mtype:04x})")
    mapped: Mapped | None = None
    xor_mapped: Mapped | None = None
    pos = 20
    while pos < len(data):
        if pos + 4 > len(data):
            raise StunError("truncated attribute header")
        atype, alen = struct.unpack(">HH", data[pos : pos + 4])
        value = data[pos + 4 : pos + 4 + alen]
        if len(value) != alen:
            raise StunError("truncated attribute")
        if atype == XOR_MAPPED_ADDRESS and xor_mapped is None:
            xor_mapped = _xor_address(value, transaction_id)
        elif atype == MAPPED_ADDRESS and mapped is None:
            mapped = _plain_address(value)
        elif atype == FINGERPRINT:
            if alen != 4:
                raise StunError("bad FINGERPRINT length")
            want = (zlib.crc32(data[:pos]) ^ FINGERPRINT_XOR) & 0xFFFFFFFF
            if struct.unpack(">I", value)[0] != want:
                raise StunError("FINGERPRINT mismatch")
        pos += 4 + alen + (-alen % 4)
    found = xor_mapped or mapped
    if found is None:
        raise StunError("no mapped address in the response")
    return found


def classify(local: Mapped, mapped: list[Mapped]) -> tuple[str, str]:
    """``(reachability, nat)`` from the local address and the reflexive ones."""
    if not mapped:
        return "unknown", "unknown"
    if all(m == local for m in mapped):
        return "public", "none"
    if len(mapped) < 2:
        return "nat", "unknown"
    if len(set(mapped)) == 1:
        return "nat", "endpoint-independent"
    return "nat", "symmetric"


def _ask(sock: socket.socket, server: tuple[str, int], timeout: float) -> Mapped | None:
    tid = os.urandom(12)
    request = binding_request(tid)
    end = time.monotonic() + timeout
    rto = min(0.5, timeout)
    while time.monotonic() < end:
        sock.sendto(request, server)
        wait_until = min(end, time.monotonic() + rto)
        while time.monotonic() < wait_until:
            sock.settimeout(max(0.01, wait_until - time.monotonic()))
            try:
                data, addr = sock.recvfrom(2048)
            except (TimeoutError, BlockingIOError):
                break
            if (addr[0], addr[1]) != server:
                continue
            try:
                return parse_response(data, tid)
            except StunError:
                continue
        rto *= 2
    return None


def probe(
    state: object, servers: list[str], *, port: int = 0, timeout: float = 2.0
) -> DhtNatRecord:
    """Ask each STUN server from one socket and classify this node's reachability."""
    from fogctl.dht.server import parse_hostport

    if not servers and hasattr(state, "config"):
        conf = str(state.config.get("dht.stun", "") or "")
        servers = [p for p in conf.replace(",", " ").split() if p]
    if not servers:
        raise InvalidInput("no STUN server: pass --stun IP:PORT or set dht.stun")
    addrs = [parse_hostport(s, 3478) for s in servers]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError as exc:
            raise ServiceUnavailable(f"cannot bind UDP port {port}: {exc.strerror}") from None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as route:
            route.connect(addrs[0])
            local_ip = route.getsockname()[0]
        local = Mapped(local_ip, sock.getsockname()[1])
        mapped = []
        for addr in addrs:
            got = _ask(sock, addr, timeout)
            if got is not None:
                mapped.append(got)
    if not mapped:
        raise ServiceUnavailable(f"no STUN server answered ({', '.join(servers)})")
    reach, nat = classify(local, mapped)
    return DhtNatRecord(
        reachability=reach,
        nat=nat,
        local=f"{local.host}:{local.port}",
        reflexive=f"{mapped[0].host}:{mapped[0].port}",
        server=servers[0],
    )
