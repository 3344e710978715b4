"""The RFC 5389 STUN codec: RFC 5769 test vector, strict parsing under fuzzing, NAT classes."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fogctl.dht.stun import MAGIC, Mapped, StunError, binding_request, classify, parse_response

# RFC 5769 section 2.2, "Sample IPv4 Response" (with MESSAGE-INTEGRITY and FINGERPRINT)
RFC5769_IPV4 = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae"
    "8022000b7465737420766563746f7220"
    "002000080001a147e112a643"
    "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004c07d4c96"
)
TID = bytes.fromhex("b7e7a701bc34d686fa87dfae")


def test_rfc5769_ipv4_response() -> None:
    assert parse_response(RFC5769_IPV4, TID) == Mapped("192.0.2.1", 32853)


def test_fingerprint_is_checked() -> None:
    bad = RFC5769_IPV4[:-1] + bytes([RFC5769_IPV4[-1] ^ 1])
    with pytest.raises(StunError, match="FINGERPRINT"):
        parse_response(bad, TID)


def test_wrong_transaction_and_truncation() -> None:
    with pytest.raises(StunError, match="transaction"):
        parse_response(RFC5769_IPV4, bytes(12))
    with pytest.raises(StunError, match="length"):
        parse_response(RFC5769_IPV4[:-4], TID)


def test_binding_request_layout() -> None:
    req = binding_request(TID)
    assert req == struct.pack(">HHI", 1, 0, MAGIC) + TID


def test_classify() -> None:
    local = Mapped("10.0.0.2", 5000)
    assert classify(local, [local, local]) == ("public", "none")
    a, b = Mapped("198.51.100.1", 5000), Mapped("198.51.100.1", 6000)
    assert classify(local, [a, a]) == ("nat", "endpoint-independent")
    assert classify(local, [a, b]) == ("nat", "symmetric")
    assert classify(local, [a]) == ("nat", "unknown")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_fuzz_parse(data: bytes) -> None:
    with contextlib.suppress(StunError):
        parse_response(data, TID)


@settings(max_examples=300, deadline=None)
@given(st.integers(20, len(RFC5769_IPV4) - 1), st.integers(1, 255))
def test_fuzz_mutated_vector(pos: int, flip: int) -> None:
    data = bytearray(RFC5769_IPV4)
    data[pos] ^= flip
    with contextlib.suppress(StunError):
        got = parse_response(bytes(data), TID)
        assert isinstance(got, Mapped)
