"""Every parser of network bytes: any input parses or raises the domain's error, and the
node and client cores count bad input instead of raising."""

from __future__ import annotations

import contextlib
import os
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fogctl.errors import FogError
from fogctl.mix import message, sphinx
from fogctl.mix.errors import MixProtocolError
from fogctl.mix.net import DirectoryStore, NodeService, parse_descriptors, parse_entries
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
@given(st.binary(max_size=5000))
def test_pull_answers_and_descriptor_lists(data: bytes) -> None:
    with contextlib.suppress(FogError):
        for ident, payload in parse_entries(data):
            assert len(ident) == 16 and len(payload) == sphinx.PAYLOAD_SIZE
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
