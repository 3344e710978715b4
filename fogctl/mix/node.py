"""Mix, provider and client state machines: sans-IO (bytes and ``now`` in, bytes out).

Model: aioquic's connection. ``receive*(data, now)`` feeds input, ``handle_timer(now)``
fires timers, ``datagrams_to_send(now)`` drains output as ``(next hop id, packet)``,
``get_timer()`` says when to call again. Randomness comes from the ``rng``
(``random.Random``, seeded from os.urandom by the adapter) and packet randomness from
``entropy`` (``os.urandom``-like); nothing here reads a clock or a socket.

Rules
-----
Mix node (``MixNode``), for each packet:
  1. try the live epoch keys, current first; a MAC failure under every key drops it;
  2. a replayed tag (Bloom filter of that epoch) drops it;
  3. RELAY: hold for the sender-chosen delay (Poisson mixing), then forward;
  4. FINAL to this node: one of its own loop-cover packets came back.
  Every dropped packet increments ``counters[reason]``; nothing raises out.
  With ``lambda_m > 0`` the mix emits loop cover through every layer back to itself.
Provider (``role="provider"``): a mix at layer 0 that also stores FINAL packets for its
  clients (bounded inbox per client, oldest dropped and counted) and discards drop
  cover (address all zeros).
Client (``MixClient``), Loopix streams, each Poisson with its own rate:
  payload stream (``lambda_p``): the next queued real packet, else a drop-cover packet;
  loop stream (``lambda_l``): a loop through the network back to this client;
  drop stream (``lambda_d``): a packet to a random provider, discarded there.
  Every packet has the same size and a fresh path, so cover looks like real traffic.
  A real message carries an ack SURB; the recipient acks on receipt; no ack within
  ``ack_timeout`` resends over a path avoiding the previous mixes (``max_tries``).
  With all rates 0, real packets leave at once (no cover: the report says so).
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fogctl.errors import InvalidInput
from fogctl.mix import message, sphinx
from fogctl.mix.directory import Path, Topology, select_path
from fogctl.mix.errors import MacMismatch, MixProtocolError
from fogctl.mix.records import MixDescriptor

__all__ = [
    "DROP_ADDRESS",
    "Acked",
    "ClientAddress",
    "Delivered",
    "Failed",
    "LoopReturned",
    "MixClient",
    "MixNode",
    "Params",
    "ReplyReceived",
]

Entropy = Callable[[int], bytes]
KeySource = Callable[[float], Sequence[tuple[bytes, Callable[[bytes], bool]]]]
DROP_ADDRESS = bytes(sphinx.ADDRESS_SIZE)


@dataclass(frozen=True, slots=True)
class Params:
    """Mixing and cover-traffic parameters (seconds and events per second).

    Defaults follow the Loopix paper's evaluation scale for a small network; for
    reference Nym runs a 50 ms... see fogctl-mix(1) for the trade-offs.
    """

    hops: int = 3
    mean_delay: float = 0.05  # per-hop exponential delay mean (Nym: 0.015, Loopix code: 0.001)
    lambda_p: float = 2.0  # payload stream (Nym: ~50/s)
    lambda_l: float = 1.0  # client loop cover (Nym: 5/s)
    lambda_d: float = 1.0  # client drop cover
    lambda_m: float = 0.5  # mix loop cover
    ack_timeout: float = 10.0
    max_tries: int = 3
    inbox_limit: int = 10_000


def client_address_bytes(public_key: bytes) -> bytes:
    """The 20-byte Sphinx address of a client: SHA-256 of its X25519 key, truncated."""
    return hashlib.sha256(b"fogctl-mix-client" + public_key).digest()[: sphinx.ADDRESS_SIZE]


@dataclass(frozen=True, slots=True)
class ClientAddress:
    """Where a client receives: its X25519 public key and its provider's node id."""

    public_key: bytes
    provider: bytes

    @property
    def address(self) -> bytes:
        return client_address_bytes(self.public_key)

    def __str__(self) -> str:
        return f"{self.public_key.hex()}@{self.provider.hex()}"

    @classmethod
    def parse(cls, text: str) -> ClientAddress:
        pub, sep, prov = text.strip().partition("@")
        try:
            pk, pv = bytes.fromhex(pub), bytes.fromhex(prov)
        except ValueError:
            pk = pv = b""
        if not sep or len(pk) != 32 or len(pv) != sphinx.ADDRESS_SIZE:
            raise InvalidInput(f"not a mix address (PUBKEY@PROVIDER in hex): {text[:80]!r}")
        return cls(pk, pv)


# -- events --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivered:
    """A forward message arrived for this client."""

    msg_id: bytes
    data: bytes
    reply_surb: sphinx.Surb | None
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class ReplyReceived:
    in_reply_to: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class Acked:
    msg_id: bytes
    rtt: float
    tries: int


@dataclass(frozen=True, slots=True)
class Failed:
    msg_id: bytes
    tries: int


@dataclass(frozen=True, slots=True)
class LoopReturned:
    rtt: float


def _delays(path: Path, mean: float, rng: random.Random) -> list[int]:
    out = []
    for i in range(len(path.nodes)):
        if i == len(path.nodes) - 1 or mean <= 0:
            out.append(0)
        else:
            out.append(min(sphinx.MAX_DELAY_US, int(rng.expovariate(1.0 / mean) * 1e6)))
    return out


def _hops(nodes: Sequence[MixDescriptor], delays: Sequence[int]) -> list[sphinx.Hop]:
    return [
        sphinx.Hop(bytes.fromhex(d.id), bytes.fromhex(d.public_key), dl)
        for d, dl in zip(nodes, delays, strict=True)
    ]


class _Scheduler:
    """Packets held until their departure time (the Poisson mixing queue)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, float, bytes, bytes]] = []
        self._seq = 0
        #: measured holding times (departure - arrival, by the caller's clock)
        self.held: deque[float] = deque(maxlen=10_000)

    def push(self, due: float, dest: bytes, packet: bytes, arrived: float | None = None) -> None:
        self._seq += 1
        t = due if arrived is None else arrived
        heapq.heappush(self._heap, (due, self._seq, t, dest, packet))

    def pop_due(self, now: float) -> list[tuple[bytes, bytes]]:
        out = []
        while self._heap and self._heap[0][0] <= now:
            _, _, arrived, dest, pkt = heapq.heappop(self._heap)
            self.held.append(now - arrived)
            out.append((dest, pkt))
        return out

    def next_time(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return len(self._heap)


class MixNode:
    """A mix (``layer`` >= 1) or provider (``layer`` 0) node core."""

    def __init__(
        self,
        node_id: bytes,
        keys: KeySource,
        *,
        layer: int,
        params: Params | None = None,
        topology: Topology | None = None,
        rng: random.Random | None = None,
        entropy: Entropy | None = None,
    ) -> None:
        import os

        self.node_id = node_id
        self.layer = layer
        self.role = "provider" if layer == 0 else "mix"
        self.params = params or Params()
        self.topology = topology
        self.rng = rng or random.Random()
        self.entropy = entropy or os.urandom
        self._keys = keys
        self.counters: Counter[str] = Counter()
        self.queue = _Scheduler()
        self.inbox: dict[bytes, deque[tuple[bytes, bytes]]] = {}
        self.loops: dict[bytes, float] = {}
        self.loop_rtts: list[float] = []
        self.delays_held: deque[float] = deque(maxlen=10_000)
        self._next_loop: float | None = None

    # -- input -------------------------------------------------------------------------

    def receive(self, packet: bytes, now: float) -> None:
        """Process one packet from the network. Never raises for bad packets."""
        self.counters["received"] += 1
        try:
            result = self._process(packet, now)
        except MixProtocolError as exc:
            self.counters[f"dropped_{exc.reason}"] += 1
            return
        if isinstance(result, sphinx.Relay):
            delay = result.delay_us / 1e6
            self.delays_held.append(delay)
            self.queue.push(now + delay, result.next_hop, result.packet, now)
            self.counters["relayed"] += 1
            return
        self._final(result, now)

    def _process(self, packet: bytes, now: float) -> sphinx.Relay | sphinx.Final:
        if len(packet) != sphinx.PACKET_SIZE:
            return sphinx.process(packet, b"\0" * 32)  # raises MalformedPacket, no crypto
        last: MixProtocolError = MacMismatch("no live key")
        for private, seen in self._keys(now):
            try:
                return sphinx.process(packet, private, seen)
            except MacMismatch as exc:
                last = exc
        raise last

    def _final(self, res: sphinx.Final, now: float) -> None:
        if res.address == self.node_id:
            sent = self.loops.pop(res.identifier, None)
            if sent is None:
                self.counters["dropped_unknown_loop"] += 1
            else:
                self.counters["loops_returned"] += 1
                self.loop_rtts.append(now - sent)
            return
        if self.role != "provider":
            self.counters["dropped_misrouted"] += 1
            return
        if res.address == DROP_ADDRESS:
            self.counters["drop_cover_absorbed"] += 1
            return
        box = self.inbox.setdefault(res.address, deque())
        if len(box) >= self.params.inbox_limit:
            box.popleft()
            self.counters["inbox_overflow"] += 1
        box.append((res.identifier, res.payload))
        self.counters["stored"] += 1

    def pull(self, client: bytes, limit: int | None = None) -> list[tuple[bytes, bytes]]:
        """Up to ``limit`` messages waiting for ``client`` (20-byte address), oldest first;
        they leave the inbox."""
        box = self.inbox.get(client)
        if not box:
            return []
        n = len(box) if limit is None else min(limit, len(box))
        out = [box.popleft() for _ in range(n)]
        if not box:
            del self.inbox[client]
        return out

    # -- timers and output ---------------------------------------------------------------

    def get_timer(self) -> float | None:
        times = [t for t in (self.queue.next_time(), self._next_loop) if t is not None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        lam = self.params.lambda_m
        if lam <= 0 or self.topology is None:
            self._next_loop = None
            return
        if self._next_loop is None:
            self._next_loop = now + self.rng.expovariate(lam)
            return
        while self._next_loop <= now:
            self._send_loop(now)
            self._next_loop += self.rng.expovariate(lam)

    def _loop_path(self) -> list[MixDescriptor] | None:
        topo = self.topology
        if topo is None or topo.depth < 1 or not topo.providers:
            return None
        me = topo.node(self.node_id)
        if me is None:
            return None
        rng = self.rng
        n = topo.depth
        nodes: list[MixDescriptor] = []
        if self.layer == 0:
            nodes += [rng.choice(topo.layers[layer]) for layer in range(1, n + 1)]
        else:
            nodes += [rng.choice(topo.layers[layer]) for layer in range(self.layer + 1, n + 1)]
            nodes.append(rng.choice(topo.providers))
            nodes += [rng.choice(topo.layers[layer]) for layer in range(1, self.layer)]
        nodes.append(me)
        return nodes[-sphinx.MAX_HOPS :]

    def _send_loop(self, now: float) -> None:
        nodes = self._loop_path()
        if nodes is None or len(nodes) < 2:
            return
        path = Path(tuple(nodes), "loop")
        ident = self.entropy(16)
        pkt = sphinx.create_forward(
            _hops(nodes, _delays(path, self.params.mean_delay, self.rng)),
            self.node_id,
            ident,
            b"",
            self.entropy,
        )
        self.loops[ident] = now
        if len(self.loops) > 10_000:  # forget the oldest: they are lost
            oldest = min(self.loops, key=self.loops.__getitem__)
            del self.loops[oldest]
            self.counters["loops_lost"] += 1
        self.counters["loops_sent"] += 1
        self.queue.push(now, bytes.fromhex(nodes[0].id), pkt)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, bytes]]:
        out = self.queue.pop_due(now)
        self.counters["sent"] += len(out)
        return out


# -- client --------------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    """One unacknowledged part of a message."""

    recipient: ClientAddress
    data: bytes
    want_reply: bool
    first_sent: float
    deadline: float
    tries: int
    msg_id: bytes = b""
    part: int = 0
    parts: int = 1
    used: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class SurbRecord:
    """What a client keeps for a SURB it handed out (to read what comes back)."""

    keys: sphinx.SurbKeys
    purpose: str  # "ack" or "reply"
    msg_id: bytes


class MixClient:
    """A Loopix client core: cover streams, real-message substitution, acks, resends."""

    def __init__(
        self,
        secret: bytes,
        provider: bytes,
        topology: Topology,
        *,
        params: Params | None = None,
        rng: random.Random | None = None,
        entropy: Entropy | None = None,
        vrf_key: bytes | None = None,
    ) -> None:
        import os

        from fogctl.mix.primitives import x25519_base

        self._secret = secret
        self.address = ClientAddress(x25519_base(secret), provider)
        self.topology = topology
        self.params = params or Params()
        self.rng = rng or random.Random()
        self.entropy = entropy or os.urandom
        self.vrf_key = vrf_key
        self.vrf_proofs: list[tuple[bytes, bytes]] = []  # (alpha, proof) for audit
        self.counters: Counter[str] = Counter()
        self.real: deque[bytes] = deque()  # queued real packets (to the entry provider)
        self.out: list[bytes] = []
        self.pending: dict[bytes, _Pending] = {}
        self.surbs: dict[bytes, SurbRecord] = {}
        self.loops: dict[bytes, float] = {}
        self.seen_msgs: set[bytes] = set()
        self.groups: dict[bytes, tuple[set[bytes], float, int]] = {}  # msg -> parts unacked
        self.partial: dict[bytes, dict[int, bytes]] = {}  # reassembly
        self.partial_surb: dict[bytes, sphinx.Surb] = {}
        self.departures: list[float] = []
        self._next: dict[str, float | None] = {"payload": None, "loop": None, "drop": None}

    def __repr__(self) -> str:  # never show the key
        return f"MixClient({self.address})"

    @property
    def cover(self) -> bool:
        p = self.params
        return p.lambda_p > 0 or p.lambda_l > 0 or p.lambda_d > 0

    # -- building packets ------------------------------------------------------------------

    def _delays(self, path: Path, ident: bytes) -> list[int]:
        if self.vrf_key is None:
            return _delays(path, self.params.mean_delay, self.rng)
        from fogctl.mix.vrf import vrf_delay

        out = []
        for i in range(len(path.nodes)):
            if i == len(path.nodes) - 1:
                out.append(0)
                continue
            alpha = ident + bytes([i])
            d, proof = vrf_delay(self.vrf_key, alpha, self.params.mean_delay)
            self.vrf_proofs.append((alpha, proof))
            out.append(min(sphinx.MAX_DELAY_US, int(d * 1e6)))
        return out

    def _path(self, exit: bytes, avoid: set[str] | None = None, entry: bytes | None = None) -> Path:
        return select_path(
            self.topology,
            self.params.hops,
            self.rng,
            entry=(entry or self.address.provider).hex(),
            exit=exit.hex(),
            avoid=avoid or (),
        )

    def _surb(
        self, msg_id: bytes, purpose: str, start: bytes, avoid: set[str] | None = None
    ) -> sphinx.Surb:
        path = self._path(self.address.provider, avoid=avoid or set(), entry=start)
        ident = self.entropy(16)
        surb, keys = sphinx.create_surb(
            _hops(path.nodes, self._delays(path, ident)), self.address.address, ident, self.entropy
        )
        self.surbs[ident] = SurbRecord(keys, purpose, msg_id)
        return surb

    def _forward_packet(self, key: bytes, p: _Pending) -> bytes:
        avoid = set(p.used)
        path = self._path(p.recipient.provider, avoid=avoid)
        p.used.update(d.id for d in path.nodes[1:-1])
        ack = self._surb(key, "ack", p.recipient.provider, avoid)
        want = p.want_reply and p.part == 0
        reply = self._surb(p.msg_id, "reply", p.recipient.provider) if want else None
        frame = message.Frame(message.KIND_DATA, p.msg_id, p.data, ack, reply, p.part, p.parts)
        body = message.encode_forward(frame, p.recipient.public_key)
        ident = self.entropy(16)
        return sphinx.create_forward(
            _hops(path.nodes, self._delays(path, ident)),
            p.recipient.address,
            ident,
            body,
            self.entropy,
        )

    def _cover_packet(self, kind: str, now: float) -> bytes:
        ident = self.entropy(16)
        if kind == "loop":
            path = self._path(self.address.provider)
            self.loops[ident] = now
            address = self.address.address
        else:
            exit = bytes.fromhex(self.rng.choice(self.topology.providers).id)
            path = self._path(exit)
            address = DROP_ADDRESS
        return sphinx.create_forward(
            _hops(path.nodes, self._delays(path, ident)), address, ident, b"", self.entropy
        )

    # -- API ---------------------------------------------------------------------------

    def send(
        self, recipient: ClientAddress, data: bytes, now: float, *, want_reply: bool = True
    ) -> bytes:
        """Queue a message (split into parts if needed); returns its id.

        Its packets leave on the next payload-stream ticks, one per tick.
        """
        size = message.MAX_DATA
        parts = max(1, -(-len(data) // size))
        if parts > message.MAX_PARTS:
            raise InvalidInput(
                f"message is {len(data)} bytes; at most {message.MAX_PARTS * size} fit "
                f"({message.MAX_PARTS} packets of {size})"
            )
        msg_id = self.entropy(16)
        keys = set()
        for i in range(parts):
            key = message.part_id(msg_id, i)
            p = _Pending(
                recipient,
                data[i * size : (i + 1) * size],
                want_reply,
                now,
                now + self.params.ack_timeout,
                1,
                msg_id,
                i,
                parts,
            )
            self.pending[key] = p
            keys.add(key)
            self._enqueue(self._forward_packet(key, p), now)
        self.groups[msg_id] = (keys, now, 1)
        self.counters["messages_sent"] += 1
        return msg_id

    def done(self, msg_id: bytes) -> bool:
        """True once every part of ``msg_id`` is acknowledged (or it failed)."""
        return msg_id not in self.groups

    def reply(self, surb: sphinx.Surb, in_reply_to: bytes, data: bytes, now: float) -> None:
        """Answer through a SURB received with a message (single use)."""
        body = message.encode_reply(message.KIND_REPLY, in_reply_to, data)
        self._enqueue(sphinx.use_surb(surb, body)[1], now)
        self.counters["replies_sent"] += 1

    def _enqueue(self, packet: bytes, now: float) -> None:
        if self.params.lambda_p > 0:
            self.real.append(packet)
        else:
            self.out.append(packet)
            self.departures.append(now)

    def receive(self, identifier: bytes, payload: bytes, now: float) -> list[object]:
        """One (identifier, payload) pulled from the provider; returns events."""
        try:
            return self._receive(identifier, payload, now)
        except MixProtocolError as exc:
            self.counters[f"dropped_{exc.reason}"] += 1
            return []

    def _receive(self, identifier: bytes, payload: bytes, now: float) -> list[object]:
        sent = self.loops.pop(identifier, None)
        if sent is not None:
            self.counters["loops_returned"] += 1
            return [LoopReturned(now - sent)]
        rec = self.surbs.pop(identifier, None)
        if rec is not None:
            frame = message.decode_reply(sphinx.open_reply(rec.keys, payload))
            if frame.kind == message.KIND_ACK:
                p = self.pending.pop(frame.msg_id, None)
                if p is None:
                    self.counters["acks_late"] += 1
                    return []
                return self._part_acked(frame.msg_id, p, now)
            self.counters["replies_received"] += 1
            return [ReplyReceived(frame.msg_id, frame.data)]
        frame = message.decode_forward(sphinx.open_forward(payload), self._secret)
        if frame.ack_surb is not None:
            ack_id = message.part_id(frame.msg_id, frame.part)
            body = message.encode_reply(message.KIND_ACK, ack_id, b"")
            self._enqueue(sphinx.use_surb(frame.ack_surb, body)[1], now)
            self.counters["acks_sent"] += 1
        if frame.msg_id in self.seen_msgs:
            self.counters["duplicates"] += 1
            return [Delivered(frame.msg_id, b"", None, True)]
        if frame.reply_surb is not None:
            self.partial_surb[frame.msg_id] = frame.reply_surb
        got = self.partial.setdefault(frame.msg_id, {})
        got[frame.part] = frame.data
        if len(self.partial) > 1000:  # bound the reassembly state: forget the oldest
            oldest = next(iter(self.partial))
            self.partial.pop(oldest)
            self.partial_surb.pop(oldest, None)
            self.counters["partial_dropped"] += 1
        if len(got) < frame.parts:
            return []
        data = b"".join(got[i] for i in range(frame.parts))
        del self.partial[frame.msg_id]
        self.seen_msgs.add(frame.msg_id)
        self.counters["messages_received"] += 1
        return [Delivered(frame.msg_id, data, self.partial_surb.pop(frame.msg_id, None))]

    def _part_acked(self, key: bytes, p: _Pending, now: float) -> list[object]:
        self.counters["acked_parts"] += 1
        group = self.groups.get(p.msg_id)
        if group is None:
            return []
        left, first, tries = group
        left.discard(key)
        tries = max(tries, p.tries)
        if left:
            self.groups[p.msg_id] = (left, first, tries)
            return []
        del self.groups[p.msg_id]
        self.counters["acked"] += 1
        return [Acked(p.msg_id, now - first, tries)]

    # -- timers --------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        times = [t for t in self._next.values() if t is not None]
        times += [p.deadline for p in self.pending.values()]
        return min(times) if times else None

    def handle_timer(self, now: float) -> list[object]:
        events: list[object] = []
        rates = {
            "payload": self.params.lambda_p,
            "loop": self.params.lambda_l,
            "drop": self.params.lambda_d,
        }
        for stream, lam in rates.items():
            if lam <= 0:
                continue
            t = self._next[stream]
            if t is None:
                self._next[stream] = now + self.rng.expovariate(lam)
                continue
            while t <= now:
                self._fire(stream, now)
                t += self.rng.expovariate(lam)
            self._next[stream] = t
        for key, p in list(self.pending.items()):
            if p.deadline > now:
                continue
            if p.tries >= self.params.max_tries:
                del self.pending[key]
                if self.groups.pop(p.msg_id, None) is not None:
                    self.counters["failed"] += 1
                    events.append(Failed(p.msg_id, p.tries))
                continue
            p.tries += 1
            p.deadline = now + self.params.ack_timeout * p.tries
            self.counters["resent"] += 1
            self._enqueue(self._forward_packet(key, p), now)
        for ident, sent in list(self.loops.items()):
            if now - sent > 4 * self.params.ack_timeout:
                del self.loops[ident]
                self.counters["loops_lost"] += 1
        return events

    def _fire(self, stream: str, now: float) -> None:
        if stream == "payload":
            if self.real:
                pkt = self.real.popleft()
                self.counters["real_out"] += 1
            else:
                pkt = self._cover_packet("drop", now)
                self.counters["payload_cover_out"] += 1
        else:
            pkt = self._cover_packet(stream, now)
            self.counters[f"{stream}_cover_out"] += 1
        self.out.append(pkt)
        self.departures.append(now)
        if len(self.departures) > 100_000:
            del self.departures[:50_000]

    def datagrams_to_send(self, now: float) -> list[bytes]:
        out, self.out = self.out, []
        return out


def exponential_mean_ok(samples: Sequence[float], mean: float) -> bool:
    """Rough sanity check used by reports: sample mean within 4 standard errors."""
    if not samples:
        return False
    m = sum(samples) / len(samples)
    return abs(m - mean) < 4 * mean / math.sqrt(len(samples))
