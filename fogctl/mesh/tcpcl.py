"""Sans-IO convergence-layer cores: TCPCLv4 (RFC 9174, without TLS) and MTCP.

``receive_data(bytes)`` returns events; ``send_bundle(bytes)`` queues a transfer;
``data_to_send()`` drains the bytes to write. No sockets and no clock here.

TCPCLv4 session (RFC 9174 section 3, 4, 5), as implemented:

=================  ========================================================
state              rule
=================  ========================================================
``contact``        both sides send ``dtn!`` 0x04 flags; a bad magic or version
                   ends the session (the active side sends its header first)
``init``           both send SESS_INIT (keepalive, segment MRU, transfer MRU,
                   node ID); keepalive = min of both; our segments respect the
                   peer's segment MRU; transfers above our transfer MRU are
                   refused (XFER_REFUSE 0x02 "too large")
``established``    XFER_SEGMENT (START/END flags) is acknowledged with
                   XFER_ACK (cumulative length); KEEPALIVE ignored
``ending``         SESS_TERM answered with SESS_TERM(REPLY); then closed
=================  ========================================================

TLS (RFC 9174 section 4.4): with ``can_tls`` the contact header carries CAN_TLS; when
both headers do, :class:`TlsNegotiated` is returned and the session waits: the I/O
layer runs the TLS 1.3 handshake on the same connection (the active entity is the TLS
client) and calls :meth:`TcpclSession.tls_started`, after which SESS_INIT and
everything else travel inside TLS. When either side leaves the flag clear the session
goes on without TLS (the caller decides whether that is acceptable).

Session extension items (RFC 9174 section 4.8) in the peer's SESS_INIT are returned in
:class:`SessionStarted`; an unknown item flagged critical ends the session.

MTCP (draft-ietf-dtn-mtcpcl): each bundle is one CBOR byte string on the stream.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from fogctl.mesh.errors import ProtocolError

__all__ = [
    "BundleReceived",
    "MtcpFramer",
    "SessionEnded",
    "SessionStarted",
    "TcpclSession",
    "TlsNegotiated",
    "TransferAcked",
    "TransferRefused",
]

MAGIC = b"dtn!"
VERSION = 4
XFER_SEGMENT, XFER_ACK, XFER_REFUSE, KEEPALIVE, SESS_TERM, MSG_REJECT, SESS_INIT = range(1, 8)
FLAG_END, FLAG_START = 0x01, 0x02
TERM_REPLY = 0x01
REFUSE_EXTENSION_FAILURE, REFUSE_TOO_LARGE = 0x01, 0x02
CAN_TLS = 0x01
EXT_CRITICAL = 0x01
#: fogctl's session extension (private/experimental range, RFC 9174 section 9.6): the
#: active entity's certificate and a signature binding its node ID to the TLS session
EXT_FOGCTL_CLIENT_AUTH = 0xFC01
KNOWN_EXTENSIONS = frozenset({EXT_FOGCTL_CLIENT_AUTH})
MAX_NODE_ID = 1024
MAX_EXT_ITEMS = 64 * 1024


@dataclass(frozen=True, slots=True)
class TlsNegotiated:
    """Both contact headers set CAN_TLS: run the TLS handshake, then call
    :meth:`TcpclSession.tls_started`."""


@dataclass(frozen=True, slots=True)
class SessionStarted:
    peer_node_id: str
    keepalive: int
    peer_segment_mru: int
    peer_transfer_mru: int
    extensions: tuple[tuple[int, bytes], ...] = ()
    tls: bool = False


@dataclass(frozen=True, slots=True)
class BundleReceived:
    data: bytes
    transfer_id: int = 0


@dataclass(frozen=True, slots=True)
class TransferAcked:
    transfer_id: int
    length: int


@dataclass(frozen=True, slots=True)
class TransferRefused:
    transfer_id: int
    reason: int


@dataclass(frozen=True, slots=True)
class SessionEnded:
    reason: int
    by_peer: bool


Event = (
    TlsNegotiated | SessionStarted | BundleReceived | TransferAcked | TransferRefused | SessionEnded
)


def encode_extensions(items: list[tuple[int, bytes, bool]]) -> bytes:
    """Session/transfer extension items: (type, value, critical)."""
    out = bytearray()
    for etype, value, critical in items:
        out += struct.pack(">BHH", EXT_CRITICAL if critical else 0, etype, len(value)) + value
    return bytes(out)


def decode_extensions(data: bytes) -> list[tuple[int, bytes, bool]]:
    out: list[tuple[int, bytes, bool]] = []
    i = 0
    while i < len(data):
        if len(data) - i < 5:
            raise ProtocolError("TCPCL: truncated extension item", reason="session")
        flags, etype, n = struct.unpack(">BHH", data[i : i + 5])
        if len(data) - i - 5 < n:
            raise ProtocolError("TCPCL: extension item longer than its list", reason="session")
        out.append((etype, bytes(data[i + 5 : i + 5 + n]), bool(flags & EXT_CRITICAL)))
        i += 5 + n
    return out


class TcpclSession:
    """One TCPCLv4 session endpoint."""

    def __init__(
        self,
        node_id: str,
        *,
        active: bool,
        keepalive: int = 30,
        segment_mru: int = 1 << 20,
        transfer_mru: int = 64 << 20,
        defer_ack: bool = False,
        can_tls: bool = False,
    ) -> None:
        """``defer_ack``: the XFER_ACK of a transfer's last segment -- the one that tells
        the sender it may let go of the bundle -- is held until :meth:`acknowledge`
        (call it once the bundle is durably stored)."""
        if len(node_id.encode()) > MAX_NODE_ID:
            raise ValueError("node ID too long")
        self.node_id = node_id
        self.active = active
        self.keepalive = keepalive
        self.segment_mru = segment_mru
        self.transfer_mru = transfer_mru
        self.state = "contact"
        self.peer: SessionStarted | None = None
        self._buf = bytearray()
        self._out = bytearray()
        self._sent_header = False
        self._sent_init = False
        self._next_tid = 0
        self._rx_tid: int | None = None
        self._rx = bytearray()
        self._rx_refused: int | None = None
        self._pending: deque[bytes] = deque()
        self.defer_ack = defer_ack
        self._unacked: dict[int, tuple[int, int]] = {}
        self.can_tls = can_tls
        self.peer_can_tls: bool | None = None
        self.tls = False  # negotiated (both headers set CAN_TLS)
        self._extensions = b""
        if active:
            self._send_header()

    # -- output ------------------------------------------------------------------
    def _send_header(self) -> None:
        if not self._sent_header:
            self._out += MAGIC + bytes([VERSION, CAN_TLS if self.can_tls else 0])
            self._sent_header = True

    def _send_init(self) -> None:
        if not self._sent_init:
            nid = self.node_id.encode()
            self._out += (
                struct.pack(
                    ">BHQQH",
                    SESS_INIT,
                    self.keepalive,
                    self.segment_mru,
                    self.transfer_mru,
                    len(nid),
                )
                + nid
                + struct.pack(">I", len(self._extensions))
                + self._extensions
            )
            self._sent_init = True

    def tls_started(self, extensions: list[tuple[int, bytes, bool]] | None = None) -> None:
        """The TLS handshake after :class:`TlsNegotiated` finished; ``extensions`` go in
        our SESS_INIT (the active entity sends it now)."""
        if self.state != "tls":
            raise ValueError("tls_started() outside TLS negotiation")
        self._extensions = encode_extensions(extensions or [])
        self.state = "init"
        if self.active:
            self._send_init()

    def set_extensions(self, extensions: list[tuple[int, bytes, bool]]) -> None:
        """Session extension items for our SESS_INIT (before it is sent)."""
        self._extensions = encode_extensions(extensions)

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def send_bundle(self, data: bytes) -> int:
        """Queue a bundle transfer; returns its transfer ID."""
        if self.state in ("ending", "closed"):
            raise ProtocolError("session is ending", reason="session")
        tid = self._next_tid
        self._next_tid += 1
        if self.state != "established":
            self._pending.append(data)
            return tid
        self._segments(tid, data)
        return tid

    def _segments(self, tid: int, data: bytes) -> None:
        assert self.peer is not None
        mru = max(1, self.peer.peer_segment_mru)
        n = len(data)
        pos = 0
        first = True
        while first or pos < n:
            chunk = data[pos : pos + mru]
            flags = (FLAG_START if first else 0) | (FLAG_END if pos + len(chunk) >= n else 0)
            head = struct.pack(">BBQ", XFER_SEGMENT, flags, tid)
            if first:
                head += struct.pack(">I", 0)
            self._out += head + struct.pack(">Q", len(chunk)) + chunk
            pos += len(chunk)
            first = False

    def acknowledge(self, transfer_id: int) -> None:
        """Send the held final XFER_ACK of a received transfer (``defer_ack``)."""
        held = self._unacked.pop(transfer_id, None)
        if held is not None and self.state == "established":
            self._out += struct.pack(">BBQQ", XFER_ACK, held[0], transfer_id, held[1])

    def keepalive_due(self) -> None:
        if self.state == "established":
            self._out.append(KEEPALIVE)

    def close(self, reason: int = 0) -> None:
        if self.state == "established" or self.state == "init":
            self._out += struct.pack(">BBB", SESS_TERM, 0, reason)
            self.state = "ending"

    # -- input -------------------------------------------------------------------
    def receive_data(self, data: bytes) -> list[Event]:
        self._buf += data
        events: list[Event] = []
        while True:
            ev = self._step()
            if ev is None:
                break
            if not isinstance(ev, bool):
                events.append(ev)
            if self.state == "closed":
                break
        return events

    def _need(self, n: int) -> bytes | None:
        if len(self._buf) < n:
            return None
        return bytes(self._buf[:n])

    def _eat(self, n: int) -> None:
        del self._buf[:n]

    def _fail(self, message: str) -> ProtocolError:
        self.state = "closed"
        return ProtocolError(f"TCPCL: {message}", reason="session")

    def _step(self) -> Event | bool | None:
        if self.state in ("closed", "tls"):
            return None
        if self.state == "contact":
            h = self._need(6)
            if h is None:
                if self._buf and not MAGIC.startswith(bytes(self._buf[:4])):
                    raise self._fail("bad contact header magic")
                return None
            if h[:4] != MAGIC:
                raise self._fail("bad contact header magic")
            if h[4] != VERSION:
                raise self._fail(f"unsupported TCPCL version {h[4]}")
            self._eat(6)
            self._send_header()
            self.peer_can_tls = bool(h[5] & CAN_TLS)
            if self.can_tls and self.peer_can_tls:
                if self._buf:  # the TLS handshake starts only after both headers
                    raise self._fail("data after the contact header before TLS")
                self.tls = True
                self.state = "tls"
                return TlsNegotiated()
            if self.active:  # the passive side answers the active side's SESS_INIT
                self._send_init()
            self.state = "init"
            return True
        h = self._need(1)
        if h is None:
            return None
        mtype = h[0]
        if self.state == "init" and mtype != SESS_INIT:
            if mtype == SESS_TERM:
                pass
            else:
                raise self._fail(f"expected SESS_INIT, got message type {mtype}")
        if mtype == SESS_INIT:
            if self.state != "init":
                raise self._fail("SESS_INIT after session start")
            fixed = self._need(1 + 2 + 8 + 8 + 2)
            if fixed is None:
                return None
            _, ka, smru, tmru, nlen = struct.unpack(">BHQQH", fixed)
            if nlen > MAX_NODE_ID:
                raise self._fail("node ID too long")
            rest = self._need(21 + nlen + 4)
            if rest is None:
                return None
            (elen,) = struct.unpack(">I", rest[21 + nlen :])
            if elen > MAX_EXT_ITEMS:
                raise self._fail("session extension items too long")
            if self._need(25 + nlen + elen) is None:
                return None
            try:
                nid = rest[21 : 21 + nlen].decode()
            except UnicodeDecodeError:
                raise self._fail("node ID is not UTF-8") from None
            ext_raw = bytes(self._buf[25 + nlen : 25 + nlen + elen])
            self._eat(25 + nlen + elen)
            if smru == 0:
                raise self._fail("segment MRU of zero")
            try:
                items = decode_extensions(ext_raw)
            except ProtocolError:
                raise self._fail("malformed session extension items") from None
            for etype, _, critical in items:
                if critical and etype not in KNOWN_EXTENSIONS:
                    raise self._fail(f"unsupported critical session extension {etype:#x}")
            self._send_init()
            self.peer = SessionStarted(
                nid,
                min(ka, self.keepalive),
                smru,
                tmru,
                tuple((t, v) for t, v, _ in items),
                self.tls,
            )
            self.state = "established"
            pending, self._pending = self._pending, deque()
            for i, data in enumerate(pending):
                self._segments(self._next_tid - len(pending) + i, data)
            return self.peer
        if mtype == KEEPALIVE:
            self._eat(1)
            return True
        if mtype == SESS_TERM:
            m = self._need(3)
            if m is None:
                return None
            self._eat(3)
            reply = bool(m[1] & TERM_REPLY)
            if not reply and self.state != "ending":
                self._out += struct.pack(">BBB", SESS_TERM, TERM_REPLY, m[2])
            self.state = "closed"
            return SessionEnded(m[2], by_peer=not reply)
        if mtype == XFER_ACK:
            m = self._need(18)
            if m is None:
                return None
            self._eat(18)
            _, _, tid, length = struct.unpack(">BBQQ", m)
            return TransferAcked(tid, length)
        if mtype == XFER_REFUSE:
            m = self._need(10)
            if m is None:
                return None
            self._eat(10)
            return TransferRefused(struct.unpack(">Q", m[2:])[0], m[1])
        if mtype == MSG_REJECT:
            m = self._need(3)
            if m is None:
                return None
            self._eat(3)
            return True
        if mtype == XFER_SEGMENT:
            return self._segment()
        self._out += struct.pack(">BBB", MSG_REJECT, 0x01, mtype)
        raise self._fail(f"unknown message type {mtype}")

    def _segment(self) -> Event | bool | None:
        m = self._need(10)
        if m is None:
            return None
        _, flags, tid = struct.unpack(">BBQ", m)
        off = 10
        if flags & FLAG_START:
            e = self._need(14)
            if e is None:
                return None
            (elen,) = struct.unpack(">I", e[10:14])
            if elen > MAX_EXT_ITEMS:
                raise self._fail("transfer extension items too long")
            off = 14 + elen
        d = self._need(off + 8)
        if d is None:
            return None
        (dlen,) = struct.unpack(">Q", d[off:])
        if dlen > self.segment_mru:
            raise self._fail(f"segment of {dlen} bytes above our MRU {self.segment_mru}")
        if self._need(off + 8 + dlen) is None:
            return None
        chunk = bytes(self._buf[off + 8 : off + 8 + dlen])
        self._eat(off + 8 + dlen)
        if flags & FLAG_START:
            self._rx_tid, self._rx, self._rx_refused = tid, bytearray(), None
        elif self._rx_tid != tid:
            raise self._fail("segment for an unknown transfer")
        if self._rx_refused == tid:
            return True
        self._rx += chunk
        if len(self._rx) > self.transfer_mru:
            self._out += struct.pack(">BBQ", XFER_REFUSE, REFUSE_TOO_LARGE, tid)
            self._rx_refused = tid
            self._rx = bytearray()
            return True
        if flags & FLAG_END and self.defer_ack:
            self._unacked[tid] = (flags, len(self._rx))
        else:
            self._out += struct.pack(">BBQQ", XFER_ACK, flags, tid, len(self._rx))
        if flags & FLAG_END:
            data = bytes(self._rx)
            self._rx = bytearray()
            self._rx_tid = None
            return BundleReceived(data, tid)
        return True


class MtcpFramer:
    """MTCP: bundles as CBOR byte strings on a stream (what dtn7 and uD3TN speak)."""

    def __init__(self, max_bundle: int = 64 << 20) -> None:
        self.max_bundle = max_bundle
        self._buf = bytearray()

    @staticmethod
    def frame(bundle: bytes) -> bytes:
        n = len(bundle)
        if n < 24:
            head = bytes([0x40 | n])
        elif n < 0x100:
            head = bytes([0x58, n])
        elif n < 0x10000:
            head = b"\x59" + n.to_bytes(2, "big")
        elif n < 0x100000000:
            head = b"\x5a" + n.to_bytes(4, "big")
        else:
            head = b"\x5b" + n.to_bytes(8, "big")
        return head + bundle

    def receive_data(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while self._buf:
            b0 = self._buf[0]
            if b0 >> 5 != 2:
                raise ProtocolError("MTCP: expected a CBOR byte string", reason="session")
            info = b0 & 0x1F
            if info < 24:
                hl, n = 1, info
            elif info in (24, 25, 26, 27):
                hl = 1 + (1 << (info - 24))
                if len(self._buf) < hl:
                    break
                n = int.from_bytes(self._buf[1:hl], "big")
            else:
                raise ProtocolError("MTCP: indefinite or invalid length", reason="session")
            if n > self.max_bundle:
                raise ProtocolError(f"MTCP: {n}-byte bundle above the limit", reason="length")
            if len(self._buf) < hl + n:
                break
            out.append(bytes(self._buf[hl : hl + n]))
            del self._buf[: hl + n]
        return out
