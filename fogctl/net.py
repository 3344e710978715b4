"""Outgoing TCP connections that honour one route setting: ``net.via``.

``fogctl --via ROUTE ...`` (or ``FOGCTL_NET_VIA``, or ``net: {via: ...}`` in
config.yaml) sends every TCP connection a command makes to remote peers (mix
providers, mesh TCPCL peers) ``direct`` (the default), through ``tor`` (the SOCKS
port of the tor fogctl runs, one circuit per destination, names resolved by tor), or
through ``socks5://HOST:PORT``. The SOCKS5 client lives with the tor domain
(:mod:`fogctl.tor`); it is imported only when a route other than direct is used.

Streams to one destination share a circuit (SOCKS-auth isolation per destination),
until a connection attempt to it fails or is cancelled: the next attempt then asks for
a fresh circuit, so a retry never waits on the same stuck circuit or rendezvous.
"""

from __future__ import annotations

import asyncio

__all__ = ["open_connection", "route"]

# Destination -> how many proxied attempts to it have failed (selects the isolation key).
_failures: dict[tuple[str, int], int] = {}


def route() -> str | None:
    """The configured route (None or "direct" means connect directly)."""
    from fogctl.state import State

    value = State().config.get("net.via")
    return str(value) if value else None


async def open_connection(
    host: str, port: int, *, via: str | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """:func:`asyncio.open_connection` along ``via`` (default: the configured route).

    Raises OSError for a direct connection that fails, and fogctl's typed errors
    (:class:`~fogctl.errors.ServiceUnavailable`, :class:`~fogctl.errors.InvalidInput`)
    for a proxy that can't be reached or a route that makes no sense.
    """
    chosen = via if via is not None else route()
    if not chosen or chosen == "direct":
        return await asyncio.open_connection(host, port)
    from fogctl.tor import open_connection as via_proxy

    failed = _failures.get((host, port), 0)
    isolation = f"{host}:{port}#retry{failed}" if failed else None
    try:
        return await via_proxy(host, port, via=chosen, isolation=isolation)
    except BaseException:  # failed, timed out or cancelled: next time, another circuit
        _failures[(host, port)] = failed + 1
        raise
