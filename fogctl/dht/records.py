"""Records ``fogctl dht`` emits (providers emit the shared ``node`` record)."""

from __future__ import annotations

from fogctl.records import Record, record

__all__ = [
    "DhtConnectionRecord",
    "DhtMessageRecord",
    "DhtNatRecord",
    "DhtPeerRecord",
    "DhtPutRecord",
    "DhtValueRecord",
]


@record("dht_value")
class DhtValueRecord(Record):
    """A verified value: ``value`` as text when it is UTF-8 (else ``value_hex``).

    ``signer`` is the node id of the signing key, ``seq`` its sequence number (the
    highest valid one wins), ``expiry`` a Unix time.
    """

    key: str
    dkey: str
    signer: str
    seq: int
    expiry: int
    value: str | None = None
    value_hex: str | None = None


@record("dht_put")
class DhtPutRecord(Record):
    """The result of a put or announce: ``stored_on`` nodes accepted the envelope."""

    key: str
    dkey: str
    seq: int
    expiry: int
    stored_on: int


@record("dht_peer")
class DhtPeerRecord(Record):
    """A verified contact in the routing table (or a lookup result)."""

    id: str
    address: str
    ed25519: str | None = None
    distance_bits: int | None = None


@record("dht_message")
class DhtMessageRecord(Record):
    """A pub/sub message: ``source`` is the publisher's node id, ``data`` the payload."""

    topic: str
    data: str
    source: str
    seqno: int
    id: str


@record("dht_nat")
class DhtNatRecord(Record):
    """Reachability: ``nat`` is none, endpoint-independent, symmetric or unknown."""

    reachability: str
    nat: str
    local: str | None = None
    reflexive: str | None = None
    server: str | None = None


@record("dht_connection")
class DhtConnectionRecord(Record):
    """A peer-to-peer path found by ICE: ``path`` is direct (hole punched) or relay (TURN).

    ``local_type``/``remote_type`` are ICE candidate types (host, srflx, prflx, relay);
    ``received`` is the first message the peer sent over the path.
    """

    peer: str
    path: str
    local: str
    remote: str
    local_type: str
    remote_type: str
    received: str
