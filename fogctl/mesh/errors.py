"""The mesh domain's protocol error and the drop counter every ingress path uses."""

from __future__ import annotations

from collections import Counter

from fogctl.errors import InvalidInput

__all__ = ["DropCounter", "ProtocolError"]


class ProtocolError(InvalidInput):
    """Bytes from the network (or a file) that are not a valid bundle or PDU.

    ``reason`` is a short stable slug (``cbor``, ``crc``, ``length``, ``overlap`` ...)
    used as the key of :class:`DropCounter`.
    """

    code = "protocol"

    def __init__(self, message: str, *, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


class DropCounter(Counter[str]):
    """Counts dropped input by :attr:`ProtocolError.reason` (and other drop causes)."""

    def drop(self, err: ProtocolError | str) -> None:
        self[err.reason if isinstance(err, ProtocolError) else err] += 1
