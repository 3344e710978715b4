"""Records of the mix domain (documented in fogctl-records(5))."""

from __future__ import annotations

from fogctl.records import Record, record

__all__ = [
    "AnonymityRecord",
    "MixBenchRecord",
    "MixDescriptor",
    "MixHopRecord",
    "MixMessageRecord",
    "MixSentRecord",
    "MixStatsRecord",
]


@record("mix_descriptor")
class MixDescriptor(Record):
    """A signed mix-node descriptor: what clients need to route through a node.

    ``layer`` 0 is a provider; 1..n are the stratified mix layers. ``public_key`` is
    the node's X25519 key for ``epoch`` (valid until ``expires``, Unix seconds).
    ``signature`` is Ed25519 by ``signing_key`` over the other fields; ``id`` must be
    the node id bound to ``signing_key``.
    """

    id: str
    layer: int
    public_key: str
    address: str
    epoch: int
    expires: float
    operator: str
    region: str
    signing_key: str
    signature: str = ""


@record("mix_hop")
class MixHopRecord(Record):
    """One hop of a chosen path (``fogctl mix route``)."""

    hop: int
    id: str
    layer: int
    address: str
    operator: str
    region: str
    delay_ms: float


@record("mix_sent")
class MixSentRecord(Record):
    """A message handed to the mixnet (``fogctl mix send`` / ``reply``).

    ``packets`` is how many Sphinx packets carry it (a long message is split).
    """

    id: str
    to: str
    bytes: int
    hops: int
    packets: int
    reply_surb: bool


@record("mix_message")
class MixMessageRecord(Record):
    """A message fetched from this client's provider (``fogctl mix recv``).

    ``type`` is ``message`` (a forward message; ``can_reply`` if it carried a SURB) or
    ``reply`` (an answer to one of ours, ``in_reply_to`` our message id). ``data`` is
    text when it is valid UTF-8, else ``data_hex`` holds it.
    """

    id: str
    type: str
    data: str | None
    data_hex: str | None
    can_reply: bool
    in_reply_to: str | None
    received_at: float


@record("mix_stats")
class MixStatsRecord(Record):
    """Counters of a node or client: processed, forwarded, dropped by reason, cover."""

    node: str
    role: str
    counters: dict[str, int]


@record("mix_bench")
class MixBenchRecord(Record):
    """A figure from ``fogctl mix bench`` beside its same-run reference.

    ``value`` and ``reference_value`` are medians over alternating rounds; ``ratio``
    is the median of the per-round ratios, ``best_ratio`` the ratio of the best rounds.
    """

    name: str
    value: float
    unit: str
    reference: str
    reference_value: float
    ratio: float
    best_ratio: float | None = None


@record("mix_anonymity")
class AnonymityRecord(Record):
    """What anonymity the traffic is actually getting (an honest estimate).

    ``entropy_bits`` is the Shannon entropy of the sender anonymity set per message
    in the simulated/observed load; ``effective_senders`` = 2^entropy. With little
    traffic this is near 0 bits (an anonymity set of one) and says so.
    """

    senders: int
    rate_per_sender: float
    mean_delay_ms: float
    hops: int
    entropy_bits: float
    effective_senders: float
    note: str
