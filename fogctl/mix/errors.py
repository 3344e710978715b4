"""The mix domain's protocol errors: every bad packet raises one of these, never anything else."""

from __future__ import annotations

from fogctl.errors import OperationFailed

__all__ = [
    "MacMismatch",
    "MalformedPacket",
    "MixProtocolError",
    "ReplayedPacket",
    "TaggedPayload",
]


class MixProtocolError(OperationFailed):
    """A packet was refused. ``reason`` is the counter it is recorded under."""

    code = "mix-protocol"
    reason = "invalid"


class MalformedPacket(MixProtocolError):
    """Wrong length, a point X25519 refuses, or routing information that does not parse."""

    reason = "malformed"


class MacMismatch(MixProtocolError):
    """The header MAC does not verify under any live key (forged, corrupted or stale)."""

    reason = "mac"


class ReplayedPacket(MixProtocolError):
    """The packet's replay tag was seen before in this key epoch."""

    reason = "replay"


class TaggedPayload(MixProtocolError):
    """The payload's integrity prefix is wrong: it was modified in flight (tagging)."""

    reason = "tagged"
