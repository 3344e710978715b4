"""Sans-IO cores: envelopes (published Ed25519 vectors, forgery, fuzz) and the RPC decoder."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import pytest
import umsgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fogctl.dht import wire
from fogctl.dht.envelope import (
    HEADER,
    MAX_TTL,
    MAX_VALUE,
    Envelope,
    InvalidEnvelope,
    best,
    check,
    decode,
    key_id,
    seal,
)
from fogctl.state.identity import verify

from .helpers import ident

NOW = 1_800_000_000.0


def test_rfc8032_test_vector_1() -> None:
    """The Ed25519 verifier we rely on accepts RFC 8032 section 7.1 TEST 1 and nothing else."""
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    sig = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    assert verify(public, sig, b"")
    assert not verify(public, sig, b"\x00")


def _env(seq: int = 1, value: bytes = b"v", ttl: float = 600) -> tuple[Any, Envelope]:
    me = ident()
    env = seal(me.sign, me.ed25519_public, key_id("k"), value, seq=seq, expiry=int(NOW + ttl))
    return me, env


def test_roundtrip_and_verify() -> None:
    me, env = _env()
    got = check(env.encode(), now=NOW, verify=verify, dkey=key_id("k"))
    assert got == env
    assert got.signer_id.hex() == me.node_id


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "bad signature"),  # value changed
        (lambda b: b[:28] + bytes([b[28] ^ 1]) + b[29:], "bad signature"),  # seq changed
        (lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:], "bad signature"),  # signature
        (lambda b: b"\x02" + b[1:], "unknown envelope version"),
        (lambda b: b[:50], "header alone"),
    ],
)
def test_forged_envelopes_are_refused(mutate: Any, reason: str) -> None:
    _, env = _env()
    with pytest.raises(InvalidEnvelope, match=reason):
        check(mutate(env.encode()), now=NOW, verify=verify)


def test_stale_expired_oversized_wrong_key() -> None:
    _, env = _env(ttl=10)
    with pytest.raises(InvalidEnvelope, match="expired"):
        check(env.encode(), now=NOW + 11, verify=verify)
    _, far = _env(ttl=MAX_TTL * 2)
    with pytest.raises(InvalidEnvelope, match="too far"):
        check(far.encode(), now=NOW, verify=verify)
    with pytest.raises(InvalidEnvelope, match="limit"):
        _env(value=b"x" * (MAX_VALUE + 1))
    with pytest.raises(InvalidEnvelope, match="exceeds"):
        decode(b"\x01" + bytes(HEADER - 1) + b"x" * (MAX_VALUE + 1))
    with pytest.raises(InvalidEnvelope, match="another key"):
        check(env.encode(), now=NOW, verify=verify, dkey=key_id("other"))


def test_highest_sequence_per_signer_wins() -> None:
    me = ident()
    envs = [
        seal(me.sign, me.ed25519_public, key_id("k"), b"%d" % s, seq=s, expiry=int(NOW + 60))
        for s in (3, 9, 5)
    ]
    assert best(envs)[me.ed25519_public].value == b"9"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=HEADER + 64))
def test_fuzz_envelope_check(data: bytes) -> None:
    try:
        check(data, now=NOW, verify=verify)
    except InvalidEnvelope:
        return
    raise AssertionError("random bytes passed verification")


@settings(max_examples=200, deadline=None)
@given(st.integers(0, HEADER + 2), st.integers(1, 255))
def test_fuzz_single_byte_mutation(pos: int, flip: int) -> None:
    _, env = _env(value=b"abc")
    data = bytearray(env.encode())
    data[pos] ^= flip
    with pytest.raises(InvalidEnvelope):
        check(bytes(data), now=NOW, verify=verify)


# -- the RPC decoder ---------------------------------------------------------------


def test_request_roundtrip() -> None:
    mid = os.urandom(20)
    data = wire.encode_request(mid, "find_node", [os.urandom(32), os.urandom(20)])
    msg = wire.decode_datagram(data)
    assert isinstance(msg, wire.Request) and msg.method == "find_node" and msg.msg_id == mid


@pytest.mark.parametrize(
    "body",
    [
        ["store", [b"k" * 32]],  # arity
        ["store", [b"k" * 32, b"short"]],  # not an envelope
        ["ping", [b"k" * 31, b"n" * 16]],  # key size
        ["rpc_evil", [b"k" * 32]],  # unknown method
        ["find_node", "notalist"],
        {"a": 1},
    ],
)
def test_malformed_requests(body: Any) -> None:
    with pytest.raises(wire.MalformedMessage):
        wire.decode_datagram(b"\x00" + bytes(20) + umsgpack.packb(body))


def test_sender_refuses_oversized() -> None:
    with pytest.raises(wire.MalformedMessage, match="exceeds"):
        wire.encode_response(bytes(20), b"x" * 9000)


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("find_node", [[b"x", "127.0.0.1", 1, 4]]),
        ("find_node", [[b"i" * 20, "example.org", 1]]),
        ("find_node", [[b"i" * 20, "127.0.0.1", 0]]),
        ("find_node", [[b"i" * 20, "127.0.0.1", 1]] * 21),
        ("find_value", {"v": [[1, 2]], "n": []}),
        ("find_value", {"value": "x"}),
        ("ping", [b"k" * 32]),
        ("store", [1, "x"]),
    ],
)
def test_malformed_answers(method: str, body: Any) -> None:
    with pytest.raises(wire.MalformedMessage):
        wire.parse_result(method, body)


_msgpackable = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.binary(max_size=40)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_fuzz_decoder_bytes(data: bytes) -> None:
    with contextlib.suppress(wire.MalformedMessage):
        wire.decode_datagram(data)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([0, 1, 2, 7]), st.sampled_from([*wire.REQUESTS, "gossip", "x"]), _msgpackable
)
def test_fuzz_decoder_structured(kind: int, method: str, args: Any) -> None:
    data = bytes([kind]) + bytes(20) + umsgpack.packb([method, args])
    try:
        msg = wire.decode_datagram(data)
    except wire.MalformedMessage:
        return
    if isinstance(msg, wire.Response):
        for m in wire.REQUESTS:
            with contextlib.suppress(wire.MalformedMessage):
                wire.parse_result(m, msg.body)


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append((data, addr))

    def is_closing(self) -> bool:
        return False


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.binary(max_size=300)
        | _msgpackable.map(lambda o: b"\x00" + bytes(20) + umsgpack.packb(o)),
        max_size=8,
    )
)
def test_fuzz_protocol_never_crashes(datagrams: list[bytes]) -> None:
    """Feed junk to a live protocol object: it drops and counts, never raises."""
    from kademlia.node import Node

    from fogctl.dht.protocol import FogProtocol
    from fogctl.dht.storage import ValueStorage

    me = ident()
    proto = FogProtocol(
        Node(bytes.fromhex(me.node_id)),
        ValueStorage(),
        20,
        public_key=me.ed25519_public,
        sign=me.sign,
        client=True,  # answers nobody: no event loop needed
    )
    proto.connection_made(FakeTransport())
    for d in datagrams:
        proto.datagram_received(d, ("127.0.0.1", 9))
    s = proto.stats
    assert s["received"] == len(datagrams)
    assert s["malformed"] + s["oversized"] + s["unsolicited"] <= len(datagrams)


def test_protocol_counts_malformed() -> None:
    from kademlia.node import Node

    from fogctl.dht.protocol import FogProtocol
    from fogctl.dht.storage import ValueStorage

    me = ident()
    proto = FogProtocol(
        Node(bytes.fromhex(me.node_id)),
        ValueStorage(),
        20,
        public_key=me.ed25519_public,
        sign=me.sign,
        client=True,
    )
    proto.connection_made(FakeTransport())
    proto.datagram_received(b"\x00" * 10, ("127.0.0.1", 9))
    proto.datagram_received(b"\x00" + bytes(20) + b"\xc1", ("127.0.0.1", 9))
    proto.datagram_received(b"x" * 9000, ("127.0.0.1", 9))
    assert proto.stats["malformed"] == 2 and proto.stats["oversized"] == 1


def test_deeply_nested_provider_descriptor_is_ignored() -> None:
    """A signed value of 4 KB of '[' must not crash the providers listing."""
    from fogctl.dht.service import _provider

    class _Env:
        value = b"[" * 4000
        signer_id = b"\x00" * 20
        signer = b"\x00" * 32

    assert _provider(_Env()) is None  # type: ignore[arg-type]
