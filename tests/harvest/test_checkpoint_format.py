"""The WASM checkpoint file: round trip, and any bytes either parse or raise ValueError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fogctl.harvest.wasmrun import MAGIC, decode_checkpoint, encode_checkpoint


def test_round_trip() -> None:
    header = {
        "version": 1,
        "memories": [["memory", 3], ["m2", 0]],
        "globals": {"i": 7},
        "stdout_len": 0,
    }
    data = encode_checkpoint(header, [b"abc", b""])
    h, mems = decode_checkpoint(data)
    assert h == header and mems == {"memory": b"abc", "m2": b""}
    with pytest.raises(ValueError):
        decode_checkpoint(data + b"x")
    with pytest.raises(ValueError):
        decode_checkpoint(data[:-1])


@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_raise_value_error(data: bytes) -> None:
    for blob in (data, MAGIC + data):
        with contextlib.suppress(ValueError):
            decode_checkpoint(blob)


@given(st.binary(max_size=64), st.integers(0, 2**64 - 1))
def test_corrupted_headers_raise_value_error(tail: bytes, n: int) -> None:
    blob = MAGIC + n.to_bytes(8, "big") + tail
    with contextlib.suppress(ValueError):
        decode_checkpoint(blob)
