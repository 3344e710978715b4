"""The bundle agent, three nodes in memory: A -> B -> C store-carry-forward with
end-to-end encryption, B restarted in between; hop limits, tampering, fragments."""

from __future__ import annotations

from pathlib import Path

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fogctl.errors import Refused
from fogctl.mesh.agent import Agent
from fogctl.mesh.bundle import decode_bundle, encode_bundle, new_bundle
from fogctl.mesh.ratchet import PrekeyBundle
from fogctl.state import State


def agent(tmp: Path, name: str, router: str = "epidemic") -> Agent:
    st, _ = State.create(tmp / name)
    return Agent(st, name, router)


def contact(a: Agent, b: Agent, now: int) -> int:
    """Run one contact both ways; returns bundles transferred."""
    ra, rb = a.contact_up(str(b.me), now), b.contact_up(str(a.me), now)
    assert b.receive(ra, now=now, peer=str(a.me)) == "routing"
    assert a.receive(rb, now=now, peer=str(b.me)) == "routing"
    n = 0
    for x, y in ((a, b), (b, a)):
        for bid, raw, drop in list(x.outgoing(str(y.me), now)):
            y.receive(raw, now=now, peer=str(x.me))
            x.forwarded(bid, drop=drop, now=now)
            n += 1
    a.contact_down(str(b.me), now)
    b.contact_down(str(a.me), now)
    return n


def introduce(sender: Agent, receiver: Agent) -> None:
    kb = PrekeyBundle.from_bytes(receiver.publish_keys().to_bytes())
    sender.remember_keys(kb, trusted=True)


def test_a_to_c_via_b_encrypted_with_b_restart(tmp_path: Path) -> None:
    a, b, c = agent(tmp_path, "a"), agent(tmp_path, "b"), agent(tmp_path, "c")
    introduce(a, c)
    c.publish_keys()
    sent = a.send("dtn://c/", b"meet at noon", now=1_000_000)
    assert sent.encrypted
    assert contact(a, b, 1_001_000) == 1
    raw = b.store.raw(b.store.ids()[0])
    assert b"meet at noon" not in raw  # the relay holds ciphertext only
    b.state.close()
    b = Agent(State(tmp_path / "b"), "b")  # restart: the bundle is still there
    assert len(b.store.ids()) == 1
    contact(b, c, 1_005_000)
    msgs = c.inbox()
    assert [m.sender for m in msgs] == ["dtn://a/"] and msgs[0].encrypted
    rec, data = c.read(msgs[0].id[:6])
    assert data == b"meet at noon" and rec.read
    # and back: C answers in the same session, A reads it
    c.send("dtn://a/", b"ok", now=1_006_000)
    contact(c, b, 1_007_000)
    contact(b, a, 1_008_000)
    assert a.read(a.inbox()[0].id)[1] == b"ok"


def test_send_without_trusted_key_is_refused(tmp_path: Path) -> None:
    a = agent(tmp_path, "a")
    with pytest.raises(Refused):
        a.send("dtn://z/", b"x", now=1)
    assert a.send("dtn://z/", b"x", now=1, encrypt=False).encrypted is False


def test_tampered_bundle_is_dropped_and_counted(tmp_path: Path) -> None:
    a, c = agent(tmp_path, "a"), agent(tmp_path, "c")
    introduce(a, c)
    a.send("dtn://c/", b"secret", now=1000)
    b = a.store.get(a.store.ids()[0])
    kind, body = cbor2.loads(b.payload)
    evil = bytearray(body)
    evil[-3] ^= 1
    tampered = b.replace_block(type(b.blocks[-1])(1, 1, cbor2.dumps([kind, bytes(evil)])))
    assert c.receive(encode_bundle(tampered), now=2000).startswith("dropped:decrypt")
    assert c.inbox() == [] and c.drops["decrypt"] == 1
    assert c.receive(b"\x9f\x00garbage", now=2000) == "dropped:cbor"


def test_hop_limit_and_expiry_drop(tmp_path: Path) -> None:
    b = agent(tmp_path, "b")
    looped = new_bundle("dtn://a/", "dtn://z/", b"x", now=1000, hop_limit=2)
    for _ in range(3):
        looped = looped.with_hop()
    assert b.receive(encode_bundle(looped), now=1000) == "dropped:hop-limit"
    old = new_bundle("dtn://a/", "dtn://z/", b"x", now=1000, lifetime_ms=10)
    assert b.receive(encode_bundle(old), now=5000) == "dropped:expired"
    assert b.drops["hop-limit"] == 1 and b.drops["expired"] == 1


def test_fragmented_message_reassembled_at_destination(tmp_path: Path) -> None:
    a, b, c = agent(tmp_path, "a"), agent(tmp_path, "b"), agent(tmp_path, "c")
    introduce(a, c)
    c.publish_keys()
    big = bytes(range(256)) * 100
    rec = a.send("dtn://c/", big, now=1000, fragment_size=4000)
    assert rec.fragments == 7
    contact(a, b, 2000)
    contact(b, c, 3000)
    assert c.read(c.inbox()[0].id)[1] == big


def test_spray_and_wait_copies_travel_in_extension_block(tmp_path: Path) -> None:
    a, b = agent(tmp_path, "a", "spray"), agent(tmp_path, "b", "spray")
    a.send("dtn://z/", b"x", now=1000, encrypt=False)
    contact(a, b, 2000)
    assert b.store.records()[0].copies == 4 and a.store.records()[0].copies == 4
    got = decode_bundle(b.store.raw(b.store.ids()[0]))
    assert got.hop_count == (7, 1) and str(got.previous_node) == "dtn://a/"


def test_delivery_status_report_comes_back(tmp_path: Path) -> None:
    a, c = agent(tmp_path, "a"), agent(tmp_path, "c")
    sent = a.send("dtn://c/", b"ack me", now=1000, encrypt=False, report=True)
    contact(a, c, 2000)  # delivers; c queues a "delivered" status report for a
    assert len(c.inbox()) == 1
    contact(c, a, 3000)  # the report travels back
    keys = [k for k in a.state.db.query("SELECT key FROM mesh_kv") if k[0].startswith("report:")]
    assert len(keys) == 1 and keys[0][0].startswith("report:dtn://a/inbox:1000:")
    status, reason, _ = cbor2.loads(a.store.kv_get(keys[0][0]) or b"")
    assert status == ["delivered"] and reason == 0
    assert sent.id not in a.store.ids()  # and the delivered bundle left a's store


_FUZZ: list[Agent] = []


def fuzz_agent() -> Agent:
    if not _FUZZ:
        import tempfile

        _FUZZ.append(agent(Path(tempfile.mkdtemp(prefix="mesh-fuzz-")), "f"))
    return _FUZZ[0]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200), st.binary(max_size=120))
def test_fuzz_agent_receive_never_crashes(raw: bytes, payload: bytes) -> None:
    a = fuzz_agent()
    before = a.drops.total()
    for data in (raw, b"\x9f" + raw):
        out = a.receive(data, now=10_000, peer="dtn://p/")
        assert out.startswith("dropped:") or out in {
            "stored",
            "delivered",
            "routing",
            "duplicate",
            "fragment",
        }
    # well-formed bundles with arbitrary payloads, to our inbox and routing endpoints
    for dest in ("dtn://f/inbox", "dtn://f/~routing"):
        b = new_bundle("dtn://p/", dest, payload, now=10_000, sequence=len(payload))
        out = a.receive(encode_bundle(b), now=10_001, peer="dtn://p/")
        assert out.startswith("dropped:") or out in {"delivered", "routing", "duplicate"}
    assert a.drops.total() >= before


def test_concurrent_senders_share_one_ratchet_without_losing_steps(tmp_path: Path) -> None:
    import threading

    a, c = agent(tmp_path, "a"), agent(tmp_path, "c")
    introduce(a, c)
    c.publish_keys()
    a.send("dtn://c/", b"first", now=1000)

    def worker(tag: str) -> None:
        me = Agent(State(tmp_path / "a"), "a")  # its own connection, like `mesh send`
        for i in range(8):
            me.send("dtn://c/", f"{tag}{i}".encode(), now=2000 + i)

    threads = [threading.Thread(target=worker, args=(t,)) for t in "xy"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(a.store.ids()) == 17  # no two bundles got the same ID
    contact(a, c, 3000)
    texts = sorted(c.read(m.id)[1] for m in c.inbox())
    assert len(texts) == 17 and c.drops.total() == 0
    assert texts[0] == b"first"


def test_prophet_forwards_along_the_gradient_and_acks_clear_copies(tmp_path: Path) -> None:
    a, b, c, d = (agent(tmp_path, n, "prophet") for n in "abcd")
    contact(b, c, 1000)  # b has met c: P(b,c) = 0.5
    a.send("dtn://c/", b"x", now=2000, encrypt=False)
    assert contact(a, d, 3000) == 0  # d never met c: P(d,c) = 0, not better than a's
    contact(a, b, 4000)
    assert len(b.store.ids()) == 1 and len(a.store.ids()) == 1  # GRTR copies, a keeps one
    contact(b, c, 5000)
    assert len(c.inbox()) == 1 and b.store.ids() == []
    contact(c, b, 6000)
    contact(b, a, 7000)  # the delivery acknowledgement reaches a, which drops its copy
    assert a.store.ids() == []
    assert 0 < a.router.p["dtn://c/"] < b.router.p["dtn://c/"]  # type: ignore[attr-defined]
