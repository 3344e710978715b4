"""v3 onion services: addresses (rend-spec-v3 section 6), port maps and key files.

Pure functions, no tor, no stem::

    onion_address = base32(PUBKEY | CHECKSUM | VERSION) + ".onion"
    CHECKSUM      = SHA3-256(".onion checksum" | PUBKEY | VERSION)[:2]
    VERSION       = b"\\x03"

tor's ``ADD_ONION ED25519-V3:<blob>`` takes the *expanded* secret key: the 64 bytes
``clamp(SHA-512(seed)[:32]) | SHA-512(seed)[32:]`` (RFC 8032 section 5.1.5).
fogctl keeps the 32-byte seed (PKCS#8 PEM, mode 0600) and expands it when needed.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from dataclasses import dataclass

from fogctl.errors import InvalidInput

__all__ = [
    "PortMap",
    "check_onion_address",
    "expand_seed",
    "onion_address",
    "parse_port_map",
    "pubkey_from_address",
]

VERSION = b"\x03"
_CHECKSUM_PREFIX = b".onion checksum"
_ADDR_RE = re.compile(r"^[a-z2-7]{56}$")


def _checksum(pubkey: bytes) -> bytes:
    return hashlib.sha3_256(_CHECKSUM_PREFIX + pubkey + VERSION).digest()[:2]


def onion_address(pubkey: bytes) -> str:
    """The v3 address (``...xyz.onion``, lower case) of a 32-byte ed25519 public key."""
    if len(pubkey) != 32:
        raise InvalidInput(f"ed25519 public key: expected 32 bytes, got {len(pubkey)}")
    raw = pubkey + _checksum(pubkey) + VERSION
    return base64.b32encode(raw).decode("ascii").lower() + ".onion"


def pubkey_from_address(address: str) -> bytes:
    """The ed25519 public key inside a v3 address; checks version and checksum."""
    label = address.lower().removesuffix(".onion")
    if not _ADDR_RE.match(label):
        raise InvalidInput(f"onion address: {address!r} is not a v3 address (56 base32 chars)")
    raw = base64.b32decode(label.upper())
    pubkey, checksum, version = raw[:32], raw[32:34], raw[34:]
    if version != VERSION:
        raise InvalidInput(f"onion address: {address!r} has version {version[0]}, expected 3")
    if checksum != _checksum(pubkey):
        raise InvalidInput(f"onion address: {address!r} has a bad checksum")
    return pubkey


def check_onion_address(address: str) -> str:
    """Normalise a v3 address (adds ``.onion``, lower case) after checking it."""
    pubkey_from_address(address)
    return address.lower().removesuffix(".onion") + ".onion"


def expand_seed(seed: bytes) -> bytes:
    """The 64-byte expanded ed25519 secret key tor wants, from a 32-byte seed."""
    if len(seed) != 32:
        raise ValueError("an ed25519 seed is 32 bytes")
    h = bytearray(hashlib.sha512(seed).digest())
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return bytes(h)


@dataclass(frozen=True, slots=True)
class PortMap:
    """``VIRTPORT[:TARGET]``: the port the service offers and where tor forwards it."""

    virtual: int
    host: str
    port: int

    def target(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.virtual}:{self.target()}"


def _port(text: str, field: str, spec: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise InvalidInput(f"port map {spec!r}: {field} {text!r} is not a number")
    value = int(text)
    if not 0 < value < 65536:
        raise InvalidInput(f"port map {spec!r}: {field} {value} is not in 1-65535")
    return value


def parse_port_map(spec: str) -> PortMap:
    """Parse ``VIRT``, ``VIRT:PORT``, ``VIRT:HOST:PORT`` or ``VIRT:[V6]:PORT``.

    The target defaults to 127.0.0.1 and the virtual port. Errors name the field
    (virtual port, target host, target port) and exit 2.
    """
    text = spec.strip()
    if not text:
        raise InvalidInput(
            "port map: empty (expected VIRTPORT[:HOST]:PORT, e.g. 80:127.0.0.1:8080)"
        )
    virt_text, sep, rest = text.partition(":")
    virtual = _port(virt_text, "virtual port", spec)
    if not sep:
        return PortMap(virtual, "127.0.0.1", virtual)
    if rest.startswith("["):
        host, close, tail = rest[1:].partition("]")
        if not close or not tail.startswith(":"):
            raise InvalidInput(f"port map {spec!r}: target host {rest!r} is not [IPV6]:PORT")
        port_text = tail[1:]
    elif ":" in rest:
        host, _, port_text = rest.rpartition(":")
    else:
        host, port_text = "127.0.0.1", rest
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise InvalidInput(
                f"port map {spec!r}: target host {host!r} is not an IP address"
            ) from None
        ip = ipaddress.ip_address("127.0.0.1")
    return PortMap(virtual, str(ip), _port(port_text, "target port", spec))
