"""ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381), on libsodium's ed25519 core via pynacl.

Reproduces RFC 9381 Appendix B.3 exactly (the final RFC: the challenge hashes the
public key too, so ``c`` and ``s`` differ from the draft-09 vectors that still
circulate under the RFC's name; ``Gamma`` and ``beta`` are the same in both).

Points are encoded as in RFC 8032. Hash-to-curve is try-and-increment: the first
SHA-512 output whose first 32 bytes decode to a curve point (checked here: canonical
``y < p`` and ``x`` recoverable) is multiplied by the cofactor 8. libsodium's
``crypto_scalarmult_ed25519_noclamp`` refuses points outside the prime-order
subgroup, so the cofactor is cleared with three doublings through
``crypto_core_ed25519_add``, which only needs the point on the curve.

Verification refuses public keys and ``Gamma`` values outside the prime-order
subgroup (an honest prover never makes them), which is stricter than the RFC's
small-order check and never rejects a valid proof from a valid key.

:func:`vrf_delay` turns a VRF output into an exponential delay, so a sender's hop
delays can be shown to come from the configured distribution, not chosen.
"""

from __future__ import annotations

import hashlib
import math

import nacl.bindings as nb

from fogctl.mix.errors import MixProtocolError

__all__ = ["PROOF_SIZE", "VrfError", "proof_to_hash", "prove", "public_key", "verify", "vrf_delay"]

SUITE = b"\x03"
PROOF_SIZE = 80
Q = 2**252 + 27742317777372353535851937790883648493
_P = 2**255 - 19
_D = (-121665 * pow(121666, -1, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


class VrfError(MixProtocolError):
    """A VRF proof or key does not verify."""

    reason = "vrf"


def _is_curve_point(s: bytes) -> bool:
    """RFC 8032 section 5.1.3 decoding succeeds (canonical y, x recoverable)."""
    if len(s) != 32:
        return False
    y = int.from_bytes(s, "little") & ((1 << 255) - 1)
    sign = s[31] >> 7
    if y >= _P:
        return False
    x2 = (y * y - 1) * pow(_D * y * y + 1, -1, _P) % _P
    if x2 == 0:
        return sign == 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
        if (x * x - x2) % _P != 0:
            return False
    return True


def _clear_cofactor(point: bytes) -> bytes:
    p2 = nb.crypto_core_ed25519_add(point, point)
    p4 = nb.crypto_core_ed25519_add(p2, p2)
    return nb.crypto_core_ed25519_add(p4, p4)


_IDENTITY = (1).to_bytes(32, "little")


def _encode_to_curve(pk: bytes, alpha: bytes) -> bytes:
    for ctr in range(256):
        h = hashlib.sha512(SUITE + b"\x01" + pk + alpha + bytes([ctr]) + b"\x00").digest()
        candidate = h[:32]
        if _is_curve_point(candidate):
            point = _clear_cofactor(candidate)
            if point != _IDENTITY:
                return point
    raise VrfError("hash to curve failed")  # probability about 2^-256


def _secret(sk: bytes) -> tuple[int, bytes]:
    if len(sk) != 32:
        raise ValueError("an Ed25519 secret key (seed) is 32 bytes")
    h = hashlib.sha512(sk).digest()
    a = bytearray(h[:32])
    a[0] &= 248
    a[31] &= 127
    a[31] |= 64
    return int.from_bytes(a, "little"), h[32:]


def _sc(n: int) -> bytes:
    return (n % Q).to_bytes(32, "little")


def _challenge(*points: bytes) -> int:
    c = hashlib.sha512(SUITE + b"\x02" + b"".join(points) + b"\x00").digest()[:16]
    return int.from_bytes(c, "little")


def public_key(sk: bytes) -> bytes:
    """The Ed25519 public key of a 32-byte seed (same as the signing public key)."""
    x, _ = _secret(sk)
    return nb.crypto_scalarmult_ed25519_base_noclamp(_sc(x))


def prove(sk: bytes, alpha: bytes) -> bytes:
    """pi = Gamma (32) || c (16) || s (32) for input ``alpha`` (RFC 9381 section 5.1)."""
    x, prefix = _secret(sk)
    y = nb.crypto_scalarmult_ed25519_base_noclamp(_sc(x))
    h = _encode_to_curve(y, alpha)
    gamma = nb.crypto_scalarmult_ed25519_noclamp(_sc(x), h)
    k = int.from_bytes(hashlib.sha512(prefix + h).digest(), "little") % Q
    u = nb.crypto_scalarmult_ed25519_base_noclamp(_sc(k))
    v = nb.crypto_scalarmult_ed25519_noclamp(_sc(k), h)
    c = _challenge(y, h, gamma, u, v)
    s = (k + c * x) % Q
    return gamma + c.to_bytes(16, "little") + s.to_bytes(32, "little")


def proof_to_hash(pi: bytes) -> bytes:
    """beta, the 64-byte VRF output of a proof (RFC 9381 section 5.2)."""
    if len(pi) != PROOF_SIZE or not _is_curve_point(pi[:32]):
        raise VrfError("malformed VRF proof")
    gamma8 = _clear_cofactor(pi[:32])
    return hashlib.sha512(SUITE + b"\x03" + gamma8 + b"\x00").digest()


def verify(pk: bytes, alpha: bytes, pi: bytes) -> bytes:
    """beta if ``pi`` is a valid proof for ``alpha`` under ``pk``; else :class:`VrfError`."""
    if len(pi) != PROOF_SIZE or len(pk) != 32:
        raise VrfError("malformed VRF proof or key")
    gamma, c_bytes, s_bytes = pi[:32], pi[32:48], pi[48:]
    s = int.from_bytes(s_bytes, "little")
    if s >= Q or not _is_curve_point(gamma) or not _is_curve_point(pk):
        raise VrfError("malformed VRF proof or key")
    c = int.from_bytes(c_bytes, "little")
    try:
        if not nb.crypto_core_ed25519_is_valid_point(pk):
            raise VrfError("VRF public key is not in the prime-order subgroup")
        h = _encode_to_curve(pk, alpha)
        u = nb.crypto_core_ed25519_sub(
            nb.crypto_scalarmult_ed25519_base_noclamp(s_bytes),
            nb.crypto_scalarmult_ed25519_noclamp(_sc(c), pk),
        )
        v = nb.crypto_core_ed25519_sub(
            nb.crypto_scalarmult_ed25519_noclamp(s_bytes, h),
            nb.crypto_scalarmult_ed25519_noclamp(_sc(c), gamma),
        )
    except VrfError:
        raise
    except Exception:  # libsodium refused a point (torsion, identity result)
        raise VrfError("VRF proof does not verify") from None
    if _challenge(pk, h, gamma, u, v) != c:
        raise VrfError("VRF proof does not verify")
    return proof_to_hash(pi)


def beta_to_exponential(beta: bytes, mean: float) -> float:
    """An exponential draw with ``mean`` from the first 8 bytes of a VRF output."""
    u = (int.from_bytes(beta[:8], "big") + 0.5) / 2.0**64  # in (0, 1)
    return -mean * math.log(u)


def vrf_delay(sk: bytes, alpha: bytes, mean: float) -> tuple[float, bytes]:
    """(delay, proof): an exponential delay anyone holding the public key can check."""
    pi = prove(sk, alpha)
    return beta_to_exponential(proof_to_hash(pi), mean), pi
