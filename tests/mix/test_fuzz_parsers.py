"""Every parser of network bytes: any input parses or raises the domain's error, and the
node and client cores count bad input instead of raising."""

from __future__ import annotations

import collections
import contextlib
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fogctl.errors import FogError
from fogctl.mix import message, sphinx
from fogctl.mix.errors import MixProtocolError
from fogctl.mix.net import (
    PULL_ANSWER_SIZE,
    DirectoryStore,
    NodeService,
    open_entries,
    parse_descriptors,
)
from fogctl.mix.node import MixClient, MixNode, Params
from tests.mix.conftest import key_source, make_descriptors

NET = make_descriptors(1, 1, providers=1)
PROV = NET.topology.providers[0]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.binary(max_size=3000))
def test_message_frames(data: bytes) -> None:
    with contextlib.suppress(MixProtocolError):
        message.decode_reply(data)
    with contextlib.suppress(MixProtocolError):
        message.decode_forward(data, os.urandom(32))


@SETTINGS
@given(st.binary(max_size=5000), st.booleans())
def test_pull_answers_and_descriptor_lists(data: bytes, full: bool) -> None:
    if full:
        data = (data * (PULL_ANSWER_SIZE // max(1, len(data)) + 1))[:PULL_ANSWER_SIZE]
    with contextlib.suppress(FogError):
        open_entries(data, bytes(32), bytes(72))
        raise AssertionError("a forged PULL answer authenticated")
    parse_descriptors(data)  # skips what it cannot read


@SETTINGS
@given(st.integers(0, 255), st.binary(max_size=3000))
def test_node_requests(op: int, body: bytes) -> None:
    core = MixNode(bytes.fromhex(PROV.id), key_source(NET.secrets[PROV.id]), layer=0)
    svc = NodeService(core, DirectoryStore(), live_keys=lambda t: [NET.secrets[PROV.id]])
    with contextlib.suppress(FogError):
        svc._handle(op, body)


@SETTINGS
@given(st.binary(max_size=3000))
def test_node_and_client_cores_count_instead_of_raising(data: bytes) -> None:
    core = MixNode(bytes.fromhex(PROV.id), key_source(NET.secrets[PROV.id]), layer=0)
    core.receive(data, 0.0)
    assert core.counters["received"] == 1
    assert sum(v for k, v in core.counters.items() if k.startswith("dropped")) == 1
    client = MixClient(
        os.urandom(32),
        bytes.fromhex(PROV.id),
        NET.topology,
        params=Params(hops=1),
        rng=random.Random(1),
    )
    payload = (data * (sphinx.PAYLOAD_SIZE // max(1, len(data)) + 1))[: sphinx.PAYLOAD_SIZE]
    assert client.receive(data[:16].ljust(16, b"\0"), payload, 0.0) == []
    assert sum(client.counters.values()) == 1


def test_pull_answers_are_fixed_size_sealed_batches() -> None:
    from fogctl.errors import Refused
    from fogctl.mix.net import PULL_BATCH, pull_request
    from fogctl.mix.node import client_address_bytes
    from fogctl.mix.primitives import x25519, x25519_base

    sk = NET.secrets[PROV.id]
    core = MixNode(bytes.fromhex(PROV.id), key_source(sk), layer=0)
    svc = NodeService(core, DirectoryStore(), live_keys=lambda t: [sk])
    secret = os.urandom(32)
    pub = x25519_base(secret)
    box = core.inbox.setdefault(client_address_bytes(pub), collections.deque())
    for i in range(PULL_BATCH + 2):
        box.append((bytes([i]) * 16, bytes([i]) * sphinx.PAYLOAD_SIZE))
    shared = x25519(secret, bytes.fromhex(PROV.public_key))
    sizes, got, mores = [], [], []
    for t in (100.0, 101.0, 102.0):
        body = pull_request(secret, pub, bytes.fromhex(PROV.public_key), t)
        answer = svc._pull(body, t)
        sizes.append(len(answer))
        entries, more = open_entries(answer, shared, body)
        got += [e[0][0] for e in entries]
        mores.append(more)
    assert sizes == [PULL_ANSWER_SIZE] * 3  # full, partial and empty look the same
    assert got == list(range(PULL_BATCH + 2)) and mores == [True, False, False]
    # someone else's key, or a stale time, is refused
    other = os.urandom(32)
    forged = pull_request(other, pub, bytes.fromhex(PROV.public_key), 100.0)
    with pytest.raises(Refused):
        svc._pull(forged, 100.0)
    with pytest.raises(Refused):
        svc._pull(pull_request(secret, pub, bytes.fromhex(PROV.public_key), 100.0), 1000.0)


@SETTINGS
@given(st.binary(max_size=3000))
def test_submit_and_register_bodies_from_a_registered_key(rest: bytes) -> None:
    from fogctl.errors import Refused
    from fogctl.mix.net import OP_REGISTER, OP_SUBMIT
    from fogctl.mix.primitives import x25519_base

    core = MixNode(bytes.fromhex(PROV.id), key_source(NET.secrets[PROV.id]), layer=0)
    svc = NodeService(core, DirectoryStore(), live_keys=lambda t: [NET.secrets[PROV.id]])
    pub = x25519_base(os.urandom(32))
    svc.clients.add(pub)
    for op in (OP_SUBMIT, OP_REGISTER):
        with pytest.raises(Refused, match="authentication failed"):
            svc._handle(op, pub + rest)  # any time, tag or packet: refused, never a crash
    assert core.counters["submit_bad_auth"] == 1 and core.counters["register_refused"] == 1
    assert core.counters["received"] == 0


@SETTINGS
@given(st.binary(max_size=5000))
def test_dht_descriptor_bundles(data: bytes) -> None:
    from fogctl.mix import dhtdir

    for d in dhtdir.parse(data):  # what parses is a descriptor, verified later
        assert d.kind == "mix_descriptor"
