"""BPv7 codec: RFC 9173 Appendix A vectors, CRCs (erratum 8043), blocks, fragments, fuzz."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fogctl.mesh.bpsec import BLOCK_BCB, BLOCK_BIB, decrypt_bcb, parse_asb, verify_bib
from fogctl.mesh.bundle import (
    BLOCK_REPLICATE,
    BUNDLE_MUST_NOT_FRAGMENT,
    CRC_16,
    CRC_32C,
    CRC_NONE,
    EID,
    CanonicalBlock,
    Reassembler,
    decode_bundle,
    encode_bundle,
    fragment,
    make_status_report,
    new_bundle,
    parse_status_report,
)
from fogctl.mesh.crc import crc16_x25, crc16_x25_python, crc32c, crc32c_python
from fogctl.mesh.errors import DropCounter, ProtocolError

VECTORS = Path(__file__).parent / "vectors"
PAYLOAD = b"Ready to generate a 32-byte payload"
KEY = bytes.fromhex("1a2b1a2b1a2b1a2b1a2b1a2b1a2b1a2b")  # RFC 9173 HMAC key
KEK = bytes.fromhex("6162636465666768696a6b6c6d6e6f70")  # RFC 9173 A.2 key-encryption key
CEK = bytes.fromhex("71776572747975696f70617364666768")  # RFC 9173 A.2 content key


def vector(name: str) -> bytes:
    return bytes.fromhex((VECTORS / f"{name}.hex").read_text().strip())


@pytest.mark.parametrize("name", sorted(p.stem for p in VECTORS.glob("rfc9173-*.hex")))
def test_rfc9173_vectors_roundtrip_byte_for_byte(name: str) -> None:
    raw = vector(name)
    b = decode_bundle(raw)
    assert encode_bundle(b) == raw
    assert str(b.primary.destination) == "ipn:1.2"
    assert str(b.primary.source) == "ipn:2.1"
    assert (b.primary.creation_time, b.primary.sequence, b.primary.lifetime) == (0, 40, 1000000)


def test_rfc9173_a1_bib_hmac_sha2_verifies() -> None:
    b = decode_bundle(vector("rfc9173-a1-final"))
    assert b.payload == PAYLOAD
    (bib,) = [x for x in b.blocks if x.type == BLOCK_BIB]
    assert verify_bib(b, bib, KEY) == [1]
    # independent check of the MAC input: scope 0 -> CBOR(0) || bstr(payload)
    asb = cbor2.loads(b"\x86" + bib.data)
    ippt = cbor2.dumps(0) + cbor2.dumps(b.payload)
    assert hmac.compare_digest(hmac.new(KEY, ippt, hashlib.sha512).digest(), asb[5][0][0][1])
    with pytest.raises(ProtocolError, match="integrity"):
        verify_bib(b, bib, b"\x00" * 16)
    tampered = b.replace_block(CanonicalBlock(1, 1, PAYLOAD[:-1] + b"!"))
    with pytest.raises(ProtocolError, match="integrity"):
        verify_bib(tampered, bib, KEY)


def test_rfc9173_a3_bib_covers_primary_and_age_blocks() -> None:
    raw = vector("rfc9173-a3-final")
    b = decode_bundle(raw)
    assert b.age == 300
    (bib,) = [x for x in b.blocks if x.type == BLOCK_BIB]
    assert sorted(verify_bib(b, bib, KEY)) == [0, 2]  # primary block and bundle age
    asb = cbor2.loads(b"\x86" + bib.data)
    primary_bytes = raw[1:29]
    age = b.block(7)
    assert age is not None
    for target_data, result in zip((primary_bytes, age.data), asb[5], strict=True):
        ippt = cbor2.dumps(0) + cbor2.dumps(target_data)
        assert hmac.new(KEY, ippt, hashlib.sha256).digest() == result[0][1]


def test_rfc9173_a2_bcb_aes_gcm_unwraps_the_key_and_decrypts() -> None:
    b = decode_bundle(vector("rfc9173-a2-final"))
    (bcb,) = [x for x in b.blocks if x.type == BLOCK_BCB]
    assert decrypt_bcb(b, bcb, KEK) == {1: PAYLOAD}  # AES key wrap with the RFC's KEK
    asb = cbor2.loads(b"\x86" + bcb.data)
    params = dict(asb[4])
    assert aes_key_unwrap(KEK, params[3]) == CEK
    assert AESGCM(CEK).decrypt(params[1], b.payload + asb[5][0][0][1], b"\x00") == PAYLOAD
    with pytest.raises(ProtocolError, match="unwrap"):
        decrypt_bcb(b, bcb, bytes(16))
    flipped = b.replace_block(CanonicalBlock(1, 1, bytes([b.payload[0] ^ 1]) + b.payload[1:]))
    with pytest.raises(ProtocolError, match="authentication"):
        decrypt_bcb(flipped, bcb, KEK)


def test_rfc9173_a4_bcb_covers_payload_and_bib_then_bib_verifies() -> None:
    b = decode_bundle(vector("rfc9173-a4-final"))
    (bcb,) = [x for x in b.blocks if x.type == BLOCK_BCB]
    plain = decrypt_bcb(b, bcb, CEK * 2)  # A256GCM, no wrapped key; scope flags 7
    assert plain[1] == PAYLOAD
    clear = b
    for blk in b.blocks:
        if blk.number in plain:
            clear = clear.replace_block(dataclasses.replace(blk, data=plain[blk.number]))
    (bib,) = [x for x in clear.blocks if x.type == BLOCK_BIB]
    assert verify_bib(clear, bib, KEY) == [1]  # HMAC-SHA-384 over scope 7
    with pytest.raises(ProtocolError, match="integrity"):
        verify_bib(clear, bib, KEY[::-1])


def test_bpsec_asb_parser_rejects_garbage() -> None:
    for data in (b"", b"\xff", cbor2.dumps([1]) + cbor2.dumps(1)):
        with pytest.raises(ProtocolError):
            parse_asb(CanonicalBlock(BLOCK_BIB, 2, data))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=80))
def test_fuzz_asb_parser(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        parse_asb(CanonicalBlock(BLOCK_BIB, 2, data))


def test_crc_check_values() -> None:
    assert crc16_x25(b"123456789") == crc16_x25_python(b"123456789") == 0x906E
    assert crc32c(b"123456789") == crc32c_python(b"123456789") == 0xE3069283


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fast_crcs_match_the_table_driven_reference(data: bytes) -> None:
    assert crc16_x25(data) == crc16_x25_python(data)
    assert crc32c(data) == crc32c_python(data)


@pytest.mark.parametrize("crc", [CRC_16, CRC_32C])
def test_crc_covers_block_with_only_value_bytes_zeroed(crc: int) -> None:
    b = new_bundle("dtn://a/", "dtn://b/inbox", b"hi", now=1000, crc_type=crc)
    raw = encode_bundle(b)
    n = 2 if crc == CRC_16 else 4
    prim = cbor2.dumps([*b.primary.to_cbor(), bytes(n)])
    assert raw[1 : 1 + len(prim) - n] == prim[:-n]  # the bstr head (0x42/0x44) is kept
    f = crc16_x25 if crc == CRC_16 else crc32c
    assert raw[1 + len(prim) - n : 1 + len(prim)] == f(prim).to_bytes(n, "big")
    # zeroing the head too (the pre-erratum misreading) gives a different CRC
    assert f(prim[: -n - 1] + bytes(n + 1)) != f(prim)
    assert decode_bundle(raw) == b


def test_crc_detects_every_single_byte_change_in_protected_blocks() -> None:
    b = new_bundle("dtn://a/", "dtn://b/", b"x" * 40, now=5, crc_type=CRC_32C)
    b = type(b)(b.primary, tuple(dataclasses.replace(x, crc_type=CRC_16) for x in b.blocks))
    raw = encode_bundle(b)
    assert decode_bundle(raw) == b
    for i in range(1, len(raw) - 1):
        bad = bytearray(raw)
        bad[i] ^= 0x01
        with pytest.raises(ProtocolError):
            decode_bundle(bytes(bad))


def test_new_bundle_has_hop_count_age_and_defaults() -> None:
    b = new_bundle("dtn://alice/", "dtn://bob/", b"p", now=10)
    assert b.hop_count == (7, 0)
    assert b.age == 0
    b2 = decode_bundle(
        encode_bundle(b.with_hop().with_previous_node(EID.parse("dtn://r/")).with_age(50))
    )
    assert b2.hop_count == (7, 1)
    assert str(b2.previous_node) == "dtn://r/"
    assert b2.age == 50
    assert b2.blocks[-1].type == 1


def test_hop_limit_exceeded_after_limit_hops() -> None:
    b = new_bundle("dtn://a/", "dtn://b/", b"p", now=10, hop_limit=2)
    b = b.with_hop().with_hop()
    assert not b.hop_limit_exceeded()
    assert b.with_hop().hop_limit_exceeded()


def test_lifetime_and_expiry() -> None:
    b = new_bundle("dtn://a/", "dtn://b/", b"p", now=1000, lifetime_ms=500)
    assert not b.is_expired(1499)
    assert b.is_expired(1500)
    noclock = new_bundle("dtn://a/", "dtn://b/", b"p", now=0, lifetime_ms=500).with_age(400)
    assert noclock.expires_at(received_at=10_000) == 10_100


def test_eid_parse_and_format() -> None:
    assert str(EID.parse("dtn://alice/inbox")) == "dtn://alice/inbox"
    assert str(EID.parse("dtn://alice")) == "dtn://alice/"
    assert str(EID.parse("ipn:3.7").node) == "ipn:3.0"
    assert str(EID.parse("dtn://alice/inbox").node) == "dtn://alice/"
    assert str(EID.parse("dtn:none")) == "dtn:none"
    for bad in ("http://x", "dtn:///", "ipn:1", "ipn:a.b", "dtn://a b/"):
        with pytest.raises(ProtocolError):
            EID.parse(bad)


def test_fragment_and_reassemble_in_any_order() -> None:
    payload = bytes(range(256)) * 40
    b = new_bundle("dtn://a/", "dtn://b/", payload, now=77, crc_type=CRC_16)
    b = b.replace_block(CanonicalBlock(200, 9, b"\x01", BLOCK_REPLICATE))
    frags = fragment(b, 1000)
    assert len(frags) == 11
    assert all(f.block(200) is not None for f in frags)
    assert frags[0].block(10) is not None and frags[1].block(10) is None
    wire = [decode_bundle(encode_bundle(f)) for f in frags]
    r = Reassembler()
    out = [r.add(f) for f in reversed(wire)]
    assert out[:-1] == [None] * 10
    whole = out[-1]
    assert whole is not None and whole.payload == payload
    assert not whole.primary.is_fragment
    assert encode_bundle(whole) == encode_bundle(b)


def test_refragmentation_and_consistent_overlap_reassemble() -> None:
    payload = b"abcdefghij" * 30
    b = new_bundle("dtn://a/", "dtn://b/", payload, now=1)
    first = fragment(b, 120)
    refrag = fragment(first[1], 50)  # 120..239 split again
    r = Reassembler()
    assert r.add(first[0]) is None
    assert r.add(refrag[0]) is None
    assert r.add(first[1]) is None  # overlaps refrag[0] with identical bytes: accepted
    whole = r.add(first[2])
    assert whole is not None and whole.payload == payload


def test_conflicting_overlap_raises_and_is_counted() -> None:
    b = new_bundle("dtn://a/", "dtn://b/", b"0123456789" * 10, now=1)
    f = fragment(b, 40)
    evil = fragment(new_bundle("dtn://a/", "dtn://b/", b"X" * 100, now=1), 60)
    r, drops = Reassembler(), DropCounter()
    r.add(f[0])
    with pytest.raises(ProtocolError) as exc:
        r.add(evil[0])
    drops.drop(exc.value)
    assert drops["overlap"] == 1 and drops.total() == 1


def test_must_not_fragment_and_absurd_adu() -> None:
    b = new_bundle("dtn://a/", "dtn://b/", b"x" * 100, now=1, flags=BUNDLE_MUST_NOT_FRAGMENT)
    with pytest.raises(ProtocolError):
        fragment(b, 10)
    f = fragment(new_bundle("dtn://a/", "dtn://b/", b"x" * 100, now=1), 10)[0]
    with pytest.raises(ProtocolError):
        Reassembler(max_adu=50).add(f)


def test_status_report_roundtrip() -> None:
    subj = new_bundle("dtn://a/", "dtn://b/", b"x", now=123, sequence=4)
    rep = make_status_report(subj, "delivered", source=EID.parse("dtn://b/"), now=200)
    assert rep.primary.is_admin and str(rep.primary.destination) == "dtn://a/"
    sr = parse_status_report(decode_bundle(encode_bundle(rep)))
    assert sr.status == ("delivered",)
    assert (str(sr.subject_source), sr.subject_time, sr.subject_sequence) == ("dtn://a/", 123, 4)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x9f\xff",
        b"\x80",
        b"\x9f\x88\x07",
        bytes.fromhex("9f885bffffffffffffffff"),  # absurd byte-string length
        bytes.fromhex("9f9bffffffffffffffff"),  # absurd array length
        bytes.fromhex("9f88060000820282010282028202018202820201820018281a000f4240ff"),
        b"\x9f" + b"\x81" * 5000 + b"\x00",  # deep nesting
    ],
)
def test_malformed_inputs_raise_protocol_error(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_bundle(raw)


def test_trailing_bytes_and_duplicate_blocks_rejected() -> None:
    raw = encode_bundle(new_bundle("dtn://a/", "dtn://b/", b"x", now=1))
    with pytest.raises(ProtocolError):
        decode_bundle(raw + b"\x00")
    b = new_bundle("dtn://a/", "dtn://b/", b"x", now=1, crc_type=CRC_NONE)
    dup = b.replace_block(CanonicalBlock(7, 2, cbor2.dumps(1)))
    dup = type(b)(b.primary, (b.blocks[0], CanonicalBlock(8, 2, b""), *b.blocks[1:]))
    with pytest.raises(ProtocolError):
        decode_bundle(encode_bundle(dup))


# -- fuzz ----------------------------------------------------------------------

SEED = encode_bundle(new_bundle("dtn://a/x", "dtn://b/y", b"payload" * 5, now=99, crc_type=CRC_16))
_drops = DropCounter()


def _decode_or_protocol_error(raw: bytes) -> None:
    try:
        b = decode_bundle(raw)
    except ProtocolError as exc:
        _drops.drop(exc)
        return
    assert decode_bundle(encode_bundle(b)) == b


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(raw: bytes) -> None:
    _decode_or_protocol_error(b"\x9f" + raw)
    _decode_or_protocol_error(raw)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, len(SEED) - 1), st.integers(0, 255)), min_size=1, max_size=4),
    st.integers(0, len(SEED)),
)
def test_fuzz_mutated_bundles(edits: list[tuple[int, int]], cut: int) -> None:
    raw = bytearray(SEED)
    for i, v in edits:
        raw[i] = v
    _decode_or_protocol_error(bytes(raw))
    _decode_or_protocol_error(bytes(raw[:cut]))


cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.binary(max_size=20)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(cbor_values, min_size=1, max_size=4))
def test_fuzz_structured_cbor_blocks(blocks: list[object]) -> None:
    raw = b"\x9f" + b"".join(cbor2.dumps(x) for x in blocks) + b"\xff"
    _decode_or_protocol_error(raw)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 90), st.integers(1, 30), st.binary(min_size=1, max_size=1)),
        min_size=1,
        max_size=6,
    )
)
def test_fuzz_fragment_overlaps(parts: list[tuple[int, int, bytes]]) -> None:
    r = Reassembler()
    base = new_bundle("dtn://a/", "dtn://b/", b"\x00" * 100, now=3)
    for off, ln, fill in parts:
        data = fill * min(ln, 100 - off)
        frag = fragment(
            base.replace_block(
                CanonicalBlock(1, 1, b"\x00" * off + data + b"\x00" * (100 - off - len(data)))
            ),
            100,
        )[0]
        piece = type(frag)(
            frag.primary.__class__(
                **{
                    **{f: getattr(base.primary, f) for f in base.primary.__dataclass_fields__},
                    "flags": 1,
                    "fragment_offset": off,
                    "total_adu_length": 100,
                }
            ),
            (CanonicalBlock(1, 1, data),),
        )
        try:
            out = r.add(decode_bundle(encode_bundle(piece)))
        except ProtocolError as exc:
            assert exc.reason == "overlap"
            _drops.drop(exc)
            return
        if out is not None:
            assert len(out.payload) == 100


def test_fuzz_drops_were_counted() -> None:
    # runs after the fuzz tests in file order: malformed input was dropped and counted
    assert _drops.total() > 0
    assert set(_drops) <= {
        "cbor",
        "crc",
        "primary",
        "block",
        "eid",
        "version",
        "length",
        "fragment",
        "overlap",
    }


@pytest.mark.parametrize("block", [0, 1])
def test_non_integer_crc_type_is_a_protocol_error(block: int) -> None:
    """Found by the fuzzer: a CRC type that is an array (unhashable) must not crash."""
    b = new_bundle("dtn://a/", "dtn://b/", b"x", now=1000)
    items = [b.primary.to_cbor()] + [blk.to_cbor() for blk in b.blocks]
    items[block] = list(items[block])
    items[block][2 if block == 0 else 3] = [1]
    raw = b"\x9f" + b"".join(cbor2.dumps(i) for i in items) + b"\xff"
    with pytest.raises(ProtocolError):
        decode_bundle(raw)
