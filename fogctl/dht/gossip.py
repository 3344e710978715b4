"""GossipSub v1.1-style pub/sub core (sans-IO: ``now`` and ``rng`` come in, frames go out).

Rules (after the libp2p GossipSub v1.0/v1.1 specifications):

* Each subscribed topic keeps a *mesh* of ``D`` (6) peers, kept between ``D_low`` (4)
  and ``D_high`` (12) at every heartbeat with GRAFT/PRUNE; messages are forwarded
  to mesh peers only. A publisher floods its own message to every topic peer whose
  score is not negative (v1.1 flood publishing); topics it has not joined use a
  *fanout* set of ``D`` peers that expires after ``fanout_ttl``.
* Gossip: at each heartbeat, for every mesh/fanout topic, ``D_lazy`` (6) other topic
  peers get IHAVE with the ids of messages in the last ``history_gossip`` (3)
  windows of the message cache; a peer that lacks one answers IWANT and receives it.
* A seen cache (``seen_ttl``) drops duplicates; duplicates are counted.
* Messages are signed by their publisher (Ed25519 over topic, seqno and data);
  an invalid one costs the forwarding peer score. Peer score: +1 per first
  delivery (capped), -10 per invalid message, decays each heartbeat; a peer under
  ``graylist`` is ignored, one under 0 is pruned and gets no flood publish.

Frames are msgpack maps: ``s`` subscriptions ``[[topic, bool]]``, ``m`` messages
``[[topic, source, seqno, data, signature]]``, ``ih`` ``[[topic, [ids]]]``, ``iw``
``[ids]``, ``g`` grafts ``[topic]``, ``p`` prunes ``[topic]``. :func:`decode_frame`
checks every field and raises :class:`MalformedFrame`.
"""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import umsgpack  # type: ignore[import-untyped]

__all__ = ["GossipRouter", "MalformedFrame", "Message", "decode_frame", "encode_frame"]

DOMAIN = b"fogctl-gossip-v1\x00"
MAX_TOPIC = 128
MAX_DATA = 4096
MAX_IDS = 256


class MalformedFrame(ValueError):
    """A gossip frame that breaks the schema."""


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    source: bytes  # publisher's Ed25519 key
    seqno: int
    data: bytes
    signature: bytes

    @property
    def id(self) -> bytes:
        return hashlib.sha256(self.source + struct.pack(">Q", self.seqno)).digest()[:20]

    def signed_bytes(self) -> bytes:
        t = self.topic.encode()
        return DOMAIN + struct.pack(">H", len(t)) + t + struct.pack(">Q", self.seqno) + self.data

    def wire(self) -> list[Any]:
        return [self.topic, self.source, self.seqno, self.data, self.signature]


@dataclass
class Frame:
    subs: list[tuple[str, bool]] = field(default_factory=list)
    msgs: list[Message] = field(default_factory=list)
    ihave: list[tuple[str, list[bytes]]] = field(default_factory=list)
    iwant: list[bytes] = field(default_factory=list)
    graft: list[str] = field(default_factory=list)
    prune: list[str] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.subs or self.msgs or self.ihave or self.iwant or self.graft or self.prune)


def _topic(v: Any) -> str:
    if not isinstance(v, str) or not 0 < len(v) <= MAX_TOPIC:
        raise MalformedFrame("topic is not a short string")
    return v


def _list(v: Any, limit: int = MAX_IDS) -> list[Any]:
    if not isinstance(v, list) or len(v) > limit:
        raise MalformedFrame("expected a short list")
    return v


def _id(v: Any) -> bytes:
    if not isinstance(v, bytes) or len(v) != 20:
        raise MalformedFrame("message id is not 20 bytes")
    return v


def decode_frame(data: bytes) -> Frame:
    """Strictly decode a gossip frame; :class:`MalformedFrame` if anything is off."""
    try:
        obj = umsgpack.unpackb(data, allow_invalid_utf8=False)
    except Exception as exc:
        raise MalformedFrame(f"not msgpack: {type(exc).__name__}") from None
    if not isinstance(obj, dict) or not set(obj) <= {"s", "m", "ih", "iw", "g", "p"}:
        raise MalformedFrame("frame is not a map of known fields")
    f = Frame()
    for item in _list(obj.get("s", []), 64):
        if not isinstance(item, list) or len(item) != 2 or not isinstance(item[1], bool):
            raise MalformedFrame("subscription is not [topic, bool]")
        f.subs.append((_topic(item[0]), item[1]))
    for item in _list(obj.get("m", []), 16):
        if not isinstance(item, list) or len(item) != 5:
            raise MalformedFrame("message is not [topic, source, seqno, data, signature]")
        topic, source, seqno, data_, sig = item
        if not isinstance(source, bytes) or len(source) != 32:
            raise MalformedFrame("message source is not a 32-byte key")
        if isinstance(seqno, bool) or not isinstance(seqno, int) or not 0 <= seqno < 2**64:
            raise MalformedFrame("message seqno out of range")
        if not isinstance(data_, bytes) or len(data_) > MAX_DATA:
            raise MalformedFrame("message data too large")
        if not isinstance(sig, bytes) or len(sig) != 64:
            raise MalformedFrame("message signature is not 64 bytes")
        f.msgs.append(Message(_topic(topic), source, seqno, data_, sig))
    for item in _list(obj.get("ih", []), 16):
        if not isinstance(item, list) or len(item) != 2:
            raise MalformedFrame("ihave is not [topic, ids]")
        f.ihave.append((_topic(item[0]), [_id(i) for i in _list(item[1])]))
    f.iwant = [_id(i) for i in _list(obj.get("iw", []))]
    f.graft = [_topic(t) for t in _list(obj.get("g", []), 64)]
    f.prune = [_topic(t) for t in _list(obj.get("p", []), 64)]
    return f


def encode_frame(f: Frame) -> bytes:
    obj: dict[str, Any] = {}
    if f.subs:
        obj["s"] = [[t, s] for t, s in f.subs]
    if f.msgs:
        obj["m"] = [m.wire() for m in f.msgs]
    if f.ihave:
        obj["ih"] = [[t, ids] for t, ids in f.ihave]
    if f.iwant:
        obj["iw"] = f.iwant
    if f.graft:
        obj["g"] = f.graft
    if f.prune:
        obj["p"] = f.prune
    out: bytes = umsgpack.packb(obj)
    return out


Peer = bytes


class GossipRouter:
    """One node's pub/sub state. Feed it frames and heartbeats; drain ``outbox``."""

    def __init__(
        self,
        public_key: bytes,
        sign: Callable[[bytes], bytes],
        verify: Callable[[bytes, bytes, bytes], bool],
        rng: random.Random,
        *,
        d: int = 6,
        d_low: int = 4,
        d_high: int = 12,
        d_lazy: int = 6,
        history_length: int = 5,
        history_gossip: int = 3,
        seen_ttl: float = 120.0,
        fanout_ttl: float = 60.0,
        graylist: float = -50.0,
    ) -> None:
        self.public_key = public_key
        self.sign = sign
        self.verify = verify
        self.rng = rng
        self.d, self.d_low, self.d_high, self.d_lazy = d, d_low, d_high, d_lazy
        self.history_length = history_length
        self.history_gossip = history_gossip
        self.seen_ttl = seen_ttl
        self.fanout_ttl = fanout_ttl
        self.graylist = graylist
        self.seqno = 0
        self.topics: set[str] = set()
        self.peers: dict[Peer, set[str]] = {}
        self.mesh: dict[str, set[Peer]] = {}
        self.fanout: dict[str, set[Peer]] = {}
        self.fanout_used: dict[str, float] = {}
        self.seen: dict[bytes, float] = {}
        self.mcache: list[list[bytes]] = [[]]
        self.messages: dict[bytes, Message] = {}
        self.score: dict[Peer, float] = {}
        self.outbox: list[tuple[Peer, bytes]] = []
        self.delivered: list[Message] = []
        self.stats = {"delivered": 0, "duplicates": 0, "invalid": 0, "malformed": 0, "forwarded": 0}

    # -- output -------------------------------------------------------------------------

    def _send(self, peer: Peer, frame: Frame) -> None:
        if not frame.empty():
            self.outbox.append((peer, encode_frame(frame)))

    def frames_to_send(self) -> list[tuple[Peer, bytes]]:
        out, self.outbox = self.outbox, []
        return out

    def deliveries(self) -> list[Message]:
        out, self.delivered = self.delivered, []
        return out

    # -- peers and subscriptions ----------------------------------------------------------

    def add_peer(self, peer: Peer) -> None:
        if peer in self.peers:
            return
        self.peers[peer] = set()
        self.score.setdefault(peer, 0.0)
        # always say hello (even with no topics) so the peer adds us and answers with its own
        hello = Frame(subs=[(t, True) for t in sorted(self.topics)])
        self.outbox.append((peer, encode_frame(hello)))

    def remove_peer(self, peer: Peer) -> None:
        self.peers.pop(peer, None)
        for group in (*self.mesh.values(), *self.fanout.values()):
            group.discard(peer)

    def _topic_peers(self, topic: str) -> list[Peer]:
        return sorted(p for p, ts in self.peers.items() if topic in ts and self.score[p] >= 0)

    def subscribe(self, topic: str) -> None:
        _topic(topic)
        if topic in self.topics:
            return
        self.topics.add(topic)
        for peer in self.peers:
            self._send(peer, Frame(subs=[(topic, True)]))
        mesh = set(self.fanout.pop(topic, set()))
        self.fanout_used.pop(topic, None)
        candidates = [p for p in self._topic_peers(topic) if p not in mesh]
        self.rng.shuffle(candidates)
        mesh.update(candidates[: max(0, self.d - len(mesh))])
        self.mesh[topic] = mesh
        for peer in mesh:
            self._send(peer, Frame(graft=[topic]))

    def unsubscribe(self, topic: str) -> None:
        if topic not in self.topics:
            return
        self.topics.discard(topic)
        for peer in self.mesh.pop(topic, set()):
            self._send(peer, Frame(prune=[topic]))
        for peer in self.peers:
            self._send(peer, Frame(subs=[(topic, False)]))

    # -- publishing -----------------------------------------------------------------------

    def publish(self, topic: str, data: bytes, now: float) -> Message:
        _topic(topic)
        if len(data) > MAX_DATA:
            raise MalformedFrame(f"message data exceeds {MAX_DATA} bytes")
        self.seqno = max(self.seqno + 1, int(now * 1_000_000))
        unsigned = Message(topic, self.public_key, self.seqno, data, b"")
        msg = Message(topic, self.public_key, self.seqno, data, self.sign(unsigned.signed_bytes()))
        self._remember(msg, now)
        if topic in self.topics:
            self.delivered.append(msg)
        targets = set(self._topic_peers(topic))  # flood publishing (v1.1)
        if not targets:
            return msg
        if topic not in self.topics:
            fan = self.fanout.setdefault(topic, set())
            if len(fan) < self.d:
                extra = [p for p in targets if p not in fan]
                self.rng.shuffle(extra)
                fan.update(extra[: self.d - len(fan)])
            self.fanout_used[topic] = now
        for peer in sorted(targets):
            self._send(peer, Frame(msgs=[msg]))
        return msg

    def _remember(self, msg: Message, now: float) -> None:
        self.seen[msg.id] = now + self.seen_ttl
        self.messages[msg.id] = msg
        self.mcache[0].append(msg.id)

    # -- receiving ------------------------------------------------------------------------

    def handle_frame(self, peer: Peer, data: bytes, now: float) -> None:
        """Process one frame from ``peer`` (a verified DHT contact)."""
        if peer not in self.peers:
            self.add_peer(peer)
        if self.score[peer] < self.graylist:
            return
        try:
            frame = decode_frame(data)
        except MalformedFrame:
            self.stats["malformed"] += 1
            self.score[peer] -= 10
            return
        for topic, on in frame.subs:
            if on and len(self.peers[peer]) < 64:
                self.peers[peer].add(topic)
            elif not on:
                self.peers[peer].discard(topic)
                self.mesh.get(topic, set()).discard(peer)
        reply = Frame()
        for topic in frame.graft:
            if topic in self.topics and self.score[peer] >= 0:
                self.peers[peer].add(topic)
                self.mesh.setdefault(topic, set()).add(peer)
            else:
                reply.prune.append(topic)
        for topic in frame.prune:
            self.mesh.get(topic, set()).discard(peer)
        for msg in frame.msgs:
            self._on_message(peer, msg, now)
        want = [
            i
            for topic, ids in frame.ihave
            if topic in self.topics
            for i in ids
            if i not in self.seen
        ]
        reply.iwant = want[:MAX_IDS]
        self._send(peer, reply)
        for mid in frame.iwant[:16]:
            found = self.messages.get(mid)
            if found is not None:
                self._send(peer, Frame(msgs=[found]))  # one per frame: a datagram each

    def _on_message(self, peer: Peer, msg: Message, now: float) -> None:
        if msg.id in self.seen:
            self.stats["duplicates"] += 1
            return
        if not self.verify(msg.source, msg.signature, msg.signed_bytes()):
            self.stats["invalid"] += 1
            self.score[peer] -= 10
            return
        self.score[peer] = min(self.score[peer] + 1, 10.0)
        self._remember(msg, now)
        if msg.topic in self.topics:
            self.delivered.append(msg)
            self.stats["delivered"] += 1
        for other in sorted(self.mesh.get(msg.topic, set())):
            if other != peer:
                self._send(other, Frame(msgs=[msg]))
                self.stats["forwarded"] += 1

    # -- heartbeat ------------------------------------------------------------------------

    def heartbeat(self, now: float) -> None:
        for peer in self.score:
            self.score[peer] *= 0.9
        for topic in list(self.mesh):
            mesh = self.mesh[topic]
            for peer in [p for p in mesh if p not in self.peers or self.score[p] < 0]:
                mesh.discard(peer)
                self._send(peer, Frame(prune=[topic]))
            if len(mesh) < self.d_low:
                candidates = [p for p in self._topic_peers(topic) if p not in mesh]
                self.rng.shuffle(candidates)
                for peer in candidates[: self.d - len(mesh)]:
                    mesh.add(peer)
                    self._send(peer, Frame(graft=[topic]))
            elif len(mesh) > self.d_high:
                members = sorted(mesh)
                self.rng.shuffle(members)
                for peer in members[self.d :]:
                    mesh.discard(peer)
                    self._send(peer, Frame(prune=[topic]))
        for topic in list(self.fanout):
            if now - self.fanout_used.get(topic, now) > self.fanout_ttl:
                del self.fanout[topic]
                self.fanout_used.pop(topic, None)
        ids_by_topic: dict[str, list[bytes]] = {}
        for window in self.mcache[: self.history_gossip]:
            for mid in window:
                m = self.messages.get(mid)
                if m is not None:
                    ids_by_topic.setdefault(m.topic, []).append(mid)
        for topic, ids in ids_by_topic.items():
            group = self.mesh.get(topic) or self.fanout.get(topic) or set()
            others = [p for p in self._topic_peers(topic) if p not in group]
            self.rng.shuffle(others)
            for peer in others[: self.d_lazy]:
                self._send(peer, Frame(ihave=[(topic, ids[-MAX_IDS:])]))
        self.mcache.insert(0, [])
        for old in self.mcache[self.history_length :]:
            for mid in old:
                self.messages.pop(mid, None)
        del self.mcache[self.history_length :]
        for mid in [m for m, exp in self.seen.items() if exp <= now]:
            del self.seen[mid]
