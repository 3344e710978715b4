"""Sphinx packets (Danezis & Goldberg 2009), sans-IO: bytes in, bytes and results out.

Wire format (every packet is exactly :data:`PACKET_SIZE` bytes)::

    header  = alpha (32) || beta (MAX_HOPS * HOP_SIZE = 336) || gamma (16)   = 384 bytes
    payload = delta (2048)                                                   = 2048 bytes
    packet  = header || payload                                              = 2432 bytes

``alpha`` is the blinded X25519 group element, ``beta`` the encrypted routing
information, ``gamma`` the header MAC (HMAC-SHA256 truncated to 16 bytes) and
``delta`` the LIONESS-encrypted payload. A path has at most :data:`MAX_HOPS` = 7
Sphinx hops: the entry provider, up to 5 mix layers and the exit provider.

Each hop's routing block (:data:`HOP_SIZE` = 48 bytes, all big-endian)::

    flag (1) | reserved, zero (3) | delay in microseconds (4) | address (20) |
    tail (16) | reserved, zero (4)

``flag`` is RELAY (forward ``address`` = next hop's node id, ``tail`` = the next
hop's MAC) or FINAL (deliver to client ``address``, ``tail`` = a 16-byte message
identifier). The delay is the sender's Poisson draw for that hop.

Per hop, from the shared secret ``s`` = X25519(hop key, alpha)::

    HKDF-SHA256(ikm=s, salt="fogctl-sphinx-v1", info="hop", L=256) =
        routing key (16, AES-128-CTR) | MAC key (32) | payload key (128, LIONESS) |
        blinding factor (64, reduced mod L) | replay tag (16)

The payload carries a 16-byte zero prefix under all layers; the recipient checks it,
so any modification in flight (a tagging attack) is caught. A reply through a SURB
is processed by every mix exactly like a forward packet.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.constant_time import bytes_eq
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from nacl._sodium import ffi as _ffi  # type: ignore[import-not-found]
from nacl._sodium import lib as _lib  # type: ignore[import-not-found]

from fogctl.mix.errors import MacMismatch, MalformedPacket, ReplayedPacket, TaggedPayload
from fogctl.mix.primitives import (
    _SHA256,
    CryptoFailure,
    L,
    Lioness,
    _clamped_representative,
    ct_equal,
    hkdf_sha256,
    lioness_encrypt_layers,
    scalar_from_bytes,
    x25519_base_mul,
)

__all__ = [
    "ADDRESS_SIZE",
    "BODY_SIZE",
    "HEADER_SIZE",
    "HOP_SIZE",
    "MAX_HOPS",
    "PACKET_SIZE",
    "PAYLOAD_SIZE",
    "SURB_SIZE",
    "Final",
    "Hop",
    "Relay",
    "Surb",
    "SurbKeys",
    "create_forward",
    "create_surb",
    "open_forward",
    "open_reply",
    "process",
    "use_surb",
]

Rng = Callable[[int], bytes]

MAX_HOPS = 7
HOP_SIZE = 48
ADDRESS_SIZE = 20
ID_SIZE = 16
MAC_SIZE = 16
ALPHA_SIZE = 32
BETA_SIZE = MAX_HOPS * HOP_SIZE
HEADER_SIZE = ALPHA_SIZE + BETA_SIZE + MAC_SIZE
PAYLOAD_SIZE = 2048
PACKET_SIZE = HEADER_SIZE + PAYLOAD_SIZE
ZERO_PREFIX = 16
BODY_SIZE = PAYLOAD_SIZE - ZERO_PREFIX
SURB_KEY_SIZE = 32
SURB_SIZE = ADDRESS_SIZE + HEADER_SIZE + SURB_KEY_SIZE
MAX_DELAY_US = 2**32 - 1

FLAG_RELAY = 0x01
FLAG_FINAL = 0x02

_SALT = b"fogctl-sphinx-v1"
_STREAM = BETA_SIZE + HOP_SIZE
_HOP = struct.Struct(">B3xI20s16s4x")
_PAD = bytes(HOP_SIZE)
_GAMMA = ALPHA_SIZE + BETA_SIZE
_RIGHT = HEADER_SIZE + 32  # LIONESS's right half of the payload starts here
_RIGHT_SIZE = PAYLOAD_SIZE - 32
_NONCE = bytes(12)
_ZEROS = bytes(_STREAM)
_new, _buffer, _NULL = _ffi.new, _ffi.buffer, _ffi.NULL
_scalarmult = _lib.crypto_scalarmult
_blake2b = _lib.crypto_generichash_blake2b_salt_personal
assert _HOP.size == HOP_SIZE


@dataclass(frozen=True, slots=True)
class Hop:
    """One hop of a path as the sender sees it."""

    node_id: bytes  # 20 bytes
    public_key: bytes  # X25519, 32 bytes
    delay_us: int = 0  # how long this hop holds the packet


class Relay(NamedTuple):
    """Processing result: forward ``packet`` to ``next_hop`` after ``delay_us``."""

    next_hop: bytes
    delay_us: int
    packet: bytes
    replay_tag: bytes


class Final(NamedTuple):
    """Processing result: this hop is the last; deliver ``payload`` to ``address``."""

    address: bytes
    identifier: bytes
    delay_us: int
    payload: bytes
    replay_tag: bytes


@dataclass(frozen=True, slots=True)
class Surb:
    """A single-use reply block: what a replier needs, and nothing about the path."""

    first_hop: bytes
    header: bytes
    key: bytes

    def to_bytes(self) -> bytes:
        return self.first_hop + self.header + self.key

    @classmethod
    def from_bytes(cls, data: bytes) -> Surb:
        if len(data) != SURB_SIZE:
            raise MalformedPacket(f"SURB must be {SURB_SIZE} bytes, got {len(data)}")
        a, h = ADDRESS_SIZE, ADDRESS_SIZE + HEADER_SIZE
        return cls(data[:a], data[a:h], data[h:])


@dataclass(frozen=True, slots=True)
class SurbKeys:
    """What the SURB's creator keeps to read the reply (never sent)."""

    identifier: bytes
    payload_keys: tuple[bytes, ...]
    key: bytes

    def to_bytes(self) -> bytes:
        return self.identifier + self.key + b"".join(self.payload_keys)

    @classmethod
    def from_bytes(cls, data: bytes) -> SurbKeys:
        n, rest = divmod(len(data) - ID_SIZE - SURB_KEY_SIZE, Lioness.KEY_SIZE)
        if rest or n < 1:
            raise MalformedPacket("bad SURB key blob")
        ks = data[ID_SIZE + SURB_KEY_SIZE :]
        keys = tuple(ks[i * 128 : (i + 1) * 128] for i in range(n))
        return cls(data[:ID_SIZE], keys, data[ID_SIZE : ID_SIZE + SURB_KEY_SIZE])


# Offsets of a hop's keys in its HKDF output (see the module docstring).
_K_ROUTING, _K_MAC, _K_PAYLOAD, _K_BLIND, _K_TAG = 0, 16, 48, 176, 240


def _mac(key: bytes, beta: bytes) -> bytes:
    h = HMAC(key, _SHA256)
    h.update(beta)
    return h.finalize()[:MAC_SIZE]


def _surb_lioness(key: bytes) -> Lioness:
    return Lioness(hkdf_sha256(key, Lioness.KEY_SIZE, salt=_SALT, info=b"surb"))


def _check_path(hops: Sequence[Hop], address: bytes, identifier: bytes) -> None:
    if not 1 <= len(hops) <= MAX_HOPS:
        raise ValueError(f"a path has 1 to {MAX_HOPS} hops, got {len(hops)}")
    for h in hops:
        if len(h.node_id) != ADDRESS_SIZE or len(h.public_key) != 32:
            raise ValueError("hop node ids are 20 bytes and public keys 32 bytes")
        if not 0 <= h.delay_us <= MAX_DELAY_US:
            raise ValueError("hop delay out of range")
    if len(address) != ADDRESS_SIZE or len(identifier) != ID_SIZE:
        raise ValueError("destination address is 20 bytes and identifier 16 bytes")


def _header(
    hops: Sequence[Hop], address: bytes, identifier: bytes, rng: Rng
) -> tuple[bytes, list[bytes]]:
    """Build alpha||beta||gamma and return it with each hop's key material.

    O(hops) scalar multiplications: one fixed-base for alpha, one X25519 per hop with
    the blinding factors multiplied together mod L (the chain is computed once).
    beta and the filler are handled as big-endian integers: shifts and XORs instead
    of byte slicing (same bytes as the textbook construction; the golden vectors
    check it).
    """
    _check_path(hops, address, identifier)
    n = len(hops)
    x = scalar_from_bytes(rng(64)) or 1
    alpha0 = x25519_base_mul(x)  # fixed-base: the only multiplication by G
    keys: list[bytes] = []
    acc = x
    out = _new("unsigned char[]", 32)
    for hop in hops:  # primitives.x25519_mul and the key schedule, without wrappers
        if _scalarmult(out, _clamped_representative(acc), hop.public_key):
            raise CryptoFailure("X25519 produced the all-zero value (low-order point)")
        k = HKDF(_SHA256, 256, _SALT, b"hop").derive(_buffer(out, 32)[:])
        keys.append(k)
        acc = acc * (int.from_bytes(k[_K_BLIND:_K_TAG], "little") % L) % L
        if not acc:
            raise CryptoFailure("zero scalar")
    streams = [
        int.from_bytes(AESGCM(k[_K_ROUTING:_K_MAC]).encrypt(_NONCE, _ZEROS, None)[:_STREAM], "big")
        for k in keys
    ]
    # filler: what the routing streams of hops 0..n-2 leave at the end of beta
    filler = 0
    size = 0
    for i in range(n - 1):
        size += HOP_SIZE
        filler = (filler << (8 * HOP_SIZE)) ^ (streams[i] & ((1 << (8 * size)) - 1))
    last = hops[-1]
    plain_size = BETA_SIZE - size
    plain = _HOP.pack(FLAG_FINAL, last.delay_us, address, identifier) + rng(plain_size - HOP_SIZE)
    tail = streams[n - 1] >> (8 * (_STREAM - plain_size))
    beta_int = ((int.from_bytes(plain, "big") ^ tail) << (8 * size)) | filler
    beta = beta_int.to_bytes(BETA_SIZE, "big")
    gamma = _mac(keys[n - 1][_K_MAC:_K_PAYLOAD], beta)
    shift = 8 * (BETA_SIZE - HOP_SIZE)
    for i in range(n - 2, -1, -1):
        block = _HOP.pack(FLAG_RELAY, hops[i].delay_us, hops[i + 1].node_id, gamma)
        beta_int = ((int.from_bytes(block, "big") << shift) | (beta_int >> (8 * HOP_SIZE))) ^ (
            streams[i] >> (8 * HOP_SIZE)
        )
        beta = beta_int.to_bytes(BETA_SIZE, "big")
        gamma = _mac(keys[i][_K_MAC:_K_PAYLOAD], beta)
    return alpha0 + beta + gamma, keys


def _pad_body(body: bytes) -> bytes:
    if len(body) > BODY_SIZE:
        raise ValueError(f"body is {len(body)} bytes; at most {BODY_SIZE} fit in a packet")
    return bytes(ZERO_PREFIX) + body + bytes(BODY_SIZE - len(body))


def create_forward(
    hops: Sequence[Hop], address: bytes, identifier: bytes, body: bytes, rng: Rng
) -> bytes:
    """A forward packet to client ``address`` (via ``hops``, the last being its provider)."""
    header, keys = _header(hops, address, identifier, rng)
    return header + lioness_encrypt_layers([k[_K_PAYLOAD:_K_BLIND] for k in keys], _pad_body(body))


def open_forward(payload: bytes) -> bytes:
    """The body of a forward payload as delivered; checks the zero prefix (tagging)."""
    if len(payload) != PAYLOAD_SIZE:
        raise MalformedPacket("payload has the wrong size")
    if not ct_equal(payload[:ZERO_PREFIX], bytes(ZERO_PREFIX)):
        raise TaggedPayload("payload integrity prefix is wrong")
    return payload[ZERO_PREFIX:]


def create_surb(
    hops: Sequence[Hop], address: bytes, identifier: bytes, rng: Rng
) -> tuple[Surb, SurbKeys]:
    """A reply block leading back to ``address`` and the keys its creator keeps."""
    header, keys = _header(hops, address, identifier, rng)
    key = rng(SURB_KEY_SIZE)
    return (
        Surb(hops[0].node_id, header, key),
        SurbKeys(identifier, tuple(k[_K_PAYLOAD:_K_BLIND] for k in keys), key),
    )


def use_surb(surb: Surb, body: bytes) -> tuple[bytes, bytes]:
    """(first hop, packet) for a reply of ``body`` through ``surb``."""
    delta = _surb_lioness(surb.key).encrypt(_pad_body(body))
    return surb.first_hop, surb.header + delta


def open_reply(keys: SurbKeys, payload: bytes) -> bytes:
    """The body of a reply delivered through the SURB that ``keys`` belong to."""
    if len(payload) != PAYLOAD_SIZE:
        raise MalformedPacket("payload has the wrong size")
    delta = payload
    for pk in reversed(keys.payload_keys):
        delta = Lioness(pk).encrypt(delta)
    return open_forward(_surb_lioness(keys.key).decrypt(delta))


def process(
    packet: bytes,
    private_key: bytes,
    seen: Callable[[bytes], bool] | None = None,
) -> Relay | Final:
    """Process one packet with this hop's X25519 private key.

    ``seen(tag)`` records a replay tag and says whether it was already there; it is
    called only after the MAC verifies. Raises a :class:`MixProtocolError` subclass
    for any packet that must be dropped.

    This is the per-hop hot path, so the primitives of :mod:`fogctl.mix.primitives`
    are called here without their wrappers (the same cryptography and libsodium calls:
    X25519, HKDF-SHA256, HMAC-SHA256/16 compared in constant time, AES-128-CTR, and
    LIONESS decryption); tests check it against a reference built from the wrappers.
    """
    if len(packet) != PACKET_SIZE:
        raise MalformedPacket(f"packet is {len(packet)} bytes, not {PACKET_SIZE}")
    if len(private_key) != 32:
        raise ValueError("an X25519 private key is 32 bytes")
    alpha = packet[:ALPHA_SIZE]
    out = _new("unsigned char[]", 32)
    if _scalarmult(out, private_key, alpha):
        raise MalformedPacket("alpha is a low-order point")
    k = HKDF(_SHA256, 256, _SALT, b"hop").derive(_buffer(out, 32)[:])
    beta = packet[ALPHA_SIZE:_GAMMA]
    mac = HMAC(k[_K_MAC:_K_PAYLOAD], _SHA256)
    mac.update(beta)
    if not bytes_eq(mac.finalize()[:MAC_SIZE], packet[_GAMMA:HEADER_SIZE]):
        raise MacMismatch("header MAC does not verify")
    tag = k[_K_TAG:]
    if seen is not None and seen(tag):
        raise ReplayedPacket("packet was seen before")
    # (beta || 0^HOP_SIZE) XOR the AES-128-CTR stream (GCM's CTR part; tag ignored)
    b = AESGCM(k[_K_ROUTING:_K_MAC]).encrypt(_NONCE, beta + _PAD, None)
    flag, delay, address, tail = _HOP.unpack_from(b)
    # LIONESS decryption under k[48:176] = K1 | K2 | K3 | K4 (see primitives.Lioness)
    right = packet[_RIGHT:]
    h = _new("unsigned char[]", 32)
    _blake2b(h, 32, right, _RIGHT_SIZE, k[144:176], 32, _NULL, _NULL)
    left = int.from_bytes(packet[HEADER_SIZE:_RIGHT], "little") ^ int.from_bytes(
        _buffer(h, 32), "little"
    )
    key = (left ^ int.from_bytes(k[112:144], "little")).to_bytes(32, "little")
    right = ChaCha20Poly1305(key).encrypt(_NONCE, right, None)[:_RIGHT_SIZE]
    _blake2b(h, 32, right, _RIGHT_SIZE, k[80:112], 32, _NULL, _NULL)
    left ^= int.from_bytes(_buffer(h, 32), "little")
    key = (left ^ int.from_bytes(k[48:80], "little")).to_bytes(32, "little")
    right = ChaCha20Poly1305(key).encrypt(_NONCE, right, None)[:_RIGHT_SIZE]
    head = left.to_bytes(32, "little")
    if flag == FLAG_RELAY:
        blind = int.from_bytes(k[_K_BLIND:_K_TAG], "little") % L
        try:
            rep = _clamped_representative(blind) if blind else b""
        except CryptoFailure:
            rep = b""
        if not rep or _scalarmult(out, rep, alpha):
            raise MalformedPacket("cannot blind alpha")
        relayed = (_buffer(out, 32)[:], b[HOP_SIZE:_STREAM], tail, head, right)
        return Relay(address, delay, b"".join(relayed), tag)
    if flag == FLAG_FINAL:
        return Final(address, tail, delay, head + right, tag)
    raise MalformedPacket(f"unknown routing flag {flag}")
