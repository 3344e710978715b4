"""``fogctl mesh serve``: the asyncio edge around :class:`fogctl.mesh.agent.Agent`.

Convergence layers (each a small adapter feeding the sans-IO cores):

* TCPCLv4 (RFC 9174) listener and outbound sessions to ``tcpcl://HOST:PORT`` peers;
  each session runs the fogctl routing exchange, then forwards what the router picks;
  a bundle whose last copy is handed over is deleted only after its XFER_ACK;
* MTCP listener and ``mtcp://HOST:PORT/NAME`` peers (bundles as CBOR byte strings;
  no handshake, so the peer's node name is configured);
* UDP listener and ``udp://HOST:PORT/NAME`` peers (one bundle per datagram; larger
  bundles are fragmented to fit);
* optional mDNS discovery (``zeroconf``): this node announces
  ``NAME._dtn-tcpcl._tcp.local.`` and connects to the TCPCL nodes it finds.

Every ``poll`` seconds the node purges expired bundles, offers newly stored bundles
(``mesh send`` in another process writes them to the shared store) to current
contacts, sends TCPCL keepalives and redials configured peers. SIGTERM/SIGINT stop
it cleanly: sessions get SESS_TERM, listeners close, the store is already durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fogctl.errors import FogError, InvalidInput
from fogctl.hostport import parse_hostport
from fogctl.mesh.agent import Agent, dtn_now
from fogctl.mesh.bundle import EID, decode_bundle, fragment
from fogctl.mesh.errors import ProtocolError
from fogctl.mesh.tcpcl import (
    EXT_FOGCTL_CLIENT_AUTH,
    BundleReceived,
    MtcpFramer,
    SessionEnded,
    SessionStarted,
    TcpclSession,
    TlsNegotiated,
    TransferAcked,
    TransferRefused,
)
from fogctl.mesh.transport import Transport
from fogctl.state import State

__all__ = ["MeshNode", "NodeConfig", "Peer", "parse_peer"]

UDP_MAX = 60_000


@dataclass(frozen=True, slots=True)
class Peer:
    cl: str  # tcpcl, mtcp, udp
    host: str
    port: int
    name: str | None = None  # node EID for mtcp/udp peers

    @property
    def address(self) -> str:
        return f"{self.cl}://{self.host}:{self.port}"


def parse_peer(text: str) -> Peer:
    """``tcpcl://HOST:PORT``, ``mtcp://HOST:PORT/NAME`` or ``udp://HOST:PORT/NAME``."""
    u = urlsplit(text)
    if u.scheme not in ("tcpcl", "mtcp", "udp") or not u.hostname:
        raise InvalidInput(
            f"bad peer {text!r}: expected tcpcl://HOST:PORT, "
            "mtcp://HOST:PORT/NAME or udp://HOST:PORT/NAME"
        )
    try:
        port = u.port
    except ValueError:
        port = None
    if not port:
        raise InvalidInput(f"bad peer {text!r}: missing or invalid port")
    name = u.path.strip("/") or None
    if u.scheme != "tcpcl" and not name:
        raise InvalidInput(f"bad peer {text!r}: {u.scheme} peers need /NAME (no handshake)")
    node = str(EID.parse(f"dtn://{name}/")) if name else None
    return Peer(u.scheme, u.hostname, port, node)


def _hostport(text: str | None, default_port: int) -> tuple[str, int] | None:
    """A listen address (``HOST:PORT``, ``HOST``, port 0 = any), or None for ``off``."""
    if text is None or text == "" or text == "off":
        return None
    return parse_hostport(
        text, what="listen address", default_port=default_port, default_host="", any_port=True
    )


@dataclass
class NodeConfig:
    name: str
    router: str = "epidemic"
    router_options: dict[str, float | str] = field(default_factory=dict)
    tcpcl: str | None = "127.0.0.1:4556"
    mtcp: str | None = None
    udp: str | None = None
    peers: list[str] = field(default_factory=list)
    poll: float = 1.0
    mdns: bool = False
    quota: int = 256 * 1024 * 1024
    transports: list[str] = field(default_factory=list)  # fogctl.transports entry points
    tls: str = "on"  # TCPCL TLS: on, require, off (see fogctl.mesh.tls)
    group_commit: bool = True  # False: one transaction per bundle (benchmark reference)


@dataclass
class _Link:
    peer: str
    address: str
    sess: TcpclSession
    writer: asyncio.StreamWriter
    inflight: dict[int, tuple[str, bool, int]] = field(default_factory=dict)
    last_keepalive: float = field(default_factory=time.monotonic)
    tls: bool = False  # TLS 1.3 with the peer's node ID authenticated


class MeshNode:
    """A running DTN node."""

    def __init__(
        self,
        state: State,
        config: NodeConfig,
        log: Callable[[str], None] | None = None,
        transports: list[Transport] | None = None,
    ) -> None:
        self.state = state
        self.config = config
        self.peers = [parse_peer(p) for p in config.peers]
        self.tcpcl_addr = _hostport(config.tcpcl, 4556)
        self.mtcp_addr = _hostport(config.mtcp, 4224)
        self.udp_addr = _hostport(config.udp, 4556)
        self.agent = Agent(
            state, config.name, config.router, dict(config.router_options), quota=config.quota
        )
        self.links: dict[str, _Link] = {}
        self._dialing: set[Peer] = set()
        self._log = log or (lambda m: print(m, file=sys.stderr, flush=True))
        self._udp: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.bound: dict[str, tuple[str, int]] = {}
        self.transports: list[Transport] = list(transports or [])
        self._drops_logged: dict[str, int] = {}
        if config.tls not in ("on", "require", "off"):
            raise InvalidInput("--tls must be on, require or off (mesh.tls)")
        self._tls_creds: Any = None
        for name in config.transports:
            self.transports.append(_load_transport(name))

    def log(self, msg: str) -> None:
        self._log(f"mesh[{self.config.name}]: {msg}")

    # -- lifecycle -------------------------------------------------------------------
    async def serve(self, stop: asyncio.Event) -> None:
        servers: list[asyncio.Server] = []
        self.agent.publish_keys()
        self.agent.store.gc()
        if self.tcpcl_addr:
            srv = await asyncio.start_server(self._tcpcl_accept, *self.tcpcl_addr)
            servers.append(srv)
            self._announce("tcpcl", srv)
        if self.mtcp_addr:
            srv = await asyncio.start_server(self._mtcp_accept, *self.mtcp_addr)
            servers.append(srv)
            self._announce("mtcp", srv)
        loop = asyncio.get_running_loop()
        if self.udp_addr:
            tr, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=self.udp_addr
            )
            self._udp = tr
            addr = tr.get_extra_info("sockname")
            self.bound["udp"] = (addr[0], addr[1])
            self.log(f"udp listening on {addr[0]}:{addr[1]}")
        mdns = await self._start_mdns() if self.config.mdns else None
        for plugin in self.transports:
            self._spawn(self._run_transport(plugin, stop))
        self.log(f"node dtn://{self.config.name}/ router {self.config.router} ready")
        try:
            while not stop.is_set():
                self._tick()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.poll)
        finally:
            for link in list(self.links.values()):
                link.sess.close()
                with contextlib.suppress(Exception):
                    link.writer.write(link.sess.data_to_send())
                    link.writer.close()
            for srv in servers:
                srv.close()
            await asyncio.sleep(0)  # let plugin transports see stop and return
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self._udp is not None:
                self._udp.close()
            if mdns is not None:
                await mdns.async_close()
            self._report_drops()
            self.log("stopped")

    def _announce(self, cl: str, srv: asyncio.Server) -> None:
        sock = srv.sockets[0].getsockname()
        self.bound[cl] = (sock[0], sock[1])
        self.log(f"{cl} listening on {sock[0]}:{sock[1]}")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        t: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    def _report_drops(self) -> None:
        """Log and persist the drop counters when they changed (kv ``drops``)."""
        drops = dict(sorted(self.agent.drops.items()))
        if drops != self._drops_logged:
            self._drops_logged = drops
            self.log("dropped so far: " + ", ".join(f"{k}={v}" for k, v in drops.items()))
            self.agent.record_drops()

    def _tick(self) -> None:
        now = dtn_now()
        purged = self.agent.store.purge_expired(now)
        if purged:
            self.log(f"purged {len(purged)} expired bundle(s)")
        self._report_drops()
        for link in list(self.links.values()):
            ka = link.sess.peer.keepalive if link.sess.peer else 0
            if ka and time.monotonic() - link.last_keepalive >= ka:
                link.sess.keepalive_due()
                link.last_keepalive = time.monotonic()
            self._offer(link)
        connected = {lk.address for lk in self.links.values()}
        for p in self.peers:
            if p.cl == "tcpcl":
                if p.address not in connected and p not in self._dialing:
                    self._dialing.add(p)
                    self._spawn(self._dial(p))
            elif p.name is not None:
                self._push_blind(p)

    # -- TCPCL -----------------------------------------------------------------------
    async def _dial(self, p: Peer) -> None:
        try:
            from fogctl.net import open_connection

            reader, writer = await asyncio.wait_for(open_connection(p.host, p.port), 5)
        except (TimeoutError, OSError, FogError):
            self._dialing.discard(p)
            return
        try:
            await self._tcpcl_run(reader, writer, active=True, address=p.address)
        finally:
            self._dialing.discard(p)

    async def _tcpcl_accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        address = f"tcpcl://{peer[0]}:{peer[1]}" if peer else "tcpcl://?"
        # finish normally when cancelled at shutdown: asyncio's accept callback would
        # otherwise log the CancelledError as an error
        with contextlib.suppress(asyncio.CancelledError):
            await self._tcpcl_run(reader, writer, active=False, address=address)

    async def _tcpcl_run(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        active: bool,
        address: str,
    ) -> None:
        sess = TcpclSession(
            str(self.agent.me), active=active, defer_ack=True, can_tls=self.config.tls != "off"
        )
        link: _Link | None = None
        tls: tuple[bytes | None, bytes] | None = None  # (peer certificate, channel binding)
        try:
            writer.write(sess.data_to_send())
            await writer.drain()
            while True:
                # RFC 9174 5.1.1: no traffic for twice the keepalive interval ends the
                # session; the handshake itself must finish within 10 seconds
                if sess.peer is None:
                    limit: float | None = 10.0
                else:  # a keepalive of 0 disables keepalives and the idle timeout
                    limit = 2.0 * sess.peer.keepalive if sess.peer.keepalive else None
                try:
                    data = await asyncio.wait_for(reader.read(1 << 20), limit)
                except TimeoutError:
                    self.log(f"{address}: idle timeout")
                    sess.close(reason=1)  # idle timeout
                    writer.write(sess.data_to_send())
                    break
                if not data:
                    break
                try:
                    events = sess.receive_data(data)
                except ProtocolError as exc:
                    self.agent.drops.drop(exc)
                    self.log(f"{address}: {exc}")
                    break
                if events and isinstance(events[-1], TlsNegotiated):
                    tls = await self._start_tls(sess, writer, active)
                    continue
                got: list[int] = []
                offer: set[str] = set()
                # group commit: every bundle and acknowledgement of this read in one
                # transaction; the final XFER_ACKs go out only once it has committed
                batch = events and self.config.group_commit
                with self.agent.store.batch() if batch else contextlib.nullcontext():
                    for ev in events:
                        if isinstance(ev, SessionStarted):
                            link = self._session_up(ev, sess, writer, address, active, tls)
                            if link is None:
                                sess.close(reason=0)
                        elif isinstance(ev, BundleReceived):
                            got.append(ev.transfer_id)
                            if link is not None:
                                offer |= self._handle(ev.data, link.peer)
                        elif isinstance(ev, TransferAcked) and link is not None:
                            info = link.inflight.get(ev.transfer_id)
                            if info is not None and ev.length >= info[2]:
                                del link.inflight[ev.transfer_id]
                                self.agent.forwarded(info[0], drop=info[1], now=dtn_now())
                        elif isinstance(ev, TransferRefused) and link is not None:
                            link.inflight.pop(ev.transfer_id, None)
                        elif isinstance(ev, SessionEnded):
                            break
                for tid in got:
                    sess.acknowledge(tid)
                self._offer_to(offer)
                out = sess.data_to_send()
                if out:
                    writer.write(out)
                    await writer.drain()
                if sess.state == "closed":
                    break
        except ssl.SSLError as exc:
            self.log(f"{address}: TLS handshake failed: {exc.reason or exc}")
        except (ConnectionError, OSError, TimeoutError):
            pass
        except FogError as exc:  # e.g. the state database stayed locked: nothing acked
            self.log(f"{address}: {exc}")
        finally:
            if link is not None and self.links.get(link.peer) is link:
                del self.links[link.peer]
                self.agent.contact_down(link.peer, dtn_now())
                self.log(f"contact with {link.peer} ended")
            with contextlib.suppress(Exception):
                writer.close()

    def _tls_credentials(self) -> Any:
        if self._tls_creds is None:
            from fogctl.mesh.tls import credentials

            self._tls_creds = credentials(self.state, str(self.agent.me))
        return self._tls_creds

    async def _start_tls(
        self, sess: TcpclSession, writer: asyncio.StreamWriter, active: bool
    ) -> tuple[bytes | None, bytes]:
        """RFC 9174 4.4: TLS 1.3 right after the contact headers (the active entity is
        the client); the active side then signs the session into its SESS_INIT."""
        from fogctl.mesh.tls import client_auth_item, client_context, server_context

        creds = self._tls_credentials()
        out = sess.data_to_send()  # our contact header goes out in the clear
        if out:
            writer.write(out)
            await writer.drain()
        ctx = client_context(creds) if active else server_context(creds)
        await asyncio.wait_for(writer.start_tls(ctx), 10)
        sslobj = writer.get_extra_info("ssl_object")
        binding = sslobj.get_channel_binding("tls-unique") or b""
        cert = sslobj.getpeercert(binary_form=True)
        ext = []
        if active:
            item = client_auth_item(creds, binding, str(self.agent.me))
            ext.append((EXT_FOGCTL_CLIENT_AUTH, item, False))
        sess.tls_started(ext)
        out = sess.data_to_send()
        if out:
            writer.write(out)
            await writer.drain()
        return cert, binding

    def _authenticate(
        self, ev: SessionStarted, peer: str, active: bool, tls: tuple[bytes | None, bytes] | None
    ) -> bool:
        """TLS sessions: the peer's node ID must be proven (certificate SAN for the
        passive peer, channel-bound signature for the active one) and match its pin."""
        if not ev.tls or tls is None:
            if self.config.tls == "require":
                self.log(f"refusing {peer}: no TLS (mesh.tls = require)")
                return False
            return True
        from fogctl.mesh.tls import check_pin, verify_client_auth, verify_server_cert

        cert, binding = tls
        try:
            if active:
                key_pin = verify_server_cert(cert, ev.peer_node_id)
            else:
                item = dict(ev.extensions).get(EXT_FOGCTL_CLIENT_AUTH)
                key_pin = verify_client_auth(item, binding, ev.peer_node_id)
        except ProtocolError as exc:
            self.agent.drops.drop(exc)
            self.log(f"refusing {peer}: {exc}")
            return False
        if not check_pin(self.agent.store, peer, key_pin):
            self.agent.drops.drop("tls-pin")
            self.log(
                f"refusing {peer}: its TLS key {key_pin[:16]}... differs from the key "
                "pinned for it (mesh_tls_pins)"
            )
            return False
        return True

    def _session_up(
        self,
        ev: SessionStarted,
        sess: TcpclSession,
        writer: asyncio.StreamWriter,
        address: str,
        active: bool = False,
        tls: tuple[bytes | None, bytes] | None = None,
    ) -> _Link | None:
        try:
            peer = str(EID.parse(ev.peer_node_id).node)
        except ProtocolError:
            self.log(f"{address}: peer node ID {ev.peer_node_id!r} is not an EID")
            return None
        if peer == str(self.agent.me) or peer in self.links:
            return None  # ourselves, or a second session with the same node
        if not self._authenticate(ev, peer, active, tls):
            return None
        link = _Link(peer, address, sess, writer, tls=ev.tls)
        self.links[peer] = link
        now = dtn_now()
        cl = "tcpcl+tls" if ev.tls else "tcpcl"
        self.agent.note_peer(peer, address, cl, time.time())
        sess.send_bundle(self.agent.contact_up(peer, now))
        how = "TLS 1.3, node ID authenticated" if ev.tls else "no TLS"
        self.log(f"contact with {peer} at {address} ({how})")
        return link

    def _handle(self, raw: bytes, peer: str | None) -> set[str]:
        """Process one received bundle; returns the peers to offer bundles to next."""
        result = self.agent.receive(raw, now=dtn_now(), peer=peer)
        if result.startswith("dropped"):
            self.log(f"bundle from {peer or 'unknown'} {result}")
        elif result == "routing" and peer is not None:
            return {peer}
        elif result in ("stored", "delivered"):
            if result == "delivered":
                self.log(f"delivered a bundle from {peer or 'unknown'} to the inbox")
            return set(self.links)
        return set()

    def _offer_to(self, peers: set[str]) -> None:
        for peer in peers:
            link = self.links.get(peer)
            if link is not None:
                self._offer(link)

    def _received(self, raw: bytes, peer: str | None) -> None:
        self._offer_to(self._handle(raw, peer))

    def _offer(self, link: _Link) -> None:
        if not self.agent.ready(link.peer) or link.sess.state != "established":
            return
        now = dtn_now()
        sent = 0
        for bid, raw, drop in self.agent.outgoing(link.peer, now):
            tid = link.sess.send_bundle(raw)
            link.inflight[tid] = (bid, drop, len(raw))
            sent += 1
        out = link.sess.data_to_send()
        if out:
            link.writer.write(out)
        if sent:
            self.log(f"forwarded {sent} bundle(s) to {link.peer}")

    # -- MTCP and UDP ----------------------------------------------------------------
    async def _mtcp_accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        framer = MtcpFramer()
        try:
            while data := await reader.read(1 << 16):
                offer: set[str] = set()
                with self.agent.store.batch():
                    for raw in framer.receive_data(data):
                        offer |= self._handle(raw, None)
                self._offer_to(offer)
        except ProtocolError as exc:
            self.agent.drops.drop(exc)
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass  # a cancelled handler ends normally (see _tcpcl_accept)
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _push_blind(self, p: Peer) -> None:
        assert p.name is not None
        now = dtn_now()
        items = list(self.agent.outgoing(p.name, now, blind=True))
        if not items:
            return
        if p.cl == "udp":
            if self._udp is None:
                return
            for bid, raw, drop in items:
                for piece in _fit(raw, UDP_MAX):
                    self._udp.sendto(piece, (p.host, p.port))
                self.agent.forwarded(bid, drop=drop, now=now)
            return
        self._spawn(self._mtcp_send(p, items))

    async def _mtcp_send(self, p: Peer, items: list[tuple[str, bytes, bool]]) -> None:
        assert p.name is not None
        try:
            from fogctl.net import open_connection

            _, writer = await asyncio.wait_for(open_connection(p.host, p.port), 5)
            for _, raw, _ in items:
                writer.write(MtcpFramer.frame(raw))
            await writer.drain()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        except (TimeoutError, OSError, FogError):
            # not delivered (or the route to the peer is down): offer them again next tick
            sv = self.agent.peer_sv.get(p.name, set())
            for bid, _, _ in items:
                sv.discard(bid)
            return
        now = dtn_now()
        for bid, _, drop in items:
            self.agent.forwarded(bid, drop=drop, now=now)
        self.log(f"sent {len(items)} bundle(s) to {p.name} over mtcp")

    # -- plugin transports ------------------------------------------------------------
    async def _run_transport(self, t: Transport, stop: asyncio.Event) -> None:
        try:
            await t.run(_Host(self, t.name), stop)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # a plugin failing must not take the node down
            self.log(f"transport {t.name} failed: {type(exc).__name__}: {exc}")

    # -- discovery -------------------------------------------------------------------
    async def _start_mdns(self) -> Any:
        try:
            from fogctl.mesh.discovery import Mdns
        except ImportError:  # pragma: no cover - zeroconf is a declared dependency
            self.log("mDNS unavailable (zeroconf not installed)")
            return None
        if not self.tcpcl_addr:
            return None
        host, port = self.bound["tcpcl"]
        m = Mdns(self.config.name, host, port, self._discovered)
        await m.start()
        self.log("mDNS discovery on")
        return m

    def _discovered(self, name: str, host: str, port: int) -> None:
        node = f"dtn://{name}/"
        if node == str(self.agent.me) or node in self.links:
            return
        p = Peer("tcpcl", host, port)
        if p not in self.peers:
            self.log(f"discovered {node} at {host}:{port}")
            self.peers.append(p)


def _load_transport(name: str) -> Transport:
    from fogctl.plugins import load_entry_point

    try:
        factory = load_entry_point("fogctl.transports", name)
    except KeyError:
        raise InvalidInput(
            f"no transport plugin {name!r} (fogctl.transports entry point)"
        ) from None
    t = factory()
    if not isinstance(t, Transport):
        raise InvalidInput(f"transport plugin {name!r} does not implement run(host, stop)")
    return t


class _Host:
    """What a plugin transport sees of the node (see :mod:`fogctl.mesh.transport`)."""

    def __init__(self, node: MeshNode, name: str) -> None:
        self.node = node
        self.name = name

    def deliver(self, raw: bytes, peer: str | None) -> None:
        self.node._received(raw, peer)

    def outgoing(self, peer: str) -> list[tuple[str, bytes, bool]]:
        node = str(EID.parse(peer).node)
        self.node.agent.note_peer(node, self.name, self.name, time.time())
        return list(self.node.agent.outgoing(node, dtn_now(), blind=True))

    def forwarded(self, bundle_id: str, drop: bool) -> None:
        self.node.agent.forwarded(bundle_id, drop=drop, now=dtn_now())

    def log(self, message: str) -> None:
        self.node.log(f"{self.name}: {message}")


def _fit(raw: bytes, limit: int) -> list[bytes]:
    if len(raw) <= limit:
        return [raw]
    b = decode_bundle(raw)
    overhead = len(raw) - len(b.payload) + 64
    return [f.to_bytes() for f in fragment(b, max(1, limit - overhead))]


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, node: MeshNode) -> None:
        self.node = node

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.node._received(data, None)
