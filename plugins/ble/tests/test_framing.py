"""BLE framing (no radio needed): round trips at several MTUs, and fuzz."""

import pytest
from fogctl_ble.framing import Chunker, Reassembler
from hypothesis import given, settings
from hypothesis import strategies as st

from fogctl.mesh.errors import ProtocolError


@pytest.mark.parametrize("mtu", [23, 185, 517])
@pytest.mark.parametrize("size", [0, 1, 12, 13, 20, 1000, 70000])
def test_round_trip(mtu: int, size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    chunks = Chunker(mtu).chunks(data)
    assert all(len(c) <= mtu - 3 for c in chunks)
    r = Reassembler()
    out = [r.feed(c) for c in chunks]
    assert out[-1] == data and all(x is None for x in out[:-1])


def test_out_of_sequence_and_overlong_rejected() -> None:
    chunks = Chunker(23).chunks(b"x" * 100)
    r = Reassembler()
    r.feed(chunks[0])
    with pytest.raises(ProtocolError):
        r.feed(chunks[2])
    with pytest.raises(ProtocolError):
        Reassembler(max_bundle=10).feed(chunks[0])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=30), max_size=10))
def test_fuzz(chunks: list[bytes]) -> None:
    r = Reassembler(max_bundle=1000)
    for c in chunks:
        try:
            out = r.feed(c)
        except ProtocolError:
            continue
        assert out is None or len(out) <= 1000
