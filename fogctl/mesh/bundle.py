"""BPv7 bundles (RFC 9171) in CBOR: encode, decode, validate, fragment, reassemble.

Sans-IO: bytes in, :class:`Bundle` out (or :class:`ProtocolError`), and back.

Wire rules implemented here (RFC 9171 section 4):

* A bundle is an indefinite-length CBOR array (``0x9f`` ... ``0xff``): the primary
  block, then canonical blocks; the payload block (type 1, number 1) comes last.
* Primary block: ``[7, flags, crc_type, dest, source, report_to, [time, seq],
  lifetime, (fragment_offset, total_adu_length)?, crc?]``.
* Canonical block: ``[type, number, flags, crc_type, data, crc?]``; ``data`` is a byte
  string holding the block-type-specific data (itself CBOR for extension blocks).
* CRC type 0 none, 1 CRC-16/X-25, 2 CRC-32C; the CRC is a byte string (2 or 4 bytes,
  big-endian) computed over the whole encoded block with the CRC *value bytes* set to
  zero while the byte-string head (``0x42``/``0x44``) stays -- RFC 9171 erratum 8043.
  The CRC is the last item, so its value is always the block's last 2/4 bytes.
* EIDs: ``[1, "//node/demux"]`` (dtn), ``[1, 0]`` (dtn:none), ``[2, [node, service]]``
  (ipn).
* Extension blocks: previous node (6, an EID), bundle age (7, ms), hop count (10,
  ``[limit, count]``).

Decoding is strict: anything else raises :class:`ProtocolError` with a ``reason``
slug, so a node can drop and count it (never crash).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from dataclasses import dataclass, field
from typing import Any

import cbor2

from fogctl.mesh.crc import crc16_x25, crc32c
from fogctl.mesh.errors import ProtocolError

__all__ = [
    "BLOCK_BUNDLE_AGE",
    "BLOCK_HOP_COUNT",
    "BLOCK_PAYLOAD",
    "BLOCK_PREVIOUS_NODE",
    "BLOCK_REPLICATE",
    "BUNDLE_ADMIN_RECORD",
    "BUNDLE_IS_FRAGMENT",
    "BUNDLE_MUST_NOT_FRAGMENT",
    "CRC_16",
    "CRC_32C",
    "CRC_NONE",
    "DEFAULT_HOP_LIMIT",
    "DTN_EPOCH_UNIX",
    "DTN_NONE",
    "EID",
    "Bundle",
    "CanonicalBlock",
    "PrimaryBlock",
    "Reassembler",
    "StatusReport",
    "decode_bundle",
    "encode_bundle",
    "fragment",
    "make_status_report",
    "new_bundle",
    "parse_status_report",
]

DTN_EPOCH_UNIX = 946684800  # 2000-01-01T00:00:00Z in Unix seconds
DEFAULT_HOP_LIMIT = 7
MAX_BUNDLE_SIZE = 64 * 1024 * 1024

# bundle processing control flags (RFC 9171 4.2.3)
BUNDLE_IS_FRAGMENT = 0x000001
BUNDLE_ADMIN_RECORD = 0x000002
BUNDLE_MUST_NOT_FRAGMENT = 0x000004
BUNDLE_ACK_REQUESTED = 0x000020
BUNDLE_STATUS_TIME = 0x000040
REPORT_RECEPTION = 0x004000
REPORT_FORWARDING = 0x010000
REPORT_DELIVERY = 0x020000
REPORT_DELETION = 0x040000

# block processing control flags (RFC 9171 4.2.4)
BLOCK_REPLICATE = 0x01
BLOCK_REPORT_UNPROCESSED = 0x02
BLOCK_DELETE_UNPROCESSED = 0x04
BLOCK_DISCARD_UNPROCESSED = 0x10

# block type codes
BLOCK_PAYLOAD = 1
BLOCK_PREVIOUS_NODE = 6
BLOCK_BUNDLE_AGE = 7
BLOCK_HOP_COUNT = 10

CRC_NONE, CRC_16, CRC_32C = 0, 1, 2
_CRC_LEN = {CRC_NONE: 0, CRC_16: 2, CRC_32C: 4}

_BREAK = 0xFF
_INDEF_ARRAY = 0x9F


def _is_uint(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**64


# -- endpoint IDs ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EID:
    """An endpoint ID: ``dtn://node/demux``, ``dtn:none`` or ``ipn:node.service``."""

    scheme: int
    ssp: str | int | tuple[int, int]

    @classmethod
    def parse(cls, text: str) -> EID:
        if text == "dtn:none":
            return DTN_NONE
        if text.startswith("dtn://"):
            rest = text[6:]
            node = rest.split("/", 1)[0]
            if not node or not all(c.isalnum() or c in "-._~" for c in node):
                raise ProtocolError(f"bad dtn EID {text!r}: node name", reason="eid")
            if "/" not in rest:
                rest += "/"
            return cls(1, "//" + rest)
        if text.startswith("ipn:"):
            parts = text[4:].split(".")
            if len(parts) != 2 or not all(p.isdigit() for p in parts):
                raise ProtocolError(f"bad ipn EID {text!r}", reason="eid")
            return cls(2, (int(parts[0]), int(parts[1])))
        raise ProtocolError(f"bad EID {text!r}: expected dtn://NODE/... or ipn:N.S", reason="eid")

    def __str__(self) -> str:
        if self.scheme == 1:
            return "dtn:none" if self.ssp == 0 else f"dtn:{self.ssp}"
        assert isinstance(self.ssp, tuple)
        return f"ipn:{self.ssp[0]}.{self.ssp[1]}"

    @property
    def node(self) -> EID:
        """The node ID part (``dtn://node/`` or ``ipn:N.0``)."""
        if self.scheme == 1:
            if self.ssp == 0:
                return self
            assert isinstance(self.ssp, str)
            return EID(1, "//" + self.ssp[2:].split("/", 1)[0] + "/")
        assert isinstance(self.ssp, tuple)
        return EID(2, (self.ssp[0], 0))

    def to_cbor(self) -> list[Any]:
        return [self.scheme, list(self.ssp) if isinstance(self.ssp, tuple) else self.ssp]

    @classmethod
    def from_cbor(cls, obj: Any) -> EID:
        if not isinstance(obj, list) or len(obj) != 2:
            raise ProtocolError("EID is not a 2-item array", reason="eid")
        scheme, ssp = obj
        if scheme == 1 and not isinstance(scheme, bool):
            if ssp == 0 and not isinstance(ssp, bool):
                return DTN_NONE
            if isinstance(ssp, str) and ssp.startswith("//") and len(ssp) > 2:
                return cls(1, ssp)
            raise ProtocolError("dtn EID SSP must be 0 or //node/...", reason="eid")
        if scheme == 2 and not isinstance(scheme, bool):
            if isinstance(ssp, list) and len(ssp) == 2 and _is_uint(ssp[0]) and _is_uint(ssp[1]):
                return cls(2, (ssp[0], ssp[1]))
            raise ProtocolError("ipn EID SSP must be [node, service]", reason="eid")
        raise ProtocolError(f"unknown EID scheme {scheme!r}", reason="eid")


DTN_NONE = EID(1, 0)


# -- blocks ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrimaryBlock:
    destination: EID
    source: EID
    report_to: EID = DTN_NONE
    creation_time: int = 0  # DTN time, ms since 2000-01-01 (0 = no accurate clock)
    sequence: int = 0
    lifetime: int = 3_600_000  # ms
    flags: int = 0
    crc_type: int = CRC_32C
    fragment_offset: int | None = None
    total_adu_length: int | None = None

    @property
    def is_fragment(self) -> bool:
        return bool(self.flags & BUNDLE_IS_FRAGMENT)

    @property
    def is_admin(self) -> bool:
        return bool(self.flags & BUNDLE_ADMIN_RECORD)

    def to_cbor(self) -> list[Any]:
        out: list[Any] = [
            7,
            self.flags,
            self.crc_type,
            self.destination.to_cbor(),
            self.source.to_cbor(),
            self.report_to.to_cbor(),
            [self.creation_time, self.sequence],
            self.lifetime,
        ]
        if self.is_fragment:
            out += [self.fragment_offset or 0, self.total_adu_length or 0]
        return out


@dataclass(frozen=True, slots=True)
class CanonicalBlock:
    type: int
    number: int
    data: bytes
    flags: int = 0
    crc_type: int = CRC_NONE

    def to_cbor(self) -> list[Any]:
        return [self.type, self.number, self.flags, self.crc_type, self.data]


def _encode_block(items: list[Any], crc_type: int) -> bytes:
    n = _CRC_LEN.get(crc_type)
    if n is None:
        raise ProtocolError(f"unknown CRC type {crc_type}", reason="crc")
    if n == 0:
        return cbor2.dumps(items)
    raw = bytearray(cbor2.dumps([*items, bytes(n)]))
    value = crc16_x25(bytes(raw)) if crc_type == CRC_16 else crc32c(bytes(raw))
    raw[-n:] = value.to_bytes(n, "big")
    return bytes(raw)


def _check_crc(raw: bytes, items: list[Any], crc_type: int, what: str) -> None:
    n = _CRC_LEN[crc_type]
    if n == 0:
        return
    got = items[-1]
    if not isinstance(got, bytes) or len(got) != n or raw[-n:] != got:
        raise ProtocolError(f"{what}: CRC field is not a {n}-byte string", reason="crc")
    zeroed = raw[:-n] + bytes(n)
    value = crc16_x25(zeroed) if crc_type == CRC_16 else crc32c(zeroed)
    if value.to_bytes(n, "big") != got:
        raise ProtocolError(f"{what}: CRC mismatch", reason="crc")


# -- bundles -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bundle:
    """A decoded bundle: primary block plus canonical blocks (payload last)."""

    primary: PrimaryBlock
    blocks: tuple[CanonicalBlock, ...] = field(default_factory=tuple)

    # identity ------------------------------------------------------------------
    @property
    def key(self) -> tuple[str, int, int, int, int]:
        """(source, creation time, sequence, fragment offset, payload length if fragment)."""
        p = self.primary
        if p.is_fragment:
            return (
                str(p.source),
                p.creation_time,
                p.sequence,
                p.fragment_offset or 0,
                len(self.payload),
            )
        return (str(p.source), p.creation_time, p.sequence, -1, -1)

    @property
    def id(self) -> str:
        """A short stable bundle ID (hex) derived from :attr:`key`."""
        return hashlib.sha256(repr(self.key).encode()).hexdigest()[:16]

    @property
    def adu_id(self) -> tuple[str, int, int]:
        p = self.primary
        return (str(p.source), p.creation_time, p.sequence)

    # blocks -------------------------------------------------------------------
    def block(self, type_code: int) -> CanonicalBlock | None:
        for b in self.blocks:
            if b.type == type_code:
                return b
        return None

    @property
    def payload(self) -> bytes:
        b = self.block(BLOCK_PAYLOAD)
        return b.data if b is not None else b""

    @property
    def hop_count(self) -> tuple[int, int] | None:
        """(limit, count) from the hop-count block, if any."""
        b = self.block(BLOCK_HOP_COUNT)
        if b is None:
            return None
        obj = _loads(b.data, "hop-count block")
        if not (isinstance(obj, list) and len(obj) == 2 and _is_uint(obj[0]) and _is_uint(obj[1])):
            raise ProtocolError("hop-count block is not [limit, count]", reason="block")
        if obj[0] > 255:
            raise ProtocolError("hop limit above 255", reason="block")
        return obj[0], obj[1]

    @property
    def age(self) -> int | None:
        b = self.block(BLOCK_BUNDLE_AGE)
        if b is None:
            return None
        obj = _loads(b.data, "bundle-age block")
        if not _is_uint(obj):
            raise ProtocolError("bundle-age block is not an unsigned integer", reason="block")
        return int(obj)

    @property
    def previous_node(self) -> EID | None:
        b = self.block(BLOCK_PREVIOUS_NODE)
        return None if b is None else EID.from_cbor(_loads(b.data, "previous-node block"))

    def expires_at(self, received_at: int) -> int:
        """DTN time (ms) when this bundle expires; ``received_at`` is used with the age
        block when the source had no clock."""
        p = self.primary
        if p.creation_time:
            return p.creation_time + p.lifetime
        return received_at - (self.age or 0) + p.lifetime

    def is_expired(self, now: int, received_at: int | None = None) -> bool:
        return now >= self.expires_at(now if received_at is None else received_at)

    def replace_block(self, blk: CanonicalBlock) -> Bundle:
        """Insert or replace the block of ``blk.type`` (keeps the payload last)."""
        others = [b for b in self.blocks if b.type != blk.type]
        if blk.type == BLOCK_PAYLOAD:
            others.append(blk)
        else:
            others.insert(max(0, len(others) - 1), blk)
        return dataclasses.replace(self, blocks=tuple(others))

    def _next_number(self) -> int:
        existing = self.block_numbers()
        return max(existing | {1}) + 1

    def block_numbers(self) -> set[int]:
        return {b.number for b in self.blocks}

    def _ext(self, type_code: int, value: Any) -> Bundle:
        old = self.block(type_code)
        number = old.number if old is not None else self._next_number()
        crc = old.crc_type if old is not None else CRC_NONE
        return self.replace_block(CanonicalBlock(type_code, number, cbor2.dumps(value), 0, crc))

    def with_hop(self) -> Bundle:
        """The bundle as forwarded one more hop (hop count + 1)."""
        hc = self.hop_count
        if hc is None:
            return self
        return self._ext(BLOCK_HOP_COUNT, [hc[0], hc[1] + 1])

    def with_previous_node(self, node: EID) -> Bundle:
        return self._ext(BLOCK_PREVIOUS_NODE, node.to_cbor())

    def with_age(self, age_ms: int) -> Bundle:
        return self._ext(BLOCK_BUNDLE_AGE, max(0, int(age_ms)))

    def hop_limit_exceeded(self) -> bool:
        hc = self.hop_count
        return hc is not None and hc[1] > hc[0]

    def to_bytes(self) -> bytes:
        return encode_bundle(self)


def new_bundle(
    source: EID | str,
    destination: EID | str,
    payload: bytes,
    *,
    now: int,
    sequence: int = 0,
    lifetime_ms: int = 3_600_000,
    hop_limit: int = DEFAULT_HOP_LIMIT,
    flags: int = 0,
    report_to: EID | str | None = None,
    crc_type: int = CRC_32C,
    with_age: bool = True,
) -> Bundle:
    """Build a bundle with a hop-count block (limit ``hop_limit``) and a bundle-age block.

    ``now`` is DTN time in ms (0 means "no accurate clock"; the age block then carries
    the bundle's age, as RFC 9171 requires).
    """
    src = EID.parse(source) if isinstance(source, str) else source
    dst = EID.parse(destination) if isinstance(destination, str) else destination
    rpt = report_to if report_to is not None else src
    rpt = EID.parse(rpt) if isinstance(rpt, str) else rpt
    if not 0 < hop_limit <= 255:
        raise ProtocolError("hop limit must be 1..255", reason="block")
    primary = PrimaryBlock(dst, src, rpt, now, sequence, lifetime_ms, flags, crc_type)
    blocks = [CanonicalBlock(BLOCK_HOP_COUNT, 2, cbor2.dumps([hop_limit, 0]))]
    if with_age:
        blocks.append(CanonicalBlock(BLOCK_BUNDLE_AGE, 3, cbor2.dumps(0)))
    blocks.append(CanonicalBlock(BLOCK_PAYLOAD, 1, bytes(payload)))
    return Bundle(primary, tuple(blocks))


# -- encoding ----------------------------------------------------------------------


def encode_bundle(bundle: Bundle) -> bytes:
    """The bundle's wire form (CRCs computed here)."""
    p = bundle.primary
    parts = [bytes([_INDEF_ARRAY]), _encode_block(p.to_cbor(), p.crc_type)]
    for b in bundle.blocks:
        parts.append(_encode_block(b.to_cbor(), b.crc_type))
    parts.append(bytes([_BREAK]))
    return b"".join(parts)


def _loads(data: bytes, what: str) -> Any:
    try:
        return cbor2.loads(data)
    except Exception as exc:  # cbor2 raises many types on garbage
        raise ProtocolError(
            f"{what}: malformed CBOR ({type(exc).__name__})", reason="cbor"
        ) from None


def _decode_primary(raw: bytes, obj: Any) -> PrimaryBlock:
    if not isinstance(obj, list) or not 8 <= len(obj) <= 11:
        raise ProtocolError("primary block is not an 8..11-item array", reason="primary")
    if obj[0] != 7 or isinstance(obj[0], bool):
        raise ProtocolError(f"unsupported bundle protocol version {obj[0]!r}", reason="version")
    flags, crc_type = obj[1], obj[2]
    if not _is_uint(flags) or not _is_uint(crc_type) or crc_type not in _CRC_LEN:
        raise ProtocolError("primary block flags or CRC type invalid", reason="primary")
    is_frag = bool(flags & BUNDLE_IS_FRAGMENT)
    want = 8 + (2 if is_frag else 0) + (1 if crc_type else 0)
    if len(obj) != want:
        raise ProtocolError(
            f"primary block has {len(obj)} items, expected {want}", reason="primary"
        )
    _check_crc(raw, obj, crc_type, "primary block")
    dest, src, rpt = (EID.from_cbor(x) for x in obj[3:6])
    ts = obj[6]
    if not (isinstance(ts, list) and len(ts) == 2 and _is_uint(ts[0]) and _is_uint(ts[1])):
        raise ProtocolError("creation timestamp is not [time, seq]", reason="primary")
    if not _is_uint(obj[7]):
        raise ProtocolError("lifetime is not an unsigned integer", reason="primary")
    off = total = None
    if is_frag:
        off, total = obj[8], obj[9]
        if not (_is_uint(off) and _is_uint(total)):
            raise ProtocolError("fragment offset/length invalid", reason="fragment")
    return PrimaryBlock(dest, src, rpt, ts[0], ts[1], obj[7], flags, crc_type, off, total)


def _decode_canonical(raw: bytes, obj: Any) -> CanonicalBlock:
    if not isinstance(obj, list) or len(obj) not in (5, 6):
        raise ProtocolError("canonical block is not a 5- or 6-item array", reason="block")
    btype, number, flags, crc_type, data = obj[:5]
    if not (_is_uint(btype) and _is_uint(number) and _is_uint(flags)):
        raise ProtocolError("block type/number/flags invalid", reason="block")
    if not _is_uint(crc_type) or crc_type not in _CRC_LEN:
        raise ProtocolError(f"unknown CRC type {crc_type!r}", reason="crc")
    if len(obj) != (6 if crc_type else 5):
        raise ProtocolError("block CRC field does not match its CRC type", reason="crc")
    if not isinstance(data, bytes):
        raise ProtocolError("block-type-specific data is not a byte string", reason="block")
    _check_crc(raw, obj, crc_type, f"block {number}")
    if number == 0:
        raise ProtocolError("canonical block number 0", reason="block")
    if (btype == BLOCK_PAYLOAD) != (number == 1):
        raise ProtocolError("payload block must be block number 1", reason="block")
    return CanonicalBlock(btype, number, data, flags, crc_type)


def decode_bundle(data: bytes, *, max_size: int = MAX_BUNDLE_SIZE) -> Bundle:
    """Decode and validate one bundle; raises :class:`ProtocolError` on anything invalid."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError("bundle must be bytes", reason="cbor")
    data = bytes(data)
    if len(data) > max_size:
        raise ProtocolError(f"bundle of {len(data)} bytes exceeds {max_size}", reason="length")
    if len(data) < 3 or data[0] != _INDEF_ARRAY:
        raise ProtocolError(
            "not a BPv7 bundle (expected an indefinite-length array)", reason="cbor"
        )
    fp = io.BytesIO(data)
    fp.seek(1)
    dec = cbor2.CBORDecoder(fp)
    raws: list[tuple[bytes, Any]] = []
    while True:
        pos = fp.tell()
        if pos >= len(data):
            raise ProtocolError("bundle truncated (no break byte)", reason="cbor")
        if data[pos] == _BREAK:
            if pos + 1 != len(data):
                raise ProtocolError(
                    f"{len(data) - pos - 1} trailing bytes after bundle", reason="cbor"
                )
            break
        if data[pos] >> 5 != 4 or (data[pos] & 0x1F) == 31:
            raise ProtocolError("block is not a definite-length array", reason="cbor")
        try:
            obj = dec.decode()
        except Exception as exc:
            raise ProtocolError(
                f"malformed CBOR in block {len(raws)} ({type(exc).__name__})", reason="cbor"
            ) from None
        raws.append((data[pos : fp.tell()], obj))
        if len(raws) > 4096:
            raise ProtocolError("too many blocks", reason="length")
    if len(raws) < 2:
        raise ProtocolError("bundle has no payload block", reason="block")
    primary = _decode_primary(*raws[0])
    blocks = tuple(_decode_canonical(r, o) for r, o in raws[1:])
    numbers = [b.number for b in blocks]
    if len(set(numbers)) != len(numbers):
        raise ProtocolError("duplicate block numbers", reason="block")
    if blocks[-1].type != BLOCK_PAYLOAD or sum(b.type == BLOCK_PAYLOAD for b in blocks) != 1:
        raise ProtocolError("exactly one payload block, last, is required", reason="block")
    for t in (BLOCK_HOP_COUNT, BLOCK_BUNDLE_AGE, BLOCK_PREVIOUS_NODE):
        if sum(b.type == t for b in blocks) > 1:
            raise ProtocolError(f"more than one block of type {t}", reason="block")
    bundle = Bundle(primary, blocks)
    # validate the extension blocks we understand
    bundle.hop_count  # noqa: B018
    bundle.age  # noqa: B018
    bundle.previous_node  # noqa: B018
    if primary.is_fragment:
        total, off = primary.total_adu_length or 0, primary.fragment_offset or 0
        if off + len(bundle.payload) > total:
            raise ProtocolError("fragment extends past the total ADU length", reason="fragment")
    # RFC 9171 4.3.2 wants a bundle-age block when creation time is 0, but RFC 9173's
    # own examples omit it: accept, and age such bundles from their reception time.
    return bundle


# -- fragmentation -----------------------------------------------------------------


def fragment(bundle: Bundle, max_payload: int) -> list[Bundle]:
    """Split ``bundle`` into fragments whose payloads are at most ``max_payload`` bytes.

    The first fragment keeps every extension block; later ones keep only blocks flagged
    "replicate in every fragment" (RFC 9171 5.8). A bundle that fits is returned alone.
    """
    if max_payload < 1:
        raise ProtocolError("fragment size must be at least 1 byte", reason="fragment")
    payload = bundle.payload
    if len(payload) <= max_payload:
        return [bundle]
    p = bundle.primary
    if p.flags & BUNDLE_MUST_NOT_FRAGMENT:
        raise ProtocolError("bundle is flagged must-not-fragment", reason="fragment")
    base = p.fragment_offset or 0 if p.is_fragment else 0
    total = p.total_adu_length if p.is_fragment and p.total_adu_length else len(payload)
    pay = bundle.block(BLOCK_PAYLOAD)
    assert pay is not None
    out = []
    for i, start in enumerate(range(0, len(payload), max_payload)):
        chunk = payload[start : start + max_payload]
        prim = dataclasses.replace(
            p,
            flags=p.flags | BUNDLE_IS_FRAGMENT,
            fragment_offset=base + start,
            total_adu_length=total,
        )
        keep = [
            b
            for b in bundle.blocks
            if b.type != BLOCK_PAYLOAD and (i == 0 or b.flags & BLOCK_REPLICATE)
        ]
        keep.append(dataclasses.replace(pay, data=chunk))
        out.append(Bundle(prim, tuple(keep)))
    return out


class Reassembler:
    """Collects fragments per ADU and yields the whole bundle when complete.

    Overlapping fragments are accepted only where their bytes agree (re-fragmentation
    on another path may overlap); conflicting bytes, inconsistent total lengths and
    totals above ``max_adu`` raise :class:`ProtocolError`.
    """

    def __init__(self, max_adu: int = MAX_BUNDLE_SIZE, max_pending: int = 1024) -> None:
        self.max_adu = max_adu
        self.max_pending = max_pending
        self._parts: dict[tuple[str, int, int], dict[int, Bundle]] = {}

    @property
    def pending(self) -> int:
        return len(self._parts)

    def add(self, frag: Bundle) -> Bundle | None:
        p = frag.primary
        if not p.is_fragment:
            return frag
        total = p.total_adu_length or 0
        if total > self.max_adu:
            raise ProtocolError(
                f"ADU length {total} above the limit {self.max_adu}", reason="length"
            )
        off = p.fragment_offset or 0
        data = frag.payload
        if off + len(data) > total:
            raise ProtocolError("fragment extends past the total ADU length", reason="fragment")
        key = frag.adu_id
        parts = self._parts.get(key)
        if parts is None:
            if len(self._parts) >= self.max_pending:
                raise ProtocolError("too many partial bundles", reason="length")
            parts = self._parts[key] = {}
        for other in parts.values():
            if other.primary.total_adu_length != total:
                raise ProtocolError("fragments disagree on the total ADU length", reason="overlap")
            o_off = other.primary.fragment_offset or 0
            o_data = other.payload
            lo, hi = max(off, o_off), min(off + len(data), o_off + len(o_data))
            if lo < hi and data[lo - off : hi - off] != o_data[lo - o_off : hi - o_off]:
                raise ProtocolError(
                    "overlapping fragments with conflicting bytes", reason="overlap"
                )
        if off in parts and len(parts[off].payload) >= len(data):
            return None  # duplicate (or covered) fragment
        parts[off] = frag
        # coverage check
        covered = 0
        for o in sorted(parts):
            seg = parts[o]
            if o > covered:
                return None
            covered = max(covered, o + len(seg.payload))
        if covered < total:
            return None
        buf = bytearray(total)
        for o, seg in parts.items():
            buf[o : o + len(seg.payload)] = seg.payload
        first = parts[min(parts)]
        del self._parts[key]
        prim = dataclasses.replace(
            first.primary,
            flags=first.primary.flags & ~BUNDLE_IS_FRAGMENT,
            fragment_offset=None,
            total_adu_length=None,
        )
        pay = first.block(BLOCK_PAYLOAD)
        assert pay is not None
        blocks = [b for b in first.blocks if b.type != BLOCK_PAYLOAD]
        blocks.append(dataclasses.replace(pay, data=bytes(buf)))
        return Bundle(prim, tuple(blocks))


# -- status reports (RFC 9171 6.1.1) -------------------------------------------------

STATUS_KINDS = ("received", "forwarded", "delivered", "deleted")
REASONS = {
    0: "no-info",
    1: "lifetime-expired",
    2: "unidirectional-link",
    3: "transmission-canceled",
    4: "depleted-storage",
    5: "destination-unavailable",
    6: "no-route",
    7: "no-timely-contact",
    8: "block-unintelligible",
    9: "hop-limit-exceeded",
    10: "traffic-pared",
    11: "block-unsupported",
}


@dataclass(frozen=True, slots=True)
class StatusReport:
    status: tuple[str, ...]  # which of STATUS_KINDS are asserted
    reason: int
    subject_source: EID
    subject_time: int
    subject_sequence: int
    times: tuple[int, ...] = ()
    fragment_offset: int | None = None
    fragment_length: int | None = None


def make_status_report(
    subject: Bundle, status: str, *, source: EID, now: int, reason: int = 0
) -> Bundle:
    """An administrative-record bundle reporting ``status`` about ``subject`` to its
    report-to endpoint."""
    if status not in STATUS_KINDS:
        raise ValueError(status)
    sp = subject.primary
    with_time = bool(sp.flags & BUNDLE_STATUS_TIME)
    info = [
        ([True, now] if with_time else [True]) if k == status else [False] for k in STATUS_KINDS
    ]
    rep: list[Any] = [info, reason, sp.source.to_cbor(), [sp.creation_time, sp.sequence]]
    if sp.is_fragment:
        rep += [sp.fragment_offset or 0, len(subject.payload)]
    payload = cbor2.dumps([1, rep])
    return new_bundle(
        source, sp.report_to, payload, now=now, flags=BUNDLE_ADMIN_RECORD, lifetime_ms=sp.lifetime
    )


def parse_status_report(bundle: Bundle) -> StatusReport:
    if not bundle.primary.is_admin:
        raise ProtocolError("not an administrative record", reason="admin")
    obj = _loads(bundle.payload, "administrative record")
    try:
        rtype, rep = obj
        if rtype != 1:
            raise ProtocolError(f"unknown administrative record type {rtype!r}", reason="admin")
        info, reason, src, ts = rep[:4]
        flags = tuple(STATUS_KINDS[i] for i, item in enumerate(info[:4]) if item[0] is True)
        times = tuple(item[1] for item in info[:4] if len(item) > 1 and _is_uint(item[1]))
        if not (_is_uint(reason) and _is_uint(ts[0]) and _is_uint(ts[1])):
            raise ProtocolError("status report fields invalid", reason="admin")
        off = ln = None
        if len(rep) == 6:
            off, ln = rep[4], rep[5]
        return StatusReport(flags, reason, EID.from_cbor(src), ts[0], ts[1], times, off, ln)
    except ProtocolError:
        raise
    except (TypeError, ValueError, IndexError, KeyError):
        raise ProtocolError("status report is malformed", reason="admin") from None
