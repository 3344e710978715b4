"""Records emitted by ``fogctl mesh`` commands (documented in fogctl-records(5))."""

from __future__ import annotations

from fogctl.records import Record, record

__all__ = [
    "BundleRecord",
    "MeshKeyRecord",
    "MeshMessageRecord",
    "MeshPeerRecord",
    "MeshSentRecord",
    "MeshSimRecord",
    "MeshStatusRecord",
    "MeshTlsPinRecord",
]


@record("bundle")
class BundleRecord(Record):
    """A bundle held in this node's store (queued for forwarding)."""

    id: str
    source: str
    destination: str
    creation_time: int
    sequence: int
    size: int
    received_at: int
    expires_at: int
    hop_count: int | None = None
    hop_limit: int | None = None
    fragment_offset: int | None = None
    origin: str = "relay"  # "local" (sent from here) or "relay"
    copies: int = 1


@record("mesh-message")
class MeshMessageRecord(Record):
    """A message delivered to this node's inbox (decrypted end to end)."""

    id: str
    sender: str
    received_at: int
    size: int
    read: bool = False
    encrypted: bool = True
    sender_trusted: bool = False


@record("mesh-sent")
class MeshSentRecord(Record):
    """A message accepted for store-carry-forward delivery."""

    id: str
    destination: str
    size: int
    fragments: int
    encrypted: bool
    expires_at: int


@record("mesh-peer")
class MeshPeerRecord(Record):
    """A neighbour known to this node."""

    node: str
    address: str
    convergence_layer: str
    last_seen: float
    predictability: float | None = None
    trusted: bool = False
    tls_key: str | None = None  # SHA-256 of its pinned TLS public key (SPKI), if any


@record("mesh-tls-pin")
class MeshTlsPinRecord(Record):
    """A node's pinned TCPCL TLS key: SHA-256 of its SubjectPublicKeyInfo."""

    node: str
    tls_key: str
    first_seen: float


@record("mesh-key")
class MeshKeyRecord(Record):
    """A published or trusted prekey bundle (X3DH) for end-to-end encryption."""

    node: str
    identity_key: str
    signed_prekey: str
    one_time_prekeys: int
    fingerprint: str
    trusted: bool
    prekeys: str = ""  # the signed prekey bundle, hex CBOR (what 'keys trust FILE' reads)


@record("mesh-sim")
class MeshSimRecord(Record):
    """One router's result in a contact simulation. ``messages``, ``delivered``,
    ``delivery_ratio``, latency, ``overhead`` and ``transmissions`` cover the counted
    messages (created in ``[warmup_s, end - cooldown_s)``); ``generated`` and
    ``delivery_ratio_all`` cover every message made, those cut off at the end included."""

    router: str
    nodes: int
    messages: int
    delivered: int
    delivery_ratio: float
    latency_median_s: float | None
    latency_mean_s: float | None
    overhead: float | None
    transmissions: int
    dropped: int
    buffer: int | None
    seed: int
    generated: int = 0
    delivery_ratio_all: float = 0.0
    warmup_s: float = 0.0
    cooldown_s: float = 0.0


@record("mesh-status")
class MeshStatusRecord(Record):
    """This node's mesh state: name, router, store use, inbox, peers, drop totals."""

    node: str
    router: str
    bundles: int
    store_bytes: int
    store_quota: int
    inbox: int
    unread: int
    peers: int
    trusted_keys: int
    fingerprint: str | None
    drops: dict[str, int]
    tls_key: str | None = None  # this node's TLS key pin (what peers pin for it)
