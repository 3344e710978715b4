"""The interface of pluggable mesh transports (entry-point group ``fogctl.transports``).

A transport is an object with a ``name`` and an ``async run(host, stop)`` coroutine;
``fogctl mesh serve --transport NAME`` loads the entry point ``NAME`` (a factory taking
no arguments) and runs it beside the built-in convergence layers until ``stop`` is set.
Transports see the node only through :class:`TransportHost`; they have no handshake
of their own, so the router treats their peers like MTCP/UDP peers (no summary
vector: the router alone decides what to hand over).

The first-party BLE transport (``plugins/ble``, on ``bleak``) implements this.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

__all__ = ["Transport", "TransportHost"]


class TransportHost(Protocol):
    def deliver(self, raw: bytes, peer: str | None) -> None:
        """Hand one received bundle (wire bytes) to the node."""

    def outgoing(self, peer: str) -> list[tuple[str, bytes, bool]]:
        """Bundles to send to ``peer`` (``dtn://NAME/``) now: (id, bytes, drop-after)."""

    def forwarded(self, bundle_id: str, drop: bool) -> None:
        """Report that a bundle from :meth:`outgoing` was handed over."""

    def log(self, message: str) -> None: ...


@runtime_checkable
class Transport(Protocol):
    name: str

    async def run(self, host: TransportHost, stop: asyncio.Event) -> None: ...
