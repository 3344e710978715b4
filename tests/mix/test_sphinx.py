"""Sphinx: round trips, SURBs, tagging, O(hops) creation, golden vectors, fuzzing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fogctl.mix import primitives, sphinx
from fogctl.mix.errors import MacMismatch, MalformedPacket, MixProtocolError, TaggedPayload
from tests.mix.vectorgen import VECTORS, Drbg, _hops, make


def _path(n: int) -> tuple[list[bytes], list[sphinx.Hop]]:
    sks = [os.urandom(32) for _ in range(n)]
    return sks, [
        sphinx.Hop(os.urandom(20), primitives.x25519_base(k), 10 * i) for i, k in enumerate(sks)
    ]


def _walk(packet: bytes, sks: list[bytes]) -> sphinx.Final:
    for sk in sks[:-1]:
        res = sphinx.process(packet, sk)
        assert isinstance(res, sphinx.Relay)
        assert len(res.packet) == sphinx.PACKET_SIZE
        packet = res.packet
    final = sphinx.process(packet, sks[-1])
    assert isinstance(final, sphinx.Final)
    return final


def test_sizes_are_fixed_and_documented() -> None:
    assert sphinx.HEADER_SIZE == 32 + 7 * 48 + 16 == 384
    assert sphinx.PACKET_SIZE == 384 + 2048
    assert sphinx.SURB_SIZE == 20 + 384 + 32


@pytest.mark.parametrize("n", [1, 2, 5, sphinx.MAX_HOPS])
def test_forward_round_trip_every_hop_sees_only_its_block(n: int) -> None:
    sks, hops = _path(n)
    dest, ident = os.urandom(20), os.urandom(16)
    pkt = sphinx.create_forward(hops, dest, ident, b"hello mixnet", os.urandom)
    assert len(pkt) == sphinx.PACKET_SIZE
    for i, sk in enumerate(sks[:-1]):
        res = sphinx.process(pkt, sk)
        assert isinstance(res, sphinx.Relay)
        assert res.next_hop == hops[i + 1].node_id and res.delay_us == hops[i].delay_us
        pkt = res.packet
    final = sphinx.process(pkt, sks[-1])
    assert isinstance(final, sphinx.Final)
    assert (final.address, final.identifier, final.delay_us) == (dest, ident, hops[-1].delay_us)
    assert sphinx.open_forward(final.payload).rstrip(b"\0") == b"hello mixnet"


def test_surb_reply_round_trip_and_looks_like_forward_at_each_mix() -> None:
    sks, hops = _path(5)
    me, sid = os.urandom(20), os.urandom(16)
    surb, keys = sphinx.create_surb(hops, me, sid, os.urandom)
    surb = sphinx.Surb.from_bytes(surb.to_bytes())
    keys = sphinx.SurbKeys.from_bytes(keys.to_bytes())
    first, reply = sphinx.use_surb(surb, b"the answer")
    assert first == hops[0].node_id and len(reply) == sphinx.PACKET_SIZE
    final = _walk(reply, sks)
    assert final.address == me and final.identifier == sid
    assert sphinx.open_reply(keys, final.payload).rstrip(b"\0") == b"the answer"
    # the last mix cannot read it: under the SURB's layers the prefix is not zero
    with pytest.raises(TaggedPayload):
        sphinx.open_forward(final.payload)


def test_tagging_the_payload_is_caught_by_the_recipient() -> None:
    sks, hops = _path(3)
    pkt = bytearray(sphinx.create_forward(hops, os.urandom(20), os.urandom(16), b"x", os.urandom))
    pkt[sphinx.HEADER_SIZE + 700] ^= 0x40  # the attacker flips a payload bit at hop 0
    final = _walk(bytes(pkt), sks)  # the header is intact, so it is routed...
    with pytest.raises(TaggedPayload):  # ...and caught at the end
        sphinx.open_forward(final.payload)


def test_header_tampering_fails_the_mac_and_wrong_key_too() -> None:
    sks, hops = _path(3)
    pkt = sphinx.create_forward(hops, os.urandom(20), os.urandom(16), b"x", os.urandom)
    for pos in (40, 200, sphinx.HEADER_SIZE - 1):
        bad = bytearray(pkt)
        bad[pos] ^= 1
        with pytest.raises(MacMismatch):
            sphinx.process(bytes(bad), sks[0])
    with pytest.raises(MacMismatch):
        sphinx.process(pkt, sks[1])
    with pytest.raises(MalformedPacket):
        sphinx.process(bytes(32) + pkt[32:], sks[0])  # low-order alpha


def test_replay_callback_sees_the_tag_after_the_mac() -> None:
    sks, hops = _path(2)
    pkt = sphinx.create_forward(hops, os.urandom(20), os.urandom(16), b"x", os.urandom)
    seen: set[bytes] = set()

    def check(tag: bytes) -> bool:
        if tag in seen:
            return True
        seen.add(tag)
        return False

    sphinx.process(pkt, sks[0], check)
    with pytest.raises(MixProtocolError) as err:
        sphinx.process(pkt, sks[0], check)
    assert err.value.reason == "replay"


def test_creation_does_one_fixed_base_and_hops_variable_base_multiplications(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = {"var": 0, "base": 0}
    real, real_base = sphinx._scalarmult, sphinx.x25519_base_mul

    def counting(out: object, k: bytes, p: bytes) -> int:
        calls["var"] += 1
        return int(real(out, k, p))

    def counting_base(e: int) -> bytes:
        calls["base"] += 1
        return real_base(e)

    monkeypatch.setattr(sphinx, "_scalarmult", counting)
    monkeypatch.setattr(sphinx, "x25519_base_mul", counting_base)
    for n in (1, 3, sphinx.MAX_HOPS):
        calls.update(var=0, base=0)
        _, hops = _path(n)
        sphinx.create_forward(hops, os.urandom(20), os.urandom(16), b"", os.urandom)
        assert calls == {"var": n, "base": 1}  # O(hops): the blinding chain is computed once


def test_bad_paths_and_bodies_are_refused() -> None:
    _, hops = _path(sphinx.MAX_HOPS + 1)
    with pytest.raises(ValueError):
        sphinx.create_forward(hops, bytes(20), bytes(16), b"", os.urandom)
    with pytest.raises(ValueError):
        sphinx.create_forward(
            hops[:2], bytes(20), bytes(16), bytes(sphinx.BODY_SIZE + 1), os.urandom
        )
    with pytest.raises(MalformedPacket):
        sphinx.Surb.from_bytes(b"short")


def test_golden_vectors_file_is_reproduced_exactly() -> None:
    stored = json.loads(VECTORS.read_text())
    assert stored == make()
    # and independently of the generator: rebuild case by case, hop by hop
    for case in stored["cases"]:
        sks, hops = _hops(case["hops"])
        rng = Drbg(bytes.fromhex(case["drbg_seed"]))
        body = bytes.fromhex(case["body"])
        if case["kind"] == "forward":
            dest = hashlib.sha256(b"dest").digest()[:20]
            ident = hashlib.sha256(b"ident").digest()[:16]
            pkt = sphinx.create_forward(hops, dest, ident, body, rng)
        else:
            surb = sphinx.Surb.from_bytes(bytes.fromhex(case["surb"]))
            pkt = sphinx.use_surb(surb, body)[1]
        assert pkt.hex() == case["packet"]
        for sk, expect in zip(sks, case["processing"], strict=True):
            res = sphinx.process(pkt, sk)
            assert res.replay_tag.hex() == expect["replay_tag"]
            if isinstance(res, sphinx.Relay):
                assert hashlib.sha256(res.packet).hexdigest() == expect["packet_sha256"]
                pkt = res.packet
            else:
                assert res.payload.hex() == expect["payload"]
        if case["kind"] == "surb":
            keys = sphinx.SurbKeys.from_bytes(bytes.fromhex(case["surb_keys"]))
            assert sphinx.open_reply(keys, res.payload).rstrip(b"\0") == body


# -- fuzzing: any input is processed or raises MixProtocolError, never anything else ---

_SK = hashlib.sha256(b"fuzz-sk").digest()
_, _FUZZ_HOPS = _hops(3)
_VALID = sphinx.create_forward(
    [
        sphinx.Hop(h.node_id, primitives.x25519_base(_SK) if i == 0 else h.public_key, 0)
        for i, h in enumerate(_FUZZ_HOPS)
    ],
    bytes(20),
    bytes(16),
    b"fuzz",
    Drbg(b"fuzz"),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(MixProtocolError):
        sphinx.process(data, _SK)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, sphinx.PACKET_SIZE - 1), st.integers(1, 255)), max_size=4),
    st.integers(0, sphinx.PACKET_SIZE + 64),
    st.binary(max_size=64),
)
def test_fuzz_mutated_truncated_oversized_packets(
    flips: list[tuple[int, int]], cut: int, extra: bytes
) -> None:
    pkt = bytearray(_VALID)
    for pos, mask in flips:
        pkt[pos] ^= mask
    data = bytes(pkt[:cut]) + (extra if cut >= sphinx.PACKET_SIZE else b"")
    try:
        res = sphinx.process(data, _SK)
    except MixProtocolError:
        return
    # only an intact header can pass; then the packet is forwarded with the right size
    assert bytes(pkt[: sphinx.HEADER_SIZE]) == _VALID[: sphinx.HEADER_SIZE]
    assert isinstance(res, sphinx.Relay) and len(res.packet) == sphinx.PACKET_SIZE


def _reference_process(packet: bytes, sk: bytes) -> tuple[int, bytes, int, bytes, bytes, bytes]:
    """The per-hop transform spelled out with the primitive wrappers (slow, plain)."""
    P = primitives
    alpha, beta = packet[:32], packet[32:368]
    k = P.hkdf_sha256(P.x25519(sk, alpha), 256, salt=b"fogctl-sphinx-v1", info=b"hop")
    assert P.ct_equal(P.hmac_sha256(k[16:48], beta)[:16], packet[368:384])
    b = P.xor(beta + bytes(48), P.aes128_ctr_stream(k[:16], 384))
    delta = P.Lioness(k[48:176]).decrypt(packet[384:])
    blind = P.scalar_from_bytes(k[176:240])
    return (
        b[0],
        b[8:28],
        int.from_bytes(b[4:8], "big"),
        b[28:44],
        delta,
        P.x25519_mul(blind, alpha) + b[48:] + b[28:44] + delta,
    )


def test_inlined_hot_path_equals_the_reference_built_from_the_primitives() -> None:
    for n in (1, 2, 5, sphinx.MAX_HOPS):
        sks, hops = _path(n)
        packet = sphinx.create_forward(hops, os.urandom(20), os.urandom(16), b"ref", os.urandom)
        for i, sk in enumerate(sks):
            flag, address, delay, tail, delta, relayed = _reference_process(packet, sk)
            res = sphinx.process(packet, sk)
            if i < n - 1:
                assert isinstance(res, sphinx.Relay) and flag == sphinx.FLAG_RELAY
                assert (res.next_hop, res.delay_us, res.packet) == (address, delay, relayed)
                packet = res.packet
            else:
                assert isinstance(res, sphinx.Final) and flag == sphinx.FLAG_FINAL
                assert (res.address, res.identifier, res.payload) == (address, tail, delta)
    with pytest.raises(MalformedPacket, match="low-order"):
        sphinx.process(bytes(sphinx.PACKET_SIZE), os.urandom(32))
