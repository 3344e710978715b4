"""TCPCLv4 TLS (RFC 9174 4.4): CAN_TLS negotiation, TLS 1.3 between real nodes on
loopback with both node IDs authenticated and pinned, fallback for peers without TLS,
``require`` refusing them, a changed key refused, and the authentication item."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fogctl.mesh.agent import dtn_now
from fogctl.mesh.errors import ProtocolError
from fogctl.mesh.node import MeshNode, NodeConfig
from fogctl.mesh.tcpcl import (
    EXT_FOGCTL_CLIENT_AUTH,
    SessionStarted,
    TcpclSession,
    TlsNegotiated,
    decode_extensions,
    encode_extensions,
)
from fogctl.mesh.tls import (
    client_auth_item,
    credentials,
    spki_sha256,
    verify_client_auth,
    verify_server_cert,
)
from fogctl.state import State


def test_can_tls_negotiation() -> None:
    a = TcpclSession("dtn://a/", active=True, can_tls=True)
    b = TcpclSession("dtn://b/", active=False, can_tls=True)
    assert a.data_to_send() == b"dtn!\x04\x01"  # CAN_TLS in the contact header
    assert b.receive_data(b"dtn!\x04\x01") == [TlsNegotiated()]
    assert b.data_to_send() == b"dtn!\x04\x01"
    assert a.receive_data(b"dtn!\x04\x01") == [TlsNegotiated()]
    assert a.data_to_send() == b""  # SESS_INIT waits for the handshake
    assert a.receive_data(b"\x07") == []  # nothing is parsed while TLS is pending
    a2 = TcpclSession("dtn://a/", active=True, can_tls=True)
    a2.data_to_send()
    a2.receive_data(b"dtn!\x04\x01")
    a2.tls_started([(EXT_FOGCTL_CLIENT_AUTH, b"proof", False)])
    b.tls_started()
    evs = b.receive_data(a2.data_to_send())
    started = [e for e in evs if isinstance(e, SessionStarted)]
    assert started and started[0].tls and started[0].extensions == ((0xFC01, b"proof"),)
    # one side without CAN_TLS: plain session, SESS_INIT at once
    c = TcpclSession("dtn://c/", active=True, can_tls=True)
    c.data_to_send()
    assert c.receive_data(b"dtn!\x04\x00") == []
    assert not c.tls and c.data_to_send()[:1] == b"\x07"


def test_unknown_critical_extension_ends_the_session() -> None:
    a = TcpclSession("dtn://a/", active=True)
    b = TcpclSession("dtn://b/", active=False)
    a.set_extensions([(0x1234, b"x", True)])
    b.receive_data(a.data_to_send())
    a.receive_data(b.data_to_send())
    with pytest.raises(ProtocolError, match="critical"):
        b.receive_data(a.data_to_send())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_extension_items(raw: bytes) -> None:
    try:
        items = decode_extensions(raw)
    except ProtocolError:
        return
    assert encode_extensions(items) == raw


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_fuzz_session_offering_tls(raw: bytes, active: bool) -> None:
    """Any bytes into a session that offers TLS: events or a ProtocolError, no crash;
    after TlsNegotiated nothing more is parsed until tls_started()."""
    s = TcpclSession("dtn://a/", active=active, can_tls=True)
    try:
        events = s.receive_data(raw)
    except ProtocolError:
        return
    if TlsNegotiated() in events:
        assert s.state == "tls" and events[-1] == TlsNegotiated()


def test_authentication_item_is_bound_to_session_and_node_id(fog_home: Path) -> None:
    st, _ = State.create(fog_home)
    creds = credentials(st, "dtn://alice/")
    item = client_auth_item(creds, b"binding-1", "dtn://alice/")
    pin = verify_client_auth(item, b"binding-1", "dtn://alice/")
    assert pin == spki_sha256(creds.cert_der)
    with pytest.raises(ProtocolError, match="does not verify"):
        verify_client_auth(item, b"binding-2", "dtn://alice/")  # relayed to another session
    with pytest.raises(ProtocolError, match="not dtn://mallory/"):
        verify_client_auth(item, b"binding-1", "dtn://mallory/")
    with pytest.raises(ProtocolError, match="malformed"):
        verify_client_auth(b"\xff", b"binding-1", "dtn://alice/")
    with pytest.raises(ProtocolError, match="did not authenticate"):
        verify_client_auth(None, b"binding-1", "dtn://alice/")
    assert verify_server_cert(creds.cert_der, "dtn://alice/") == pin
    with pytest.raises(ProtocolError):
        verify_server_cert(creds.cert_der, "dtn://bob/")
    # same key across restarts and renames; the certificate follows the name
    again = credentials(st, "dtn://alice/")
    assert again.cert_der == creds.cert_der
    renamed = credentials(st, "dtn://alicia/")
    assert spki_sha256(renamed.cert_der) == pin and renamed.cert_der != creds.cert_der


async def _pair(
    tmp: Path,
    *,
    a_home: str = "a",
    a_tls: str = "on",
    b_tls: str = "on",
    until: Callable[[MeshNode, MeshNode], bool],
    logs: list[str],
    timeout: float = 15.0,
) -> tuple[MeshNode, MeshNode]:
    """Node a listens, node b dials it; run until ``until(a, b)`` or ``timeout``."""
    ha, hb = tmp / a_home, tmp / "b"
    sa = State(ha) if (ha / "state.db").exists() else State.create(ha)[0]
    sb = State(hb) if (hb / "state.db").exists() else State.create(hb)[0]
    a = MeshNode(sa, NodeConfig("a", tcpcl="127.0.0.1:0", poll=0.05, tls=a_tls), log=logs.append)
    stop = asyncio.Event()
    ta = asyncio.ensure_future(a.serve(stop))
    deadline = time.monotonic() + timeout
    while "tcpcl" not in a.bound and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    port = a.bound["tcpcl"][1]
    b = MeshNode(
        sb,
        NodeConfig("b", tcpcl="off", poll=0.05, peers=[f"tcpcl://127.0.0.1:{port}"], tls=b_tls),
        log=logs.append,
    )
    tb = asyncio.ensure_future(b.serve(stop))
    while not until(a, b) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.gather(ta, tb)
    return a, b


def _pins(node: MeshNode) -> dict[str, str]:
    return {r[0]: r[1] for r in node.state.db.query("SELECT node, spki FROM mesh_tls_pins")}


def test_tls_between_nodes_authenticates_both_ids(tmp_path: Path) -> None:
    sb, _ = State.create(tmp_path / "b")
    from fogctl.mesh import api

    api._agent(sb, "b").send("dtn://a/", b"over tls", now=dtn_now(), encrypt=False)
    sb.close()
    seen: dict[str, bool] = {}

    def done(a: MeshNode, b: MeshNode) -> bool:
        for n in (a, b):
            for link in n.links.values():
                seen[n.config.name] = link.tls
        return bool(a.agent.inbox())

    logs: list[str] = []
    a, b = asyncio.run(_pair(tmp_path, until=done, logs=logs))
    assert [m.sender for m in a.agent.inbox()] == ["dtn://b/"]
    assert seen == {"a": True, "b": True}, logs
    assert any("TLS 1.3, node ID authenticated" in line for line in logs)
    # each side pinned the other's key, the one its certificate carries
    ca = credentials(a.state, "dtn://a/")
    cb = credentials(b.state, "dtn://b/")
    assert _pins(b) == {"dtn://a/": spki_sha256(ca.cert_der)}
    assert _pins(a) == {"dtn://b/": spki_sha256(cb.cert_der)}
    assert {p.convergence_layer for p in a.agent.peers()} == {"tcpcl+tls"}


def test_plain_peer_falls_back_and_require_refuses_it(tmp_path: Path) -> None:
    sb, _ = State.create(tmp_path / "b")
    from fogctl.mesh import api

    api._agent(sb, "b").send("dtn://a/", b"plain", now=dtn_now(), encrypt=False)
    sb.close()
    logs: list[str] = []
    a, _ = asyncio.run(
        _pair(tmp_path, b_tls="off", until=lambda a, b: bool(a.agent.inbox()), logs=logs)
    )
    assert len(a.agent.inbox()) == 1
    assert any("(no TLS)" in line for line in logs)
    # a node that requires TLS refuses the same peer; the bundle stays with b
    logs2: list[str] = []
    a2, _ = asyncio.run(
        _pair(
            tmp_path,
            a_home="a2",
            a_tls="require",
            b_tls="off",
            until=lambda a, b: any("refusing" in x for x in logs2),
            logs=logs2,
        )
    )
    assert any("refusing dtn://b/: no TLS" in x for x in logs2), logs2
    assert a2.agent.inbox() == [] and not a2.links


def test_changed_key_for_a_pinned_node_is_refused(tmp_path: Path) -> None:
    logs: list[str] = []
    _, b = asyncio.run(_pair(tmp_path, until=lambda a, b: bool(b.links and a.links), logs=logs))
    assert "dtn://a/" in _pins(b)
    # another state directory (another key) claims to be dtn://a/ to the same b
    logs2: list[str] = []
    asyncio.run(
        _pair(
            tmp_path,
            a_home="impostor",
            until=lambda a, b: any("differs from the key pinned" in x for x in logs2),
            logs=logs2,
        )
    )
    assert any("refusing dtn://a/: its TLS key" in x for x in logs2), logs2


def test_pin_commands(cli: Any) -> None:
    run = cli
    assert run("init").code == 0
    st = run("mesh", "status", "--json").record()
    assert st["tls_key"] is None  # no key until the node first speaks TLS
    assert run("mesh", "keys", "publish", "--json").code == 0
    st = run("mesh", "status", "--json").record()
    assert isinstance(st["tls_key"], str) and len(st["tls_key"]) == 64
    key = "ab" * 32
    res = run("mesh", "keys", "pin", "bob", key, "--json")
    assert res.code == 0, res.stderr
    assert res.record()["node"] == "dtn://bob/" and res.record()["tls_key"] == key
    listed = run("mesh", "keys", "pins", "--json").records()
    assert [(r["node"], r["tls_key"]) for r in listed] == [("dtn://bob/", key)]
    bad = run("mesh", "keys", "pin", "bob", "xyz")
    assert bad.code == 2 and "64 hex" in bad.stderr
    assert run("mesh", "keys", "unpin", "dtn://bob/").code == 0
    again = run("mesh", "keys", "unpin", "bob")
    assert again.code == 2 and "no TLS key pinned" in again.stderr


def test_key_pinned_in_advance_refuses_another(tmp_path: Path) -> None:
    """A closed pin set: b expects a different key for dtn://a/ than a has."""
    from fogctl.mesh import api

    sb, _ = State.create(tmp_path / "b")
    api.tls_pin(sb, "a", "00" * 32)
    sb.close()
    logs: list[str] = []
    asyncio.run(
        _pair(
            tmp_path,
            until=lambda a, b: any("differs from the key pinned" in x for x in logs),
            logs=logs,
        )
    )
    assert any("refusing dtn://a/: its TLS key" in x for x in logs), logs
    sa = State(tmp_path / "a")
    assert api.status(sa).tls_key == spki_sha256(credentials(sa, "dtn://a/").cert_der)
