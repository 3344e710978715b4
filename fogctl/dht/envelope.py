"""Signed value envelopes: the only thing the DHT stores (sans-IO, no clock read).

An envelope binds a value to a key, a sequence number, an expiry and the Ed25519
key of its signer. Layout (big-endian)::

    version(1)=1 | dkey(20) | seq(8) | expiry(8) | signer(32) | signature(64) | value(...)

The signature covers ``DOMAIN + dkey + seq + expiry + signer + value``. ``dkey`` is
the 160-bit key id (:func:`key_id`); a key holds one slot per signer and, in each,
the envelope with the highest ``(seq, expiry)`` wins. Storing nodes verify before
accepting and readers verify again; :func:`check` is that single rule.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "HEADER",
    "MAX_CLOCK_SKEW",
    "MAX_TTL",
    "MAX_VALUE",
    "Envelope",
    "InvalidEnvelope",
    "check",
    "decode",
    "key_id",
    "seal",
]

VERSION = 1
DOMAIN = b"fogctl-dht-value-v1\x00"
HEADER = 1 + 20 + 8 + 8 + 32 + 64
MAX_VALUE = 4096  # bytes; a FIND_VALUE answer must fit one datagram
MAX_TTL = 24 * 3600.0  # values expire after 24 h unless republished
MAX_CLOCK_SKEW = 300.0
_HDR = struct.Struct(">B20sQQ32s64s")


class InvalidEnvelope(ValueError):
    """A value envelope that is malformed, forged, expired or too large."""


def key_id(key: str | bytes) -> bytes:
    """The 160-bit DHT id of a user key (SHA-256, truncated like node ids)."""
    raw = key.encode("utf-8") if isinstance(key, str) else key
    return hashlib.sha256(b"fogctl-dht-key\x00" + raw).digest()[:20]


@dataclass(frozen=True, slots=True)
class Envelope:
    dkey: bytes
    seq: int
    expiry: int
    signer: bytes
    signature: bytes
    value: bytes

    @property
    def signer_id(self) -> bytes:
        """The node id of the signer (first 160 bits of SHA-256 of its key)."""
        return hashlib.sha256(self.signer).digest()[:20]

    def signed_bytes(self) -> bytes:
        return _signed(self.dkey, self.seq, self.expiry, self.signer, self.value)

    def encode(self) -> bytes:
        return (
            _HDR.pack(VERSION, self.dkey, self.seq, self.expiry, self.signer, self.signature)
            + self.value
        )

    def newer_than(self, other: Envelope) -> bool:
        return (self.seq, self.expiry) > (other.seq, other.expiry)


def _signed(dkey: bytes, seq: int, expiry: int, signer: bytes, value: bytes) -> bytes:
    return DOMAIN + dkey + struct.pack(">QQ", seq, expiry) + signer + value


def seal(
    sign: Callable[[bytes], bytes],
    signer: bytes,
    dkey: bytes,
    value: bytes,
    *,
    seq: int,
    expiry: int,
) -> Envelope:
    """Make a signed envelope (``sign`` is the identity's Ed25519 signing function)."""
    if len(dkey) != 20:
        raise InvalidEnvelope("key id must be 20 bytes")
    if len(value) > MAX_VALUE:
        raise InvalidEnvelope(f"value is {len(value)} bytes; the limit is {MAX_VALUE}")
    if not 0 <= seq < 2**64 or not 0 <= expiry < 2**64:
        raise InvalidEnvelope("seq and expiry must fit 64 bits")
    sig = sign(_signed(dkey, seq, expiry, signer, value))
    return Envelope(dkey, seq, expiry, signer, sig, value)


def decode(data: bytes) -> Envelope:
    """Parse an envelope's bytes (no signature check); :class:`InvalidEnvelope` if bad."""
    if not isinstance(data, bytes | bytearray):
        raise InvalidEnvelope("envelope is not bytes")
    if len(data) < HEADER:
        raise InvalidEnvelope(f"envelope is {len(data)} bytes; the header alone is {HEADER}")
    if len(data) > HEADER + MAX_VALUE:
        raise InvalidEnvelope(f"value exceeds {MAX_VALUE} bytes")
    version, dkey, seq, expiry, signer, sig = _HDR.unpack_from(data)
    if version != VERSION:
        raise InvalidEnvelope(f"unknown envelope version {version}")
    return Envelope(dkey, seq, expiry, signer, sig, bytes(data[HEADER:]))


def check(
    data: bytes,
    *,
    now: float,
    verify: Callable[[bytes, bytes, bytes], bool],
    dkey: bytes | None = None,
) -> Envelope:
    """Decode and verify an envelope: signature, expiry window and (optionally) key.

    ``verify(public, signature, data)`` is the Ed25519 check. Raises
    :class:`InvalidEnvelope` naming the reason.
    """
    env = decode(data)
    if dkey is not None and env.dkey != dkey:
        raise InvalidEnvelope("envelope is for another key")
    if env.expiry <= now:
        raise InvalidEnvelope("envelope has expired")
    if env.expiry > now + MAX_TTL + MAX_CLOCK_SKEW:
        raise InvalidEnvelope("envelope expiry is too far in the future")
    if not verify(env.signer, env.signature, env.signed_bytes()):
        raise InvalidEnvelope("bad signature")
    return env


def best(envelopes: list[Envelope]) -> dict[bytes, Envelope]:
    """Highest ``(seq, expiry)`` envelope per signer."""
    out: dict[bytes, Envelope] = {}
    for env in envelopes:
        cur = out.get(env.signer)
        if cur is None or env.newer_than(cur):
            out[env.signer] = env
    return out
