"""BPSec (RFC 9172) default security contexts (RFC 9173): verify a Block Integrity
Block with BIB-HMAC-SHA2 and decrypt a Block Confidentiality Block's targets with
BCB-AES-GCM, given the keys. Verification only: the node does not add security blocks
(its payloads are end-to-end encrypted with the Double Ratchet), and a bundle's BPSec
blocks pass through it byte for byte.

Both contexts build their input from the security-context parameter "scope flags"
(RFC 9173 3.3 and 4.3; default 7): CBOR(scope flags), then the primary block if bit
0x1, the target block's (type, number, flags) if 0x2, the security block's if 0x4;
BIB-HMAC-SHA2 appends the target's block-type-specific data as a CBOR byte string
(its "IPPT", the MAC input); BCB-AES-GCM uses the rest as AAD.
"""

from __future__ import annotations

import hashlib
import hmac
import io
from dataclasses import dataclass
from typing import Any

import cbor2

from fogctl.mesh.bundle import Bundle, CanonicalBlock
from fogctl.mesh.errors import ProtocolError

__all__ = ["BLOCK_BCB", "BLOCK_BIB", "SecurityBlock", "decrypt_bcb", "parse_asb", "verify_bib"]

BLOCK_BIB, BLOCK_BCB = 11, 12
CTX_BIB_HMAC_SHA2, CTX_BCB_AES_GCM = 1, 2
_SHA = {5: hashlib.sha256, 6: hashlib.sha384, 7: hashlib.sha512}
_AES_KEY = {1: 16, 3: 32}  # A128GCM, A256GCM


@dataclass(frozen=True, slots=True)
class SecurityBlock:
    """An Abstract Security Block (RFC 9172 3.6)."""

    block: CanonicalBlock
    targets: list[int]
    context_id: int
    flags: int
    source: Any
    parameters: dict[int, Any]
    results: list[list[tuple[int, Any]]]


def _bad(msg: str) -> ProtocolError:
    return ProtocolError(f"BPSec: {msg}", reason="bpsec")


def parse_asb(block: CanonicalBlock) -> SecurityBlock:
    """Decode a BIB's or BCB's block data (a CBOR sequence)."""
    data = block.data
    items: list[Any] = []
    try:
        dec = cbor2.CBORDecoder(io.BytesIO(data))
        while dec.fp.tell() < len(data):
            items.append(dec.decode())
    except Exception:
        raise _bad("malformed abstract security block") from None
    if len(items) not in (5, 6):
        raise _bad("abstract security block needs 5 or 6 items")
    targets, ctx, flags, source = items[:4]
    params = items[4] if len(items) == 6 else []
    results = items[-1]
    try:
        if not (isinstance(targets, list) and all(isinstance(t, int) for t in targets)):
            raise ValueError
        pdict = {int(k): v for k, v in params}
        res = [[(int(i), v) for i, v in r] for r in results]
    except (TypeError, ValueError):
        raise _bad("malformed targets, parameters or results") from None
    if len(res) != len(targets):
        raise _bad("one result set per target required")
    return SecurityBlock(block, targets, int(ctx), int(flags), source, pdict, res)


def _header(blk: CanonicalBlock) -> bytes:
    return cbor2.dumps(blk.type) + cbor2.dumps(blk.number) + cbor2.dumps(blk.flags)


def _scope(b: Bundle, scope: int, target: CanonicalBlock | None, sec: CanonicalBlock) -> bytes:
    out = cbor2.dumps(scope)
    if scope & 1:
        out += cbor2.dumps(b.primary.to_cbor())
    if scope & 2 and target is not None:  # the primary block has no block header
        out += _header(target)
    if scope & 4:
        out += _header(sec)
    return out


def _target(b: Bundle, number: int) -> CanonicalBlock | None:
    """The target block; ``None`` for block 0, the primary block."""
    if number == 0:
        return None
    for blk in b.blocks:
        if blk.number == number:
            return blk
    raise _bad(f"target block {number} is not in the bundle")


def verify_bib(b: Bundle, bib: CanonicalBlock, key: bytes) -> list[int]:
    """Check every target MAC of a BIB-HMAC-SHA2 block (constant-time compare);
    returns the verified target block numbers, raises on any mismatch."""
    asb = parse_asb(bib)
    if asb.context_id != CTX_BIB_HMAC_SHA2:
        raise _bad(f"security context {asb.context_id} is not BIB-HMAC-SHA2")
    sha = _SHA.get(asb.parameters.get(1, 6))
    if sha is None:
        raise _bad("unknown SHA variant")
    scope = int(asb.parameters.get(3, 7))
    for number, result in zip(asb.targets, asb.results, strict=True):
        target = _target(b, number)
        data = target.data if target else cbor2.dumps(b.primary.to_cbor())
        ippt = _scope(b, scope, target, bib) + cbor2.dumps(data)
        mac = dict(result).get(1)
        if not isinstance(mac, bytes) or not hmac.compare_digest(
            hmac.new(key, ippt, sha).digest(), mac
        ):
            raise _bad(f"integrity check of block {number} failed")
    return list(asb.targets)


def decrypt_bcb(b: Bundle, bcb: CanonicalBlock, key: bytes) -> dict[int, bytes]:
    """Decrypt every target of a BCB-AES-GCM block: ``key`` is the key-encryption key
    when the block carries a wrapped key (RFC 3394 AES key wrap), else the content
    key. Returns {target block number: plaintext}; raises if any tag fails."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

    asb = parse_asb(bcb)
    if asb.context_id != CTX_BCB_AES_GCM:
        raise _bad(f"security context {asb.context_id} is not BCB-AES-GCM")
    iv = asb.parameters.get(1)
    size = _AES_KEY.get(asb.parameters.get(2, 3))
    if not isinstance(iv, bytes) or size is None:
        raise _bad("missing IV or unknown AES variant")
    cek = key
    wrapped = asb.parameters.get(3)
    if wrapped is not None:
        try:
            cek = aes_key_unwrap(key, wrapped)
        except (InvalidUnwrap, ValueError, TypeError):
            raise _bad("the wrapped key does not unwrap with this key") from None
    if len(cek) != size:
        raise _bad(f"content key is {len(cek)} bytes, the AES variant needs {size}")
    scope = int(asb.parameters.get(4, 7))
    out: dict[int, bytes] = {}
    for number, result in zip(asb.targets, asb.results, strict=True):
        target = _target(b, number)
        if target is None:
            raise _bad("the primary block cannot be encrypted")
        tag = dict(result).get(1)
        if not isinstance(tag, bytes):
            raise _bad(f"no authentication tag for block {number}")
        try:
            out[number] = AESGCM(cek).decrypt(iv, target.data + tag, _scope(b, scope, target, bcb))
        except InvalidTag:
            raise _bad(f"block {number} fails authentication") from None
    return out
