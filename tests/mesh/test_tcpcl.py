"""TCPCLv4 and MTCP cores: two endpoints in memory, whole and byte by byte, and fuzz."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fogctl.mesh.errors import ProtocolError
from fogctl.mesh.tcpcl import (
    BundleReceived,
    MtcpFramer,
    SessionEnded,
    SessionStarted,
    TcpclSession,
    TransferAcked,
)


def pump(a: TcpclSession, b: TcpclSession, *, bytewise: bool = False) -> tuple[list, list]:
    ea: list = []
    eb: list = []
    for _ in range(50):
        da, db = a.data_to_send(), b.data_to_send()
        if not da and not db:
            break
        if bytewise:
            for i in range(len(da)):
                eb += b.receive_data(da[i : i + 1])
            for i in range(len(db)):
                ea += a.receive_data(db[i : i + 1])
        else:
            eb += b.receive_data(da)
            ea += a.receive_data(db)
    return ea, eb


@pytest.mark.parametrize("bytewise", [False, True])
def test_session_transfer_and_termination(bytewise: bool) -> None:
    a = TcpclSession("dtn://a/", active=True, keepalive=10)
    b = TcpclSession("dtn://b/", active=False, segment_mru=100)
    tid = a.send_bundle(b"x" * 250)  # queued until the session is up
    ea, eb = pump(a, b, bytewise=bytewise)
    assert SessionStarted("dtn://b/", 10, 100, 64 << 20) in ea
    assert any(isinstance(e, SessionStarted) and e.peer_node_id == "dtn://a/" for e in eb)
    assert [e for e in eb if isinstance(e, BundleReceived)] == [BundleReceived(b"x" * 250, tid)]
    acks = [e for e in ea if isinstance(e, TransferAcked)]
    assert [x.length for x in acks] == [100, 200, 250]  # cumulative, one per segment
    b.send_bundle(b"back")
    ea, _ = pump(a, b, bytewise=bytewise)
    assert BundleReceived(b"back", 0) in ea
    a.close()
    ea, eb = pump(a, b)
    assert eb == [SessionEnded(0, by_peer=True)]
    assert ea == [SessionEnded(0, by_peer=False)]


def test_transfer_above_mru_is_refused() -> None:
    a = TcpclSession("dtn://a/", active=True)
    b = TcpclSession("dtn://b/", active=False, transfer_mru=10, segment_mru=5)
    a.send_bundle(b"y" * 30)
    ea, eb = pump(a, b)
    assert not [e for e in eb if isinstance(e, BundleReceived)]
    assert any(type(e).__name__ == "TransferRefused" for e in ea)


def test_bad_contact_header_rejected() -> None:
    b = TcpclSession("dtn://b/", active=False)
    with pytest.raises(ProtocolError):
        b.receive_data(b"GET / HTTP/1.1\r\n")
    c = TcpclSession("dtn://c/", active=False)
    with pytest.raises(ProtocolError):
        c.receive_data(b"dtn!\x03\x00")


def test_mtcp_framing_whole_and_split() -> None:
    f = MtcpFramer()
    bundles = [b"", b"a" * 23, b"b" * 24, b"c" * 300, b"d" * 70000]
    stream = b"".join(MtcpFramer.frame(x) for x in bundles)
    assert f.receive_data(stream) == bundles
    g = MtcpFramer()
    out = []
    for i in range(0, len(stream), 7):
        out += g.receive_data(stream[i : i + 7])
    assert out == bundles
    with pytest.raises(ProtocolError):
        MtcpFramer().receive_data(b"\x9f")
    with pytest.raises(ProtocolError):
        MtcpFramer(max_bundle=10).receive_data(b"\x5a\xff\xff\xff\xff")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_fuzz_tcpcl_established_session(raw: bytes) -> None:
    a = TcpclSession("dtn://a/", active=True)
    b = TcpclSession("dtn://b/", active=False)
    pump(a, b)
    try:
        b.receive_data(raw)
    except ProtocolError:
        assert b.state == "closed"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_fuzz_tcpcl_contact_and_mtcp(raw: bytes) -> None:
    for data in (raw, b"dtn!\x04\x00" + raw):
        with contextlib.suppress(ProtocolError):
            TcpclSession("dtn://b/", active=False).receive_data(data)
    with contextlib.suppress(ProtocolError):
        MtcpFramer(max_bundle=1 << 16).receive_data(raw)


def test_sess_init_wire_layout() -> None:
    a = TcpclSession("dtn://a/", active=True, keepalive=7, segment_mru=1000, transfer_mru=5000)
    b = TcpclSession("dtn://b/", active=False)
    b.receive_data(a.data_to_send())
    a.receive_data(b.data_to_send())
    init = a.data_to_send()
    assert init[0] == 7
    assert struct.unpack(">HQQH", init[1:21]) == (7, 1000, 5000, 8)
    assert init[21:29] == b"dtn://a/" and init[29:33] == b"\0\0\0\0"


def test_deferred_final_ack_waits_for_acknowledge() -> None:
    """With defer_ack the last segment's XFER_ACK (the one that lets the sender drop
    its copy) is sent only once the receiver says the bundle is durable."""
    a = TcpclSession("dtn://a/", active=True)
    b = TcpclSession("dtn://b/", active=False, segment_mru=100, defer_ack=True)
    tid = a.send_bundle(b"y" * 150)
    ea, eb = pump(a, b)
    assert BundleReceived(b"y" * 150, tid) in eb
    acks = [e for e in ea if isinstance(e, TransferAcked)]
    assert [x.length for x in acks] == [100]  # only the intermediate segment
    b.acknowledge(tid)
    ea, _ = pump(a, b)
    assert [e for e in ea if isinstance(e, TransferAcked)] == [TransferAcked(tid, 150)]
    b.acknowledge(tid)  # once only
    assert b.data_to_send() == b""
