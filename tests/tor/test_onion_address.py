"""v3 onion addresses (rend-spec-v3 section 6), key expansion and port maps: no tor needed."""

from __future__ import annotations

import base64
import contextlib
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fogctl.errors import InvalidInput
from fogctl.tor.onion import (
    check_onion_address,
    expand_seed,
    onion_address,
    parse_port_map,
    pubkey_from_address,
)

# tor's own vector: src/test/test_hs_common.c, test_build_address (made with
# hs_build_address.py from proposal 224); the key is RFC 8032 test 1's public key.
TOR_PUBKEY = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
TOR_ADDRESS = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion"


def test_tor_test_vector() -> None:
    assert onion_address(bytes.fromhex(TOR_PUBKEY)) == TOR_ADDRESS
    assert pubkey_from_address(TOR_ADDRESS).hex() == TOR_PUBKEY


def test_spec_formula_written_out() -> None:
    pub = bytes(range(32))
    checksum = hashlib.sha3_256(b".onion checksum" + pub + b"\x03").digest()[:2]
    expected = base64.b32encode(pub + checksum + b"\x03").decode().lower() + ".onion"
    assert onion_address(pub) == expected
    assert onion_address(pub).endswith("d.onion")  # version 3 ends the address in 'd'


@given(st.binary(min_size=32, max_size=32))
def test_round_trip(pub: bytes) -> None:
    addr = onion_address(pub)
    assert len(addr) == 56 + len(".onion")
    assert pubkey_from_address(addr) == pub
    assert pubkey_from_address(addr.upper().removesuffix(".ONION")) == pub


def test_bad_checksum_and_version_are_refused() -> None:
    raw = bytearray(base64.b32decode(TOR_ADDRESS[:56].upper()))
    raw[33] ^= 1
    bad = base64.b32encode(bytes(raw)).decode().lower()
    with pytest.raises(InvalidInput, match="checksum"):
        pubkey_from_address(bad)
    raw = bytearray(base64.b32decode(TOR_ADDRESS[:56].upper()))
    raw[34] = 2
    with pytest.raises(InvalidInput, match="version"):
        pubkey_from_address(base64.b32encode(bytes(raw)).decode())
    with pytest.raises(InvalidInput, match="v3 address"):
        check_onion_address("example.onion")
    with pytest.raises(InvalidInput):
        onion_address(b"short")


@given(st.text(max_size=80))
def test_any_text_parses_or_is_invalid_input(text: str) -> None:
    with contextlib.suppress(InvalidInput):
        pubkey_from_address(text)


def test_expand_seed_matches_ed25519_public_key() -> None:
    """tor's ED25519-V3 blob is clamp(SHA512(seed)[:32]) | SHA512(seed)[32:]: its scalar
    times the base point must be the key's public key (checked with libsodium)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from nacl.bindings import crypto_scalarmult_ed25519_base_noclamp

    # RFC 8032 test 1 secret key -> TOR_PUBKEY
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    pub = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key()
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert raw.hex() == TOR_PUBKEY
    expanded = expand_seed(seed)
    assert len(expanded) == 64
    assert crypto_scalarmult_ed25519_base_noclamp(expanded[:32]) == raw


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("80", "80:127.0.0.1:80"),
        ("80:8080", "80:127.0.0.1:8080"),
        ("80:127.0.0.1:8080", "80:127.0.0.1:8080"),
        ("443:localhost:8443", "443:127.0.0.1:8443"),
        ("22:[::1]:2222", "22:[::1]:2222"),
        (" 80:10.0.0.2:80 ", "80:10.0.0.2:80"),
    ],
)
def test_port_maps(spec: str, want: str) -> None:
    assert str(parse_port_map(spec)) == want


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("", "empty"),
        ("http", "virtual port"),
        ("0:8080", "virtual port"),
        ("70000", "virtual port"),
        ("80:", "target port"),
        ("80:127.0.0.1:99999", "target port"),
        ("80:127.0.0.1:x", "target port"),
        ("80:example.org:80", "target host"),
        ("80:[::1:80", "target host"),
    ],
)
def test_bad_port_maps_name_the_field(spec: str, field: str) -> None:
    with pytest.raises(InvalidInput, match=field):
        parse_port_map(spec)


@given(st.text(max_size=40))
def test_port_map_parser_never_crashes(text: str) -> None:
    with contextlib.suppress(InvalidInput):
        parse_port_map(text)
