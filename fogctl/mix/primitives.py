"""The cryptographic primitives of fogctl's Sphinx, all from cryptography or pynacl.

=================  ===================================================  =============
primitive          use                                                  library
=================  ===================================================  =============
X25519             key agreement and header blinding (RFC 7748)         pynacl
HKDF-SHA256        per-hop keys from the shared secret (RFC 5869)       cryptography
AES-128-CTR        the routing-information stream (beta)                cryptography
HMAC-SHA256/16     the header MAC (gamma), compared in constant time   cryptography
LIONESS            wide-block payload cipher from ChaCha20 (RFC 8439)   cryptography
                   and keyed BLAKE2b-256 (RFC 7693)                     pynacl
=================  ===================================================  =============

Blinding is arithmetic on scalars modulo the prime order ``L`` of Curve25519's main
subgroup. libsodium's X25519 always clamps its scalar, so :func:`x25519_mul` turns a
scalar ``e mod L`` into a *clamped* integer ``k = 2^254 + 8m`` with ``k = +-e (mod L)``
(the u-coordinate cannot tell ``P`` from ``-P``); for points of the main subgroup
``k*P`` then equals ``e*P``. That lets a sender multiply the blinding factors together
once and do one scalar multiplication per hop: O(hops), not O(hops^2).
"""

from __future__ import annotations

import nacl.bindings as nb
from cryptography.hazmat.primitives import constant_time, hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from nacl._sodium import ffi as _ffi  # type: ignore[import-not-found]
from nacl._sodium import lib as _lib  # type: ignore[import-not-found]

__all__ = [
    "BASEPOINT",
    "L",
    "Lioness",
    "aes128_ctr_reference",
    "aes128_ctr_stream",
    "aes128_ctr_xor",
    "blake2b_keyed",
    "chacha20_stream",
    "chacha20_xor",
    "ct_equal",
    "hkdf_sha256",
    "hmac_sha256",
    "lioness_decrypt",
    "lioness_encrypt",
    "lioness_encrypt_layers",
    "scalar_from_bytes",
    "x25519",
    "x25519_base",
    "x25519_base_mul",
    "x25519_mul",
]

#: Order of the prime-order subgroup of Curve25519 / edwards25519.
L = 2**252 + 27742317777372353535851937790883648493
_TOP = 2**254
_ZERO_NONCE = bytes(12)
_K_LIMIT = 2**255
_SHA256 = hashes.SHA256()
#: u = 9, the X25519 base point (generates the subgroup of order L).
BASEPOINT = (9).to_bytes(32, "little")


class CryptoFailure(ValueError):
    """A primitive refused its input (e.g. a low-order point gave the all-zero secret)."""


def x25519(scalar: bytes, point: bytes) -> bytes:
    """RFC 7748 X25519(k, u): clamps ``scalar``; refuses an all-zero result.

    libsodium's ``crypto_scalarmult`` through pynacl's cffi binding, called directly
    (the ``nacl.bindings`` wrapper re-checks types and lengths on every call).
    """
    if len(scalar) != 32 or len(point) != 32:
        raise ValueError("X25519 takes a 32-byte scalar and a 32-byte point")
    out = _ffi.new("unsigned char[]", 32)
    if _lib.crypto_scalarmult(out, scalar, point) != 0:
        raise CryptoFailure("X25519 produced the all-zero value (low-order point)")
    result: bytes = _ffi.buffer(out, 32)[:]
    return result


def x25519_base(scalar: bytes) -> bytes:
    """X25519(k, 9): libsodium's fixed-base multiplication (precomputed tables on
    edwards25519, then the Montgomery u-coordinate), about half a variable-base one."""
    return nb.crypto_scalarmult_base(scalar)


def x25519_base_mul(e: int) -> bytes:
    """``e * G`` (u-coordinate) for a scalar ``e`` mod L, by fixed-base multiplication."""
    if e % L == 0:
        raise CryptoFailure("zero scalar")
    return nb.crypto_scalarmult_base(_clamped_representative(e % L))


def scalar_from_bytes(data: bytes) -> int:
    """A uniform scalar mod L from at least 48 bytes (little-endian, reduced)."""
    return int.from_bytes(data, "little") % L


def _clamped_representative(e: int) -> bytes:
    """The clamped integer ``k = 2^254 + 8m`` (``m < 2^251``) with ``k = +-e (mod L)``.

    ``8m = r + jL`` where ``r = (target - 2^254) mod L`` and ``j`` in 0..7 makes it a
    multiple of 8 (``L = 5 mod 8``, so ``j = -5r mod 8``): no modular inverse needed.
    """
    for target in (e, L - e):
        r = (target - _TOP) % L
        k = _TOP + r + ((-5 * r) & 7) * L
        if k < _K_LIMIT:  # 8m < 2^254: bit 254 set, bit 255 clear, low bits zero
            return k.to_bytes(32, "little")
    # Both fail with probability about 2^-125.
    raise CryptoFailure("scalar has no clamped representative")


def x25519_mul(e: int, point: bytes) -> bytes:
    """``e * point`` for a scalar ``e`` mod L and a point of the prime-order subgroup."""
    if e % L == 0:
        raise CryptoFailure("zero scalar")
    return x25519(_clamped_representative(e % L), point)


def hkdf_sha256(ikm: bytes, length: int, *, salt: bytes | None = None, info: bytes = b"") -> bytes:
    """RFC 5869 HKDF with SHA-256."""
    return HKDF(algorithm=_SHA256, length=length, salt=salt, info=info).derive(ikm)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    h = hmac.HMAC(key, _SHA256)
    h.update(data)
    return h.finalize()


def ct_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of two byte strings."""
    return constant_time.bytes_eq(a, b)


def aes128_ctr_stream(key: bytes, length: int) -> bytes:
    """``length`` bytes of AES-128-CTR keystream, initial counter block ``0^96 || 2``.

    Obtained through cryptography's one-shot AES-GCM call, whose encryption *is* CTR
    mode from counter block ``nonce || 2`` (NIST SP 800-38D, section 7.1); the tag is
    discarded. It is four times cheaper than building a ``Cipher`` per packet, and a
    test checks it against the generic CTR path. Each key is used for one stream.
    """
    return AESGCM(key).encrypt(_ZERO_NONCE, bytes(length), None)[:length]


def aes128_ctr_xor(key: bytes, data: bytes) -> bytes:
    """``data`` XOR the :func:`aes128_ctr_stream` of ``key`` (one call, no extra copy)."""
    return AESGCM(key).encrypt(_ZERO_NONCE, data, None)[: len(data)]


def aes128_ctr_reference(key: bytes, length: int) -> bytes:
    """The same keystream through the generic ``Cipher``/``CTR`` path (for tests)."""
    iv = _ZERO_NONCE + (2).to_bytes(4, "big")
    enc = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return enc.update(bytes(length)) + enc.finalize()


def chacha20_xor(key: bytes, data: bytes, nonce: bytes = bytes(12)) -> bytes:
    """RFC 8439 ChaCha20 encryption of ``data`` with initial block counter 1.

    Taken from cryptography's one-shot ChaCha20-Poly1305 call, whose ciphertext is
    exactly this (RFC 8439 section 2.8); the Poly1305 tag is discarded. A test checks
    it against RFC 8439 section 2.4.2 and the generic ``ChaCha20`` cipher.
    """
    return ChaCha20Poly1305(key).encrypt(nonce, data, None)[: len(data)]


def chacha20_stream(key: bytes, nonce: bytes, data: bytes, counter: int = 0) -> bytes:
    """RFC 8439 ChaCha20 (96-bit nonce, 32-bit block counter) XOR ``data``."""
    full = counter.to_bytes(4, "little") + nonce
    enc = Cipher(algorithms.ChaCha20(key, full), mode=None).encryptor()
    return enc.update(data) + enc.finalize()


def blake2b_keyed(key: bytes, data: bytes, size: int = 32) -> bytes:
    """RFC 7693 BLAKE2b with ``size``-byte output, keyed with ``key`` (may be empty).

    Calls libsodium through pynacl's cffi binding directly: the wrapper in
    ``nacl.bindings`` allocates salt and personalisation buffers on every call and
    costs three times as much for a 2 KiB payload.
    """
    if not 1 <= size <= 64 or len(key) > 64:
        raise ValueError("BLAKE2b output is 1..64 bytes and its key at most 64")
    out = _ffi.new("unsigned char[]", size)
    rc = _lib.crypto_generichash_blake2b_salt_personal(
        out, size, data, len(data), key or _ffi.NULL, len(key), _ffi.NULL, _ffi.NULL
    )
    if rc != 0:
        raise CryptoFailure("BLAKE2b failed")
    return bytes(_ffi.buffer(out, size))


def _xor(a: bytes, b: bytes) -> bytes:
    n = len(a)
    return (int.from_bytes(a, "little") ^ int.from_bytes(b[:n], "little")).to_bytes(n, "little")


def _h(key: bytes, data: bytes) -> int:
    """Keyed BLAKE2b-256 of ``data`` as a little-endian integer (for the XOR into L)."""
    out = _ffi.new("unsigned char[]", 32)
    if _lib.crypto_generichash_blake2b_salt_personal(
        out, 32, data, len(data), key, 32, _ffi.NULL, _ffi.NULL
    ):
        raise CryptoFailure("BLAKE2b failed")
    return int.from_bytes(_ffi.buffer(out, 32), "little")


def _s(key: int, data: bytes) -> bytes:
    """ChaCha20 (RFC 8439, zero nonce, counter 1) of ``data`` under the key ``key``."""
    return ChaCha20Poly1305(key.to_bytes(32, "little")).encrypt(_ZERO_NONCE, data, None)[
        : len(data)
    ]


def lioness_encrypt(key: bytes, block: bytes) -> bytes:
    """:meth:`Lioness.encrypt` without making an object (the per-packet hot path)."""
    if len(key) != 128 or len(block) <= 32:
        raise ValueError("LIONESS needs a 128-byte key and a block longer than 32 bytes")
    left = int.from_bytes(block[:32], "little")
    right = _s(left ^ int.from_bytes(key[:32], "little"), block[32:])
    left ^= _h(key[32:64], right)
    right = _s(left ^ int.from_bytes(key[64:96], "little"), right)
    left ^= _h(key[96:], right)
    return left.to_bytes(32, "little") + right


def lioness_encrypt_layers(keys: list[bytes], block: bytes) -> bytes:
    """``block`` encrypted under ``keys[-1]`` first, then each key back to ``keys[0]``
    (the layers of a Sphinx payload), keeping the halves apart between layers."""
    left = int.from_bytes(block[:32], "little")
    right = block[32:]
    if not right:
        raise ValueError("LIONESS block must be longer than 32 bytes")
    n = len(right)
    h = _ffi.new("unsigned char[]", 32)
    blake2b = _lib.crypto_generichash_blake2b_salt_personal
    for key in reversed(keys):  # _s and _h inlined: this runs hops x 4 times per packet
        if len(key) != 128:
            raise ValueError("LIONESS needs a 128-byte key")
        k1 = (left ^ int.from_bytes(key[:32], "little")).to_bytes(32, "little")
        right = ChaCha20Poly1305(k1).encrypt(_ZERO_NONCE, right, None)[:n]
        blake2b(h, 32, right, n, key[32:64], 32, _ffi.NULL, _ffi.NULL)
        left ^= int.from_bytes(_ffi.buffer(h, 32), "little")
        k3 = (left ^ int.from_bytes(key[64:96], "little")).to_bytes(32, "little")
        right = ChaCha20Poly1305(k3).encrypt(_ZERO_NONCE, right, None)[:n]
        blake2b(h, 32, right, n, key[96:], 32, _ffi.NULL, _ffi.NULL)
        left ^= int.from_bytes(_ffi.buffer(h, 32), "little")
    return left.to_bytes(32, "little") + right


def lioness_decrypt(key: bytes, block: bytes) -> bytes:
    """:meth:`Lioness.decrypt` without making an object (the per-packet hot path)."""
    if len(key) != 128 or len(block) <= 32:
        raise ValueError("LIONESS needs a 128-byte key and a block longer than 32 bytes")
    right = block[32:]
    left = int.from_bytes(block[:32], "little") ^ _h(key[96:], right)
    right = _s(left ^ int.from_bytes(key[64:96], "little"), right)
    left ^= _h(key[32:64], right)
    right = _s(left ^ int.from_bytes(key[:32], "little"), right)
    return left.to_bytes(32, "little") + right


class Lioness:
    """LIONESS (Anderson & Biham 1996): a wide-block cipher over the whole payload.

    Built from ChaCha20 (:func:`chacha20_xor`, zero nonce) as the stream cipher S and
    keyed BLAKE2b-256 as the hash H, on a block split as ``L`` (32 bytes) ``|| R``;
    four 32-byte round keys::

        R ^= S(L ^ K1); L ^= H_K2(R); R ^= S(L ^ K3); L ^= H_K4(R)

    Changing any bit of a ciphertext turns the whole decryption into noise, which is
    what lets the recipient catch a tagging attack. ``L`` and the stream keys are
    kept as integers between rounds: the XORs are then one operation each.
    """

    KEY_SIZE = 128
    __slots__ = ("_k1", "_k2", "_k3", "_k4")

    def __init__(self, key: bytes) -> None:
        if len(key) != self.KEY_SIZE:
            raise ValueError("LIONESS needs a 128-byte key")
        self._k1 = int.from_bytes(key[:32], "little")
        self._k2 = key[32:64]
        self._k3 = int.from_bytes(key[64:96], "little")
        self._k4 = key[96:]

    def encrypt(self, block: bytes) -> bytes:
        if len(block) <= 32:
            raise ValueError("LIONESS block must be longer than 32 bytes")
        left = int.from_bytes(block[:32], "little")
        right = _s(left ^ self._k1, block[32:])
        left ^= _h(self._k2, right)
        right = _s(left ^ self._k3, right)
        left ^= _h(self._k4, right)
        return left.to_bytes(32, "little") + right

    def decrypt(self, block: bytes) -> bytes:
        if len(block) <= 32:
            raise ValueError("LIONESS block must be longer than 32 bytes")
        right = block[32:]
        left = int.from_bytes(block[:32], "little") ^ _h(self._k4, right)
        right = _s(left ^ self._k3, right)
        left ^= _h(self._k2, right)
        right = _s(left ^ self._k1, right)
        return left.to_bytes(32, "little") + right


xor = _xor
