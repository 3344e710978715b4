"""X3DH-style agreement + Double Ratchet: round trips, out-of-order, forward secrecy,
tampering, replay, prekey signature checks."""

from __future__ import annotations

import dataclasses
import random

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from fogctl.errors import Refused
from fogctl.mesh.errors import ProtocolError
from fogctl.mesh.ratchet import (
    DecryptError,
    PrekeyBundle,
    Session,
    accept_session,
    make_prekeys,
    start_session,
)


@dataclasses.dataclass
class Party:
    name: str
    sign: Ed25519PrivateKey
    x: bytes

    @property
    def ed_pub(self) -> bytes:
        return self.sign.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def party(name: str) -> Party:
    x = X25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return Party(name, Ed25519PrivateKey.generate(), x)


def pair() -> tuple[Session, Session, bytes]:
    alice, bob = party("dtn://alice/"), party("dtn://bob/")
    bundle, secrets = make_prekeys(bob.name, bob.sign, bob.x, one_time=3)
    a = start_session(alice.sign, alice.x, PrekeyBundle.from_bytes(bundle.to_bytes()))
    first = a.encrypt(b"hello bob")
    b, sender, pt = accept_session(bob.x, bob.ed_pub, secrets, first)
    assert pt == b"hello bob" and sender == alice.ed_pub
    assert bundle.opks[0] not in secrets.opks  # one-time prekey consumed
    return a, b, first


def test_round_trip_both_directions_with_ratchet_turns() -> None:
    a, b, _ = pair()
    for i in range(5):
        assert b.decrypt(a.encrypt(f"a{i}".encode())) == f"a{i}".encode()
        assert a.decrypt(b.encrypt(f"b{i}".encode())) == f"b{i}".encode()
    assert a.x3dh is None  # once Bob answered, Alice stops sending the agreement header
    restored = Session.from_bytes(b.to_bytes())
    assert restored.decrypt(a.encrypt(b"after restore")) == b"after restore"


def test_out_of_order_and_across_ratchet_steps() -> None:
    a, b, _ = pair()
    msgs = [a.encrypt(f"m{i}".encode()) for i in range(10)]
    order = list(range(10))
    random.Random(4).shuffle(order)
    for i in order[:5]:
        assert b.decrypt(msgs[i]) == f"m{i}".encode()
    reply = b.encrypt(b"turn")
    assert a.decrypt(reply) == b"turn"
    later = a.encrypt(b"new chain")
    assert b.decrypt(later) == b"new chain"
    for i in order[5:]:  # old chain's messages still open from skipped keys
        assert b.decrypt(msgs[i]) == f"m{i}".encode()


def test_forward_secrecy_message_keys_are_gone_after_use() -> None:
    a, b, first = pair()
    m = a.encrypt(b"secret")
    assert b.decrypt(m) == b"secret"
    # compromising Bob's state now does not reopen messages already read
    stolen = Session.from_bytes(b.to_bytes())
    with pytest.raises(DecryptError):
        stolen.decrypt(m)
    with pytest.raises(DecryptError):
        stolen.decrypt(first)
    assert all(len(k) == 32 for k in stolen.skipped.values())


def test_tampered_message_rejected_and_state_untouched() -> None:
    a, b, _ = pair()
    m = bytearray(a.encrypt(b"payload"))
    before = b.to_bytes()
    for i in (len(m) - 1, len(m) - 20):
        bad = bytearray(m)
        bad[i] ^= 1
        with pytest.raises((DecryptError, ProtocolError)):
            b.decrypt(bytes(bad))
        assert b.to_bytes() == before
    assert b.decrypt(bytes(m)) == b"payload"
    with pytest.raises(DecryptError):  # replay
        b.decrypt(bytes(m))


def test_replayed_initial_message_cannot_start_a_second_session() -> None:
    alice, bob = party("dtn://alice/"), party("dtn://bob/")
    bundle, secrets = make_prekeys(bob.name, bob.sign, bob.x, one_time=1)
    first = start_session(alice.sign, alice.x, bundle).encrypt(b"x")
    accept_session(bob.x, bob.ed_pub, secrets, first)
    with pytest.raises(DecryptError):
        accept_session(bob.x, bob.ed_pub, secrets, first)


def test_prekey_bundle_signature_is_checked() -> None:
    bob = party("dtn://bob/")
    bundle, _ = make_prekeys(bob.name, bob.sign, bob.x)
    forged = dataclasses.replace(bundle, spk=bytes(32))
    with pytest.raises(Refused):
        PrekeyBundle.from_bytes(forged.to_bytes())
    with pytest.raises(ProtocolError):
        PrekeyBundle.from_bytes(b"\x00garbage")


def test_relay_sees_only_ciphertext() -> None:
    a, _, _ = pair()
    m = a.encrypt(b"meet at the north gate")
    assert b"north gate" not in m


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_decrypt_never_crashes(raw: bytes) -> None:
    _, b, _ = pair_cached()
    before = b.to_bytes()
    with pytest.raises((DecryptError, ProtocolError)):
        b.decrypt(raw)
    with pytest.raises((DecryptError, ProtocolError)):
        b.decrypt(cbor2.dumps([1, [raw[:32].ljust(32, b"\0"), 0, 1], None, raw]))
    assert b.to_bytes() == before


_PAIR: list[tuple[Session, Session, bytes]] = []


def pair_cached() -> tuple[Session, Session, bytes]:
    if not _PAIR:
        _PAIR.append(pair())
    return _PAIR[0]
