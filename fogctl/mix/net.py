"""The asyncio adapter: feeds UDP datagrams and TCP requests to the sans-IO cores.

Mixes exchange packets as UDP datagrams (one 2,432-byte packet each). A node also
listens on TCP on the same port for requests, framed as ``op (1) | length (4, BE) |
body``; answers are ``0x80`` (ok) or ``0x81`` (error, UTF-8 message):

====  ==========  ==========================================================
op    name        body -> answer
====  ==========  ==========================================================
1     SUBMIT      client key (32) | time (8) | tag (32) | packet -> ok
2     PULL        client X25519 key (32) | time (8, float) | tag (32) -> entries
3     DIRECTORY   empty -> JSON Lines of every signed descriptor known
4     PUBLISH     one JSON descriptor -> ok if it verifies
5     STATS       empty -> the node's counters as JSON
6     REGISTER    client key (32) | time (8) | tag (32) -> ok
7     PACKET      one mix packet from another node (TCP transport) -> no answer
====  ==========  ==========================================================

Client requests prove ownership of the client's X25519 key: ``tag =
HMAC-SHA256(X25519(client key, provider epoch key), label || time [|| packet])`` with
the label ``fogctl-mix-pull``, ``-register`` or ``-submit``, within 5 minutes of the
provider's clock (a replayed SUBMIT carries a packet the replay filter refuses).

Who may enter the network: a provider accepts SUBMIT only from clients that have
REGISTERed with it (kept in its state dir; with an allow-list, ``fogctl mix serve
--clients FILE``, only the keys listed may register), each packet authenticated by
its tag; and it accepts node-to-node packets (UDP datagrams, TCP PACKET frames) only
from the addresses of nodes in its directory. Every refusal is counted
(``submit_unregistered``, ``submit_bad_auth``, ``register_refused``,
``dropped_unknown_source``). UDP source addresses can be
forged on some networks, and a client on a node's own host shares its address:
that check keeps strangers out, while the Sphinx MAC and the replay filter are what
make a forged or replayed packet useless.

Mix-to-mix transport is UDP by default, one packet per datagram: 2,432 bytes, above a
1,500-byte Ethernet MTU, so the IP layer fragments it in two (a lost fragment loses
the packet); loss is handled end to end by acks and resends over other paths
(``mix.ack_timeout``, ``mix.max_tries``) and measured by loop cover. Where
fragments are dropped (some firewalls and NATs do), a node sends over TCP instead
(``transport="tcp"``, ``fogctl mix serve --transport tcp``): one long-lived
connection per next hop carrying PACKET frames, unanswered; every node accepts both.
A link that cannot connect drops what is queued for it (counted) and retries on the
next packet; the queue per link is bounded.

PULL proves key ownership the same way (label ``fogctl-mix-pull``). The answer is
always :data:`PULL_BATCH` slots ``(real (1) | identifier (16) | payload (2048))``
after a ``more`` byte, padded with empty slots and sealed with ChaCha20-Poly1305
under a key derived from the same shared secret: its size never depends on what
waits, and a link observer cannot tell loop cover from messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from fogctl.errors import InvalidInput, OperationFailed, Refused, ServiceUnavailable
from fogctl.hostport import parse_hostport
from fogctl.mix import sphinx
from fogctl.mix.directory import Topology, verify_descriptor
from fogctl.mix.node import MixClient, MixNode
from fogctl.mix.primitives import ct_equal, hkdf_sha256, hmac_sha256, x25519
from fogctl.mix.records import MixDescriptor

__all__ = [
    "ClientRegistry",
    "ClientService",
    "DirectoryStore",
    "NodeService",
    "fetch_directory",
    "publish_descriptor",
    "pull",
    "request",
    "submit",
]

log = logging.getLogger("fogctl.mix")

OP_SUBMIT, OP_PULL, OP_DIRECTORY, OP_PUBLISH, OP_STATS, OP_REGISTER = 1, 2, 3, 4, 5, 6
OP_PACKET = 7
LINK_QUEUE = 1024  # packets waiting per TCP link before new ones are dropped
OK, ERR = 0x80, 0x81
_FRAME = struct.Struct(">BI")
MAX_FRAME = 32 * 1024 * 1024
PULL_SKEW = 300.0
RCVBUF = 4 * 1024 * 1024
STOP_TIMEOUT = 5.0
_SLOT = 1 + 16 + sphinx.PAYLOAD_SIZE
#: Entries per PULL answer; the answer is always this many slots, padded and sealed.
PULL_BATCH = 8
PULL_ANSWER_SIZE = 12 + 1 + PULL_BATCH * _SLOT + 16


_RESOLVED: dict[str, tuple[float, set[str]]] = {}
RESOLVE_TTL = 300.0


def _addresses_of(host: str) -> set[str]:
    """The IP addresses a directory host stands for (a literal, or what it resolves to;
    names are resolved at most every :data:`RESOLVE_TTL` seconds)."""
    import ipaddress

    try:
        return {str(ipaddress.ip_address(host))}
    except ValueError:
        pass
    now = time.monotonic()
    hit = _RESOLVED.get(host)
    if hit is not None and now - hit[0] < RESOLVE_TTL:
        return hit[1]
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
        found = {str(info[4][0]) for info in infos}
    except OSError:
        found = set()
    _RESOLVED[host] = (now, found)
    return found


def split_hostport(text: str) -> tuple[str, int]:
    return parse_hostport(text, what="mix address")


def pull_tag(shared: bytes, ts: float) -> bytes:
    return hmac_sha256(shared, b"fogctl-mix-pull" + struct.pack(">d", ts))


def _tag(shared: bytes, label: bytes, ts: float, data: bytes = b"") -> bytes:
    return hmac_sha256(shared, label + struct.pack(">d", ts) + data)


_REGISTER, _SUBMIT = b"fogctl-mix-register", b"fogctl-mix-submit"
AUTH_SIZE = 32 + 8 + 32


def register_request(secret: bytes, client_public: bytes, provider_key: bytes, now: float) -> bytes:
    """REGISTER body: the client's key, the time, and a tag proving the key is its own."""
    tag = _tag(x25519(secret, provider_key), _REGISTER, now)
    return client_public + struct.pack(">d", now) + tag


def submit_request(shared: bytes, client_public: bytes, now: float, packet: bytes) -> bytes:
    """SUBMIT body for one packet (``shared`` = X25519(client key, provider key))."""
    return client_public + struct.pack(">d", now) + _tag(shared, _SUBMIT, now, packet) + packet


class ClientRegistry:
    """The clients a provider serves: X25519 keys that proved ownership with REGISTER.

    Kept as hex lines in ``path`` (appended; survives restarts). With ``allowed`` set
    (an operator's allow-list) only those keys may register.
    """

    def __init__(self, path: Path | None = None, allowed: set[bytes] | None = None) -> None:
        self.path, self.allowed = path, allowed
        self.keys: set[bytes] = set()
        if path is not None and path.exists():
            for line in path.read_text().split():
                with contextlib.suppress(ValueError):
                    key = bytes.fromhex(line)
                    if len(key) == 32:
                        self.keys.add(key)

    def __contains__(self, key: bytes) -> bool:
        return key in self.keys and (self.allowed is None or key in self.allowed)

    def add(self, key: bytes) -> None:
        if self.allowed is not None and key not in self.allowed:
            raise Refused("this provider serves only the clients on its allow-list")
        if key in self.keys:
            return
        self.keys.add(key)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as fh:
                fh.write(key.hex() + "\n")


def read_allow_list(path: Path) -> set[bytes]:
    """Client keys from a file: one per line, hex or a mix address PUBKEY@PROVIDER."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidInput(f"{path}: {exc.strerror}") from None
    out = set()
    for n, line in enumerate(text.splitlines(), 1):
        item = line.split("#", 1)[0].strip().partition("@")[0]
        if not item:
            continue
        try:
            key = bytes.fromhex(item)
        except ValueError:
            key = b""
        if len(key) != 32:
            raise InvalidInput(f"{path}:{n}: not a client key (64 hex digits)")
        out.add(key)
    return out


class DirectoryStore:
    """Verified descriptors a node knows (its own included), optionally saved to a file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.by_id: dict[str, MixDescriptor] = {}

    def add(self, desc: MixDescriptor, now: float) -> bool:
        verify_descriptor(desc, now)
        old = self.by_id.get(desc.id)
        if old is not None and (old.epoch, old.expires) >= (desc.epoch, desc.expires):
            return False
        self.by_id[desc.id] = desc
        return True

    def add_many(self, descs: Iterable[MixDescriptor], now: float) -> int:
        n = 0
        for d in descs:
            with contextlib.suppress(Refused):
                n += self.add(d, now)
        return n

    def topology(self, now: float) -> Topology:
        return Topology(self.by_id.values(), now)

    def jsonl(self) -> bytes:
        from fogctl.records import to_json_line

        return "".join(to_json_line(d) + "\n" for d in self.by_id.values()).encode()

    def save(self) -> None:
        if self.path is not None:
            from fogctl.state.atomic import write_atomic

            write_atomic(self.path, self.jsonl(), mode=0o644)


def parse_descriptors(data: bytes) -> list[MixDescriptor]:
    from fogctl.records import record_from_dict

    out = []
    for line in data.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                continue
            rec = record_from_dict(obj)
        except (ValueError, TypeError, RecursionError, InvalidInput):
            continue
        if isinstance(rec, MixDescriptor):
            out.append(rec)
    return out


# -- framing -------------------------------------------------------------------------


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readexactly(_FRAME.size)
    op, n = _FRAME.unpack(head)
    if n > MAX_FRAME:
        raise OperationFailed("frame too large")
    return op, await reader.readexactly(n)


def _frame(op: int, body: bytes) -> bytes:
    return _FRAME.pack(op, len(body)) + body


class _Conn:
    """One TCP connection to a node, requests serialised."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._rw: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()

    async def call(self, op: int, body: bytes) -> bytes:
        async with self._lock:
            try:
                if self._rw is None:
                    from fogctl.net import open_connection

                    self._rw = await asyncio.wait_for(
                        open_connection(self.host, self.port), self.timeout
                    )
                reader, writer = self._rw
                writer.write(_frame(op, body))
                await writer.drain()
                rop, data = await asyncio.wait_for(_read_frame(reader), self.timeout)
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                await self.close()
                raise ServiceUnavailable(
                    f"mix node {self.host}:{self.port} unreachable: {exc or type(exc).__name__}"
                ) from None
        if rop == ERR:
            raise Refused(f"mix node {self.host}:{self.port}: {data.decode('utf-8', 'replace')}")
        return data

    async def close(self) -> None:
        if self._rw is not None:
            _, writer = self._rw
            self._rw = None
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def request(host: str, port: int, op: int, body: bytes = b"", timeout: float = 10.0) -> bytes:
    conn = _Conn(host, port, timeout)
    try:
        return await conn.call(op, body)
    finally:
        await conn.close()


async def fetch_directory(host: str, port: int, timeout: float = 10.0) -> list[MixDescriptor]:
    return parse_descriptors(await request(host, port, OP_DIRECTORY, b"", timeout))


async def publish_descriptor(host: str, port: int, desc: MixDescriptor) -> None:
    from fogctl.records import to_json_line

    await request(host, port, OP_PUBLISH, to_json_line(desc).encode())


async def submit(
    host: str, port: int, packets: Iterable[bytes], secret: bytes, provider_key: bytes
) -> int:
    """Register with the provider (idempotent) and submit ``packets`` as this client."""
    from fogctl.mix.primitives import x25519_base

    conn = _Conn(host, port, 10.0)
    pub = x25519_base(secret)
    shared = x25519(secret, provider_key)
    n = 0
    try:
        await conn.call(OP_REGISTER, register_request(secret, pub, provider_key, time.time()))
        for p in packets:
            await conn.call(OP_SUBMIT, submit_request(shared, pub, time.time(), p))
            n += 1
    finally:
        await conn.close()
    return n


def pull_request(secret: bytes, client_public: bytes, provider_key: bytes, now: float) -> bytes:
    tag = pull_tag(x25519(secret, provider_key), now)
    return client_public + struct.pack(">d", now) + tag


def _answer_key(shared: bytes, request_body: bytes) -> bytes:
    return hkdf_sha256(shared, 32, salt=b"fogctl-mix-pull-v1", info=request_body[32:])


def seal_entries(
    shared: bytes, request_body: bytes, entries: list[tuple[bytes, bytes]], more: bool
) -> bytes:
    """The PULL answer: always PULL_BATCH slots, padded, AEAD-sealed to the client.

    A link observer sees the same size whatever waits (none, loops, real messages),
    and cannot tell loop-cover payloads from sealed messages.
    """
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    if len(entries) > PULL_BATCH:
        raise ValueError("too many entries for one answer")
    slots = [b"\x01" + i + p for i, p in entries]
    slots += [bytes(_SLOT)] * (PULL_BATCH - len(entries))
    nonce = os.urandom(12)
    plain = bytes([int(more)]) + b"".join(slots)
    return nonce + ChaCha20Poly1305(_answer_key(shared, request_body)).encrypt(nonce, plain, None)


def open_entries(
    answer: bytes, shared: bytes, request_body: bytes
) -> tuple[list[tuple[bytes, bytes]], bool]:
    """(entries, more) from a PULL answer; OperationFailed if it does not authenticate."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    if len(answer) != PULL_ANSWER_SIZE:
        raise OperationFailed("bad PULL answer length")
    try:
        plain = ChaCha20Poly1305(_answer_key(shared, request_body)).decrypt(
            answer[:12], answer[12:], None
        )
    except InvalidTag:
        raise OperationFailed("PULL answer does not authenticate") from None
    entries = []
    for k in range(PULL_BATCH):
        slot = plain[1 + k * _SLOT : 1 + (k + 1) * _SLOT]
        if slot[0] == 1:
            entries.append((slot[1:17], slot[17:]))
    return entries, plain[0] == 1


async def pull(
    host: str, port: int, secret: bytes, client_public: bytes, provider_key: bytes
) -> list[tuple[bytes, bytes]]:
    body = pull_request(secret, client_public, provider_key, time.time())
    shared = x25519(secret, provider_key)
    return open_entries(await request(host, port, OP_PULL, body), shared, body)[0]


# -- node service --------------------------------------------------------------------


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, service: NodeService) -> None:
        self.service = service

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.service.on_packet(data, addr)

    def error_received(self, exc: Exception) -> None:
        self.service.core.counters["udp_errors"] += 1


class _Link:
    """One TCP connection to a next hop: PACKET frames written in order, unanswered."""

    def __init__(self, service: NodeService, addr: tuple[str, int]) -> None:
        self.service, self.addr = service, addr
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(LINK_QUEUE)
        self.task = asyncio.create_task(self._run(), name=f"mix-link-{addr[0]}:{addr[1]}")

    def send(self, packet: bytes) -> None:
        try:
            self.queue.put_nowait(packet)
        except asyncio.QueueFull:
            self.service.core.counters["dropped_link_full"] += 1

    async def _run(self) -> None:
        counters = self.service.core.counters
        while True:
            first = await self.queue.get()
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(*self.addr), 10.0)
            except (OSError, TimeoutError):
                counters["dropped_link_down"] += 1 + self.queue.qsize()
                while not self.queue.empty():
                    self.queue.get_nowait()
                continue
            try:
                pkt: bytes | None = first
                while pkt is not None:
                    writer.write(_frame(OP_PACKET, pkt))
                    counters["sent_tcp"] += 1
                    pkt = self.queue.get_nowait() if not self.queue.empty() else None
                    if pkt is None:
                        await writer.drain()
                        pkt = await self.queue.get()
            except (OSError, ConnectionError):
                counters["dropped_link_down"] += 1
            finally:
                writer.close()


class NodeService:
    """Runs one :class:`MixNode` on a UDP port (packets) and the same TCP port (requests)."""

    def __init__(
        self,
        core: MixNode,
        directory: DirectoryStore,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        live_keys: Callable[[float], list[bytes]] | None = None,
        clock: Callable[[], float] = time.time,
        clients: ClientRegistry | None = None,
        transport: str = "udp",
    ) -> None:
        if transport not in ("udp", "tcp"):
            raise InvalidInput(f"transport must be udp or tcp, not {transport!r}")
        self.transport = transport
        self._links: dict[tuple[str, int], _Link] = {}
        self.core, self.directory = core, directory
        self.clients = clients if clients is not None else ClientRegistry()
        self._peer_hosts: set[str] = set()
        self._shared: dict[tuple[bytes, bytes], bytes] = {}
        self.host, self.port = host, port
        self.clock = clock
        self._live_keys = live_keys
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.base_events.Server | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._addr: dict[bytes, tuple[str, int]] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._closing = False
        self.on_tick: Callable[[float], None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(20):
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Udp(self), local_addr=(self.host, self.port)
                )
            except OSError as exc:
                raise ServiceUnavailable(
                    f"cannot bind UDP {self.host}:{self.port}: {exc}"
                ) from None
            port = transport.get_extra_info("sockname")[1]
            sock = transport.get_extra_info("socket")
            if sock is not None:  # bursts of packets must not overflow the default buffer
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.host, port)
            except OSError:
                transport.close()
                if self.port:
                    raise ServiceUnavailable(f"cannot bind TCP {self.host}:{port}") from None
                continue
            self._udp, self.port = transport, port
            break
        else:
            raise ServiceUnavailable("no free port for UDP and TCP together")
        self.refresh_routes()
        self._task = asyncio.create_task(self._ticker())

    def refresh_routes(self) -> None:
        now = self.clock()
        topo = self.directory.topology(now)
        self.core.topology = topo
        self._addr = {}
        hosts: set[str] = set()
        for d in topo.by_id.values():
            with contextlib.suppress(InvalidInput):
                host, port = split_hostport(d.address)
                self._addr[bytes.fromhex(d.id)] = (host, port)
                hosts |= _addresses_of(host)
        self._peer_hosts = hosts

    async def stop(self) -> None:
        """Stop accepting, end open connections and the timer task, close sockets."""
        self._closing = True
        if self._tcp:
            self._tcp.close()
        handlers = list(self._handlers)
        for t in handlers:
            t.cancel()
        if self._task:
            self._task.cancel()
            handlers.append(self._task)
        for link in self._links.values():
            link.task.cancel()
            handlers.append(link.task)
        if handlers:
            _, stuck = await asyncio.wait(handlers, timeout=STOP_TIMEOUT)
            for t in stuck:  # never hang a shutdown on one connection
                log.warning("mix node: task %s did not stop in %ss", t.get_name(), STOP_TIMEOUT)
        if self._udp:
            self._udp.close()

    def on_packet(self, data: bytes, addr: tuple[str, int] | None = None) -> None:
        if addr is not None and self.core.role == "provider":
            host = addr[0].removeprefix("::ffff:")
            if host not in self._peer_hosts:  # not a node of the directory
                self.core.counters["received"] += 1
                self.core.counters["dropped_unknown_source"] += 1
                return
        self.core.receive(data, self.clock())
        self._wake.set()

    async def _ticker(self) -> None:
        # Checks _closing too: on Python 3.11 wait_for() can swallow a cancellation
        # that arrives as the wake event fires (fixed in 3.12), and stop must not hang.
        while not self._closing:
            now = self.clock()
            self.core.handle_timer(now)
            for dest, pkt in self.core.datagrams_to_send(now):
                addr = self._addr.get(dest)
                if addr is None or self._udp is None:
                    self.core.counters["dropped_unroutable"] += 1
                    continue
                if self.transport == "tcp":
                    link = self._links.get(addr)
                    if link is None:
                        link = self._links[addr] = _Link(self, addr)
                    link.send(pkt)
                else:
                    self._udp.sendto(pkt, addr)
            if self.on_tick is not None:
                self.on_tick(now)
            t = self.core.get_timer()
            wait = 1.0 if t is None else min(1.0, max(0.0, t - self.clock()))
            self._wake.clear()
            if wait > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
            else:
                await asyncio.sleep(0)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if self._closing or task is None:
            writer.close()
            return
        self._handlers.add(task)
        try:
            while True:
                try:
                    op, body = await _read_frame(reader)
                except (asyncio.IncompleteReadError, ConnectionError, OperationFailed):
                    return
                if op == OP_PACKET:  # from another node: no answer, like a datagram
                    self.core.counters["received_tcp"] += 1
                    peer = writer.get_extra_info("peername")
                    self.on_packet(body, (str(peer[0]), int(peer[1])) if peer else ("", 0))
                    continue
                try:
                    answer = self._handle(op, body)
                    writer.write(_frame(OK, answer))
                except (Refused, InvalidInput, OperationFailed) as exc:
                    writer.write(_frame(ERR, str(exc).encode()))
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._handlers.discard(task)
            writer.close()

    def _handle(self, op: int, body: bytes) -> bytes:
        now = self.clock()
        if op == OP_SUBMIT:
            self._submit(body, now)
            return b""
        if op == OP_REGISTER:
            self._register(body, now)
            return b""
        if op == OP_PULL:
            return self._pull(body, now)
        if op == OP_DIRECTORY:
            return self.directory.jsonl()
        if op == OP_PUBLISH:
            descs = parse_descriptors(body)
            if len(descs) != 1:
                raise InvalidInput("PUBLISH takes one descriptor")
            added = self.directory.add(descs[0], now)
            if added:
                self.directory.save()
                self.refresh_routes()
            return b""
        if op == OP_STATS:
            return json.dumps(dict(self.core.counters)).encode()
        raise InvalidInput(f"unknown op {op}")

    def _shared_secret(self, sk: bytes, pub: bytes) -> bytes | None:
        key = (sk, pub)
        shared = self._shared.get(key)
        if shared is None:
            try:
                shared = x25519(sk, pub)
            except ValueError:
                return None
            if len(self._shared) >= 10_000:
                self._shared.clear()
            self._shared[key] = shared
        return shared

    def _authenticate(
        self, body: bytes, now: float, label: bytes, data: bytes = b""
    ) -> bytes | None:
        """The client key if ``body``'s tag verifies under a live key, else None."""
        if self._live_keys is None or len(body) < AUTH_SIZE:
            return None
        pub, (ts,), tag = body[:32], struct.unpack(">d", body[32:40]), body[40:72]
        if not abs(now - ts) <= PULL_SKEW:
            return None
        for sk in self._live_keys(now):
            shared = self._shared_secret(sk, pub)
            if shared is not None and ct_equal(_tag(shared, label, ts, data), tag):
                return pub
        return None

    def _register(self, body: bytes, now: float) -> None:
        if self.core.role != "provider":
            raise Refused("not a provider")
        pub = self._authenticate(body, now, _REGISTER) if len(body) == AUTH_SIZE else None
        if pub is None:
            self.core.counters["register_refused"] += 1
            raise Refused("REGISTER authentication failed")
        try:
            self.clients.add(pub)
        except Refused:
            self.core.counters["register_refused"] += 1
            raise
        self.core.counters["registered"] += 1

    def _submit(self, body: bytes, now: float) -> None:
        counters = self.core.counters
        if self.core.role != "provider":
            raise Refused("not a provider")
        if len(body) < AUTH_SIZE:
            counters["submit_bad_auth"] += 1
            raise Refused("SUBMIT authentication failed: the body is too short")
        if body[:32] not in self.clients:
            counters["submit_unregistered"] += 1
            raise Refused("not a registered client of this provider: REGISTER first")
        if self._authenticate(body, now, _SUBMIT, body[AUTH_SIZE:]) is None:
            counters["submit_bad_auth"] += 1
            raise Refused("SUBMIT authentication failed")
        self.core.receive(body[AUTH_SIZE:], now)
        self._wake.set()

    def _pull(self, body: bytes, now: float) -> bytes:
        if self.core.role != "provider" or self._live_keys is None:
            raise Refused("not a provider")
        if len(body) != 72:
            raise InvalidInput("bad PULL request")
        pub, (ts,), tag = body[:32], struct.unpack(">d", body[32:40]), body[40:]
        if not abs(now - ts) <= PULL_SKEW:
            raise Refused("PULL time is too far from the provider's clock")
        for sk in self._live_keys(now):
            try:
                shared = x25519(sk, pub)
            except ValueError:
                break
            if ct_equal(pull_tag(shared, ts), tag):
                from fogctl.mix.node import client_address_bytes

                address = client_address_bytes(pub)
                entries = self.core.pull(address, PULL_BATCH)
                self.core.counters["pulled"] += len(entries)
                more = bool(self.core.inbox.get(address))
                return seal_entries(shared, body, entries, more)
        self.core.counters["pull_refused"] += 1
        raise Refused("PULL authentication failed")


class ClientService:
    """Runs a :class:`MixClient`: its cover streams, submission and pulling."""

    def __init__(
        self,
        core: MixClient,
        secret: bytes,
        provider: MixDescriptor,
        *,
        poll: float = 0.2,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.core, self._secret, self.provider = core, secret, provider
        self.poll, self.clock = poll, clock
        host, port = split_hostport(provider.address)
        self._conn = _Conn(host, port, 10.0)
        self.events: list[object] = []
        self.entries_seen = 0
        self._registered_with = b""
        self._shared = b""

    async def _register(self) -> None:
        """REGISTER with the provider once per provider key (it is idempotent there)."""
        key = bytes.fromhex(self.provider.public_key)
        if self._registered_with == key:
            return
        pub = self.core.address.public_key
        await self._conn.call(OP_REGISTER, register_request(self._secret, pub, key, self.clock()))
        self._shared = x25519(self._secret, key)
        self._registered_with = key

    async def step(self) -> None:
        now = self.clock()
        self.events += self.core.handle_timer(now)
        out = self.core.datagrams_to_send(now)
        if not out:
            return
        await self._register()
        pub = self.core.address.public_key
        for pkt in out:
            await self._conn.call(OP_SUBMIT, submit_request(self._shared, pub, self.clock(), pkt))

    async def pull_once(self) -> list[object]:
        now = self.clock()
        body = pull_request(
            self._secret, self.core.address.public_key, bytes.fromhex(self.provider.public_key), now
        )
        shared = x25519(self._secret, bytes.fromhex(self.provider.public_key))
        new: list[object] = []
        for _ in range(64):  # bounded: at most 64 batches per pull
            answer = await self._conn.call(OP_PULL, body)
            entries, more = open_entries(answer, shared, body)
            self.entries_seen += len(entries)
            for ident, payload in entries:
                new += self.core.receive(ident, payload, self.clock())
            if not more:
                break
            body = pull_request(
                self._secret,
                self.core.address.public_key,
                bytes.fromhex(self.provider.public_key),
                self.clock(),
            )
        self.events += new
        return new

    async def run_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Drive the client until ``done()`` or ``timeout`` seconds; True if done."""
        deadline = self.clock() + timeout
        next_pull = 0.0
        while self.clock() < deadline:
            await self.step()
            if self.clock() >= next_pull:
                await self.pull_once()
                next_pull = self.clock() + self.poll
            await self.step()
            if done():
                return True
            t = self.core.get_timer()
            wake = min(x for x in (t, next_pull, deadline) if x is not None)
            await asyncio.sleep(max(0.0, min(0.05, wake - self.clock())))
        return done()

    async def close(self) -> None:
        await self._conn.close()
